/*
 * kill_lazy.c - kill-test program for lazy restore (CRMPI_RESTORE=lazy).
 *
 *   kill_lazy [STEPS [BIG_MIB]]
 *
 * A large crmalloc'd table (BIG_MIB MiB, filled once) is read at
 * pseudo-random places by every step, and a few of its words are changed
 * now and then; a small array and a running hash change every step, which
 * ends with cr_checkpoint(). After a restart the steps run while the table
 * is still being fetched: their reads fault pages in (fetch path) while
 * the prefetch thread reads the rest, and the first checkpoint waits for
 * the end of the lazy restore. Kills land in all of these phases. The
 * output (hash, steps) is the same with or without kills.
 */
#include <cr.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 400;
    size_t n = (size_t)(argc > 2 ? atol(argv[2]) : 32) << 17;   /* words */
    uint64_t *big = crmalloc(n * sizeof *big);
    uint64_t *small = crcalloc(4096, sizeof *small);
    if (!big || !small) {
        fprintf(stderr, "kill_lazy: crmalloc failed\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        big[i] = mix(i + 1);
    uint64_t h = 0;
    for (long s = 0; s < steps; s++) {
        for (int k = 0; k < 64; k++) {
            size_t i = mix((uint64_t)s * 64 + (uint64_t)k) % n;
            h = mix(h ^ big[i]);
            small[i % 4096] ^= h;
        }
        if (s % 8 == 0)
            big[mix(h) % n] ^= h;
        int rc = cr_checkpoint();
        if (rc < 0) {
            fprintf(stderr, "kill_lazy: cr_checkpoint: %s\n", cr_strerror(rc));
            return 1;
        }
    }
    for (size_t i = 0; i < 4096; i++)
        h = mix(h ^ small[i]);
    for (size_t i = 0; i < n; i += 4096)
        h = mix(h ^ big[i]);
    printf("kill_lazy: hash %016llx after %ld steps\n", (unsigned long long)h, steps);
    return 0;
}
