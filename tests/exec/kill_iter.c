/*
 * kill_iter.c - kill-test program: a single-threaded iterative computation.
 *
 *   kill_iter [STEPS [WORDS [tolerate|scatter|grow]]]
 *
 * A crmalloc'd array of WORDS 64-bit words is mixed STEPS times; every step
 * ends with cr_checkpoint(). The loop counter and a running hash live in
 * main's frame (the persistent stack), the array in the persistent heap. At
 * the end it prints the hash and the number of steps: the same lines
 * whether or not it was killed and restarted along the way. With "tolerate",
 * a failed checkpoint is counted (reported on stderr at the end) and the
 * computation goes on, as a job does when its storage fails for a while.
 * With "scatter", each step writes one word in every other page instead of
 * a window (odd pages on odd steps, even pages on even ones): every
 * checkpoint then has one written run per two pages, more than one
 * PAGEMAP_SCAN call returns for arrays above 4 MiB.
 * With "grow", every tenth step also replaces one of GROW_BLOCKS blocks of
 * 96 MiB, of which only the first and last words are written: the heap's
 * top climbs past 1 GiB of address with a few MiB of memory, so the page
 * map's fence (src/heap/attach.c, one step per 512 MiB of pages) moves up
 * between checkpoints and again after restarts, and freed blocks are
 * discarded (zero extents).
 */
#include <cr.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROW_BLOCKS 12
#define GROW_WORDS ((size_t)96 << 20 >> 3)

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

/* Built a second time with CR_TEST_VARIANT (tests/exec/badinput.py): the
 * same program with different code, hence another build-id. */
#ifdef CR_TEST_VARIANT
#define WHO "kill_iter (variant)"
#else
#define WHO "kill_iter"
#endif

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 3000;
    size_t words = argc > 2 ? (size_t)atol(argv[2]) : 4096;
    uint64_t *a = crmalloc(words * sizeof *a);
    if (!a) {
        fprintf(stderr, "kill_iter: crmalloc failed\n");
        return 1;
    }
    for (size_t i = 0; i < words; i++)
        a[i] = i;
    uint64_t hash = 0;
    long restarts = 0, failures = 0;
    int tolerate = argc > 3 && !strcmp(argv[3], "tolerate");
    int scatter = argc > 3 && !strcmp(argv[3], "scatter");
    int grow = argc > 3 && !strcmp(argv[3], "grow");
    uint64_t **blocks = grow ? crmalloc(GROW_BLOCKS * sizeof *blocks) : NULL;
    if (grow && !blocks) {
        fprintf(stderr, "kill_iter: crmalloc failed\n");
        return 1;
    }
    for (int k = 0; grow && k < GROW_BLOCKS; k++)
        blocks[k] = NULL;
    const size_t page_words = 4096 / sizeof *a;
    for (long s = 0; s < steps; s++) {
        size_t lo = (size_t)(s * 97) % words;
        if (scatter) {
            /* one word in every other page */
            for (size_t i = (size_t)(s & 1) * page_words + (size_t)s % page_words; i < words;
                 i += 2 * page_words)
                a[i] = mix(a[i] + (uint64_t)s);
        } else {
            /* touch a window of the array that moves: some pages per step */
            for (size_t k = 0, n = words / 8; k < n; k++) {
                size_t i = (lo + k) % words;
                a[i] = mix(a[i] + (uint64_t)s);
            }
        }
        if (grow && s % 10 == 5) {
            uint64_t **b = &blocks[(s / 10) % GROW_BLOCKS];
            if (*b) {
                hash = mix(hash ^ (*b)[0] ^ (*b)[GROW_WORDS - 1]);
                crfree(*b);
            }
            *b = crmalloc(GROW_WORDS * sizeof **b);
            if (!*b) {
                fprintf(stderr, "kill_iter: crmalloc of a 96 MiB block failed\n");
                return 1;
            }
            (*b)[0] = mix((uint64_t)s);
            (*b)[GROW_WORDS - 1] = mix(hash + (uint64_t)s);
        }
        hash = mix(hash ^ a[lo]);
        int rc = cr_checkpoint();
        if (rc == CR_RESTARTED)
            restarts++;
        else if (rc < 0 && tolerate)
            failures++;
        else if (rc < 0) {
            fprintf(stderr, "kill_iter: checkpoint failed: %s\n", cr_strerror(rc));
            return 1;
        }
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < words; i++)
        sum += a[i];
    printf("steps %ld hash %016llx sum %016llx\n", steps, (unsigned long long)hash,
           (unsigned long long)sum);
    fprintf(stderr, "%s: %ld restarts\n", WHO, restarts);
    if (tolerate)
        fprintf(stderr, "%s: %ld checkpoint failures\n", WHO, failures);
    for (int k = 0; grow && k < GROW_BLOCKS; k++)
        crfree(blocks[k]);
    crfree(blocks);
    crfree(a);
    return 0;
}
