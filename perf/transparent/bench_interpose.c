/*
 * bench_interpose.c - cost of transparent mode, in one persistent program.
 *
 *   bench_interpose alloc     malloc/free of random 16..4096-byte blocks over
 *                             a live set of 4096 slots: million ops/s through
 *                             the interposed malloc (persistent heap with
 *                             CRMPI_INTERPOSE=1, glibc with =0) and through
 *                             crmalloc/crfree called directly
 *   bench_interpose globals   checkpoint time with a 64 MiB .bss array of
 *                             which 1% of the pages change per step (ms,
 *                             median of 20 incremental checkpoints); with
 *                             CRMPI_INTERPOSE=0 the globals are not saved
 * Output: CSV lines "figure,mode,value".
 */
#include <cr.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 4096
#define BIG (64u << 20)

static unsigned char big[BIG];
static void *slot[SLOTS];
static uint64_t rs = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double run_alloc(int direct, long ops)
{
    double t0 = now();
    for (long i = 0; i < ops; i++) {
        size_t k = rnd() % SLOTS, n = 16 + rnd() % 4080;
        if (direct) {
            crfree(slot[k]);
            slot[k] = crmalloc(n);
        } else {
            free(slot[k]);
            slot[k] = malloc(n);
        }
        *(volatile char *)slot[k] = 1;
    }
    double t = now() - t0;
    for (int k = 0; k < SLOTS; k++) {
        if (direct)
            crfree(slot[k]);
        else
            free(slot[k]);
        slot[k] = NULL;
    }
    return ops / t / 1e6;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *mode = getenv("CRMPI_INTERPOSE");
    const char *m = mode && *mode == '0' ? "off" : "on";
    if (argc > 1 && !strcmp(argv[1], "alloc")) {
        run_alloc(0, 200000);                 /* warm both heaps */
        run_alloc(1, 200000);
        printf("alloc_mops,malloc-%s,%.3f\n", m, run_alloc(0, 2000000));
        printf("alloc_mops,crmalloc-direct,%.3f\n", run_alloc(1, 2000000));
        return 0;
    }
    memset(big, 1, sizeof big);
    double t[20];
    for (int s = 0; s < 24; s++) {
        for (size_t p = 0; p < BIG / 4096 / 100; p++)
            big[(rnd() % (BIG / 4096)) * 4096] = (unsigned char)s;
        if (cr_checkpoint() < 0) {
            fprintf(stderr, "checkpoint failed\n");
            return 1;
        }
        struct cr_checkpoint_stats st;
        cr_checkpoint_stats(&st, sizeof st);
        if (s >= 4)
            t[s - 4] = st.last_full ? 0 : st.last_seconds * 1e3;
    }
    qsort(t, 20, sizeof *t, cmpd);
    printf("ckpt_ms_64MiB_bss,globals-%s,%.3f\n", m, t[10]);
    return 0;
}
