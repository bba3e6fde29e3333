/*
 * bench_rollback.c - cr_rollback() time against the pages written since the
 * checkpoint (perf/rollback/run.sh).
 *
 *   bench_rollback BYTES REPS PAGES...     (CRMPI_DIR set by the caller)
 *
 * Fresh start: fills BYTES of crmalloc'd heap, checkpoints once (committed),
 * then for each PAGES value, REPS times: writes one word into each of PAGES
 * distinct pages spread over the heap, copies PAGES*4096 bytes between two
 * warm buffers outside the region (the memcpy baseline: moving the written
 * bytes, nothing else), and rolls back, timing from the call until the
 * checkpoint call returns CR_ROLLEDBACK. Prints per measurement:
 *   rollback,PAGES,REP,wall_s,engine_s,memcpy_s,bytes_read
 * then leaves without marking the run finished (_exit), so that
 * Restarted (same command): prints restore,BYTES,restore_s (the engine's
 * restore time, eager) and leaves the same way.
 * BENCH_PATTERN=contig writes PAGES consecutive pages instead of spread
 * ones (default "spread": every page in another stored extent, the worst
 * case for the rollback, which reads whole extents).
 * The loop state lives in memory outside the region (a rollback puts the
 * heap, the stacks and the globals back).
 */
#include <cr.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define MAXV 32

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int contig;

static size_t page_of(size_t k, int rep, size_t npages)
{
    if (contig)
        return (k + (size_t)rep * 4099) % npages;
    return (k * 40503 + (size_t)rep * 7) % npages;    /* distinct: 40503 is odd */
}

static struct {
    int v, rep;                  /* current measurement */
    double t0, memcpy_s;
} *O;

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s BYTES REPS PAGES...\n", argv[0]);
        return 2;
    }
    size_t bytes = (size_t)strtoull(argv[1], NULL, 0);
    int reps = atoi(argv[2]);
    int nv = argc - 3 < MAXV ? argc - 3 : MAXV;
    size_t pages[MAXV], maxp = 0;
    for (int i = 0; i < nv; i++) {
        pages[i] = (size_t)strtoull(argv[3 + i], NULL, 0);
        maxp = pages[i] > maxp ? pages[i] : maxp;
    }
    size_t npages = bytes / PAGE;
    const char *pattern = getenv("BENCH_PATTERN");
    contig = pattern && !strcmp(pattern, "contig");
    O = mmap(NULL, sizeof *O, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *src = mmap(NULL, maxp * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *dst = mmap(NULL, maxp * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t *heap = crmalloc(bytes);
    if (O == MAP_FAILED || src == MAP_FAILED || dst == MAP_FAILED || !heap) {
        fprintf(stderr, "bench_rollback: allocation failed\n");
        return 1;
    }
    memset(src, 1, maxp * PAGE);
    memset(dst, 2, maxp * PAGE);
    for (size_t i = 0; i < bytes / 8; i++)
        heap[i] = i * 0x9e3779b97f4a7c15ULL;
    int rc = cr_checkpoint();
    struct cr_checkpoint_stats st;
    if (rc == CR_RESTARTED) {
        if (cr_checkpoint_stats(&st, sizeof st) == 0)
            printf("restore,%zu,%.6f\n", bytes, st.restore_seconds);
        fflush(stdout);
        _exit(0);
    }
    if (rc == CR_CHECKPOINTED) {
        if (cr_checkpoint_wait() != 0) {
            fprintf(stderr, "bench_rollback: the checkpoint was not committed\n");
            return 1;
        }
        O->v = 0;
        O->rep = 0;
    } else if (rc == CR_ROLLEDBACK) {
        double wall = now() - O->t0;
        if (cr_checkpoint_stats(&st, sizeof st) != 0)
            return 1;
        /* the heap is back: check a word of every page written */
        size_t p = pages[O->v], bad = 0;
        for (size_t k = 0; k < p; k++) {
            size_t pg = page_of(k, O->rep, npages);
            size_t w = pg * (PAGE / 8);
            bad += heap[w] != w * 0x9e3779b97f4a7c15ULL;
        }
        if (bad) {
            fprintf(stderr, "bench_rollback: %zu pages not rolled back\n", bad);
            return 1;
        }
        printf("rollback,%zu,%d,%.6f,%.6f,%.6f,%llu\n", p, O->rep, wall,
               st.last_rollback_seconds, O->memcpy_s, (unsigned long long)st.last_rollback_bytes);
        fflush(stdout);
        if (++O->rep == reps) {
            O->rep = 0;
            O->v++;
        }
    } else {
        fprintf(stderr, "bench_rollback: checkpoint failed: %s\n", cr_strerror(rc));
        return 1;
    }
    if (O->v == nv) {
        fflush(stdout);
        _exit(0);      /* the checkpoint stays for the restore measurement */
    }
    size_t p = pages[O->v];
    for (size_t k = 0; k < p; k++) {
        size_t pg = page_of(k, O->rep, npages);
        heap[pg * (PAGE / 8)] = ~0ULL;
    }
    double t = now();
    memcpy(dst, src, p * PAGE);
    O->memcpy_s = now() - t;
    __asm__ volatile("" ::"r"(dst) : "memory");
    O->t0 = now();
    rc = cr_rollback();
    fprintf(stderr, "bench_rollback: cr_rollback: %s\n", cr_strerror(rc));
    return 1;
}
