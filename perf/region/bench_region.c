/*
 * bench_region.c - cost of dirty-page tracking against the baselines a user
 * would otherwise pay, all measured in the same run.
 *
 * For each tracker, region size (64 MiB .. 4 GiB of data) and written
 * fraction (0.1% .. 100%): populate the region (untimed), start an epoch,
 * write one byte into the chosen pages, then time cr_region_collect(): the
 * extents are counted and the pages re-armed. Median of --runs runs.
 * Two patterns: "spread" writes every k-th page (k = 1/fraction: isolated
 * pages in every page table, the worst case: the kernel flushes the TLB
 * once per 2 MiB page table it re-arms something in), "block" writes the
 * first fraction of the pages (the best case).
 * First-write cost: time to write one byte into each page of an armed,
 * populated 64 MiB region, per page, against the same loop on an untracked
 * warm buffer.
 * Baselines per size, on warm buffers (both touched, one untimed copy
 * first: on these VMs a cold first touch costs more than the copy):
 * memcpy of the whole data, and fork() of a process holding it (time until
 * fork returns in the parent; the child _exits at once).
 *
 * uffd-async also gets the split of an asynchronous checkpoint: the
 * snapshot (scan only) and the deferred re-arm, timed apart (CSV kind
 * "split": median_ms is the snapshot, rearm_ms the re-arm), and the
 * snapshot with 256 MiB never touched in front of the data (the heap's
 * page map) open or fenced off (CSV kind "fence": median_ms fenced,
 * unfenced_ms open).
 * Output: a table on stdout, CSV rows (--csv FILE).
 */
#include "region/region.h"
#include "common/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG CR_PAGE_SIZE
#define MAX_RUNS 15

static const char *const tracker_names[] = { NULL, "uffd-async", "uffd-sync", "mprotect" };

struct opts {
    int quick;
    int runs;
    double budget_s;      /* skip a tracker/size cell estimated to take longer */
    FILE *csv;
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int count_pages(const struct cr_extent *e, void *arg)
{
    *(size_t *)arg += e->len / PG;
    return 0;
}

static void *map_warm(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    madvise(p, len, MADV_NOHUGEPAGE);   /* same page size as the region */
    memset(p, 1, len);
    return p;
}

/* ---- baselines ------------------------------------------------------------- */

struct baseline { double memcpy_ms, fork_ms; };

static struct baseline measure_baselines(size_t size, int runs)
{
    struct baseline b;
    double t[MAX_RUNS];
    char *src = map_warm(size), *dst = map_warm(size);
    memcpy(dst, src, size);                        /* untimed warm-up copy */
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        memcpy(dst, src, size);
        t[r] = (now() - t0) * 1e3;
        src[(size_t)r * PG % size]++;              /* keep the copy from being elided */
    }
    b.memcpy_ms = median(t, runs);
    munmap(dst, size);                             /* fork sees only the data */
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        t[r] = (now() - t0) * 1e3;
        if (pid < 0) {
            perror("fork");
            exit(1);
        }
        waitpid(pid, NULL, 0);
    }
    b.fork_ms = median(t, runs);
    munmap(src, size);
    return b;
}

/* ---- region with a tracker -------------------------------------------------------- */

static char *open_tracked(int tracker, size_t size)
{
    struct cr_region_params p = { .max_size = size + CR_REGION_CHUNK, .tracker = tracker };
    int rc = cr_region_open(&p);
    if (rc == 0)
        rc = cr_region_grow(size + CR_REGION_CHUNK);
    if (rc) {
        fprintf(stderr, "region with %s: %s\n", tracker_names[tracker], cr_strerror(rc));
        exit(1);
    }
    char *data = (char *)cr_region_base() + CR_REGION_CHUNK;
    memset(data, 1, size);                        /* populate (first touch, untimed) */
    if (cr_region_collect(NULL, NULL)) {
        fprintf(stderr, "collect failed\n");
        exit(1);
    }
    return data;
}

static void close_tracked(void)
{
    if (cr_region_close())
        fprintf(stderr, "close failed\n");
}

/* Per-page cost of the first write after re-arming, in ns. */
static double first_write_ns(int tracker, int runs)
{
    size_t size = 64UL << 20, n = size / PG;
    double t[MAX_RUNS];
    char *data = tracker ? open_tracked(tracker, size) : map_warm(size);
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        for (size_t i = 0; i < n; i++)
            ((volatile char *)data)[i * PG] = (char)r;
        t[r] = (now() - t0) * 1e9 / (double)n;
        if (tracker && cr_region_collect(NULL, NULL))
            exit(1);
    }
    if (tracker)
        close_tracked();
    else
        munmap(data, size);
    return median(t, runs);
}

struct cell { double ms; size_t written, reported; };

static struct cell measure_collect(char *data, size_t size, double fraction, int block,
                                   int runs)
{
    struct cell c = { 0 };
    double t[MAX_RUNS];
    size_t n = size / PG, stride = (size_t)(1.0 / fraction + 0.5);
    size_t step = block ? 1 : stride, limit = block ? (n + stride - 1) / stride : n;
    for (int r = 0; r < runs; r++) {
        c.written = 0;
        for (size_t i = 0; i < limit; i += step, c.written++)
            data[i * PG] = (char)(r + 2);
        size_t got = 0;
        double t0 = now();
        int rc = cr_region_collect(count_pages, &got);
        t[r] = (now() - t0) * 1e3;
        if (rc) {
            fprintf(stderr, "collect: %s\n", cr_strerror(rc));
            exit(1);
        }
        c.reported = CR_MAX(c.reported, got);
    }
    c.ms = median(t, runs);
    return c;
}

/* The two halves of an asynchronous checkpoint's collection (uffd-async):
 * the snapshot (the scan, in the application's blocking phase) and the
 * deferred re-arm (run by the background writer). Nothing writes between
 * them, so every page still equals its snapshot. */
struct split { size_t size; double fraction, snapshot_ms, rearm_ms; size_t pages; };

static int always_same(uintptr_t page, void *arg)
{
    (void)page;
    (void)arg;
    return 1;
}

static struct split measure_split(char *data, size_t size, double fraction, int runs)
{
    struct split sp = { size, fraction, 0, 0, 0 };
    double ts[MAX_RUNS], tr[MAX_RUNS];
    size_t n = size / PG, stride = (size_t)(1.0 / fraction + 0.5);
    for (int r = 0; r < runs; r++) {
        for (size_t i = 0; i < n; i += stride)
            data[i * PG] = (char)(r + 3);
        size_t got = 0;
        double t0 = now();
        int rc = cr_region_snapshot(0, count_pages, &got);
        double t1 = now();
        if (rc == 0)
            rc = cr_region_rearm(always_same, NULL);
        ts[r] = (t1 - t0) * 1e3;
        tr[r] = (now() - t1) * 1e3;
        if (rc) {
            fprintf(stderr, "snapshot/rearm: %s\n", cr_strerror(rc));
            exit(1);
        }
        sp.pages = CR_MAX(sp.pages, got);
    }
    sp.snapshot_ms = median(ts, runs);
    sp.rearm_ms = median(tr, runs);
    return sp;
}

/* A snapshot of `size` bytes with 1% of the pages written (spread), in a
 * region that also holds 256 MiB armed but never touched in front of the
 * data (what the heap's page map is for a 64 GiB region), with and without
 * that range fenced off (cr_region_fence), alternating per run. The
 * tracker's write-protect markers give the untouched range page tables,
 * which an unfenced scan walks pte by pte. */
struct fence_cell { size_t size; double fenced_ms, open_ms; size_t pages; };

static struct fence_cell measure_fence(size_t size, int runs)
{
    const size_t unused = 256UL << 20;
    struct fence_cell fc = { size, 0, 0, 0 };
    struct cr_region_params p = { .max_size = unused + size + CR_REGION_CHUNK,
                                  .tracker = 1 /* uffd-async */ };
    int rc = cr_region_open(&p);
    if (rc == 0)
        rc = cr_region_grow(p.max_size);
    if (rc) {
        fprintf(stderr, "region for the fence: %s\n", cr_strerror(rc));
        exit(1);
    }
    uintptr_t lo = cr_region_data_start(), hi = lo - CR_PAGE_SIZE + CR_REGION_CHUNK + unused;
    char *data = (char *)hi;
    memset(data, 1, size);
    double t[2][MAX_RUNS];
    size_t n = size / PG;
    for (int r = 0; r < 2 * runs; r++) {
        int fenced = r % 2;
        rc = fenced ? cr_region_fence(lo, hi) : cr_region_fence(0, 0);
        if (rc == 0)
            rc = cr_region_collect(NULL, NULL);
        for (size_t i = 0; rc == 0 && i < n; i += 100)
            data[i * PG] = (char)(r + 5);
        size_t got = 0;
        double t0 = now();
        if (rc == 0)
            rc = cr_region_snapshot(0, count_pages, &got);
        t[fenced][r / 2] = (now() - t0) * 1e3;
        if (rc == 0)
            rc = cr_region_rearm(always_same, NULL);
        if (rc) {
            fprintf(stderr, "fence run: %s\n", cr_strerror(rc));
            exit(1);
        }
        fc.pages = CR_MAX(fc.pages, got);
    }
    fc.open_ms = median(t[0], runs);
    fc.fenced_ms = median(t[1], runs);
    close_tracked();
    return fc;
}

/* ---- driver ------------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: bench_region [--quick] [--runs N] [--budget SECONDS] [--csv FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o = { .runs = 5, .budget_s = 20 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            o.quick = 1, o.runs = 3, o.budget_s = 5;
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            o.runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc)
            o.budget_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            if (!(o.csv = fopen(argv[++i], "w"))) {
                perror(argv[i]);
                return 1;
            }
        } else
            usage();
    }
    if (o.runs < 1 || o.runs > MAX_RUNS)
        usage();
    static const size_t full_sizes[] = { 64UL << 20, 256UL << 20, 1UL << 30, 4UL << 30 };
    static const size_t quick_sizes[] = { 64UL << 20, 1UL << 30 };
    static const double full_fracs[] = { 0.001, 0.01, 0.1, 1.0 };
    static const double quick_fracs[] = { 0.001, 0.01, 1.0 };
    const size_t *sizes = o.quick ? quick_sizes : full_sizes;
    int nsizes = o.quick ? 2 : 4;
    const double *fracs = o.quick ? quick_fracs : full_fracs;
    int nfracs = o.quick ? 3 : 4;

    if (o.csv)
        fprintf(o.csv, "kind,tracker,size_mib,fraction,pattern,pages_written,pages_reported,"
                       "median_ms,memcpy_ms,fork_ms,memcpy_over_collect,fork_over_collect,"
                       "first_write_ns,plain_write_ns,rearm_ms,unfenced_ms\n");

    printf("crmpi region benchmark: %d runs per figure (median); written pages either spread "
           "(every k-th page) or one block\n\n", o.runs);
    double plain = first_write_ns(0, o.runs);
    double fw[4] = { 0 };
    printf("first write to a page after re-arming (64 MiB, populated), per page:\n");
    printf("  %-11s %9.1f ns  (baseline: untracked warm buffer)\n", "plain", plain);
    for (int k = 1; k <= 3; k++) {
        fw[k] = first_write_ns(k, o.runs);
        printf("  %-11s %9.1f ns  %6.1fx the untracked write\n", tracker_names[k], fw[k],
               fw[k] / plain);
        if (o.csv)
            fprintf(o.csv, "first_write,%s,64,,,,,,,,,,%.1f,%.1f,,\n", tracker_names[k], fw[k], plain);
    }
    struct split splits[16];
    int nsplit = 0;
    printf("\ncollect + re-arm (ms) against a full memcpy and a fork() of the same data:\n");
    printf("%-8s %-11s %8s %-7s %9s %9s %10s %9s %9s %9s %7s\n", "size", "tracker", "written",
           "pattern", "pages", "reported", "collect", "memcpy", "fork", "memcpy/x", "fork/x");
    for (int s = 0; s < nsizes; s++) {
        size_t size = sizes[s], npages = size / PG;
        struct baseline b = measure_baselines(size, o.runs);
        printf("%-8s %-11s %8s %-7s %9s %9s %10s %9.2f %9.2f\n",
               size >= 1UL << 30 ? (size == 1UL << 30 ? "1 GiB" : "4 GiB")
                                 : (size == 64UL << 20 ? "64 MiB" : "256 MiB"),
               "(baseline)", "", "", "", "", "", b.memcpy_ms, b.fork_ms);
        for (int k = 1; k <= 3; k++) {
            /* populate + per fraction (written pages x runs), all through faults */
            double est = (double)npages * fw[k] * 1e-9;
            for (int f = 0; f < nfracs; f++)
                est += (double)npages * fracs[f] * fw[k] * 1e-9 * o.runs * (fracs[f] < 1 ? 2 : 1);
            if (est > o.budget_s) {
                printf("%-8s %-11s skipped: estimated %.0f s of faulting writes "
                       "(budget %.0f s; --budget to raise)\n", "", tracker_names[k], est,
                       o.budget_s);
                if (o.csv)
                    fprintf(o.csv, "skipped,%s,%zu,,,,,,,,,,,,,\n", tracker_names[k], size >> 20);
                continue;
            }
            char *data = open_tracked(k, size);
            for (int f = 0; f < nfracs; f++)
                for (int block = 0; block <= (fracs[f] < 1); block++) {
                    struct cell c = measure_collect(data, size, fracs[f], block, o.runs);
                    printf("%-8s %-11s %7.1f%% %-7s %9zu %9zu %10.3f %9s %9s %9.1f %7.1f%s\n", "",
                           tracker_names[k], fracs[f] * 100, block ? "block" : "spread",
                           c.written, c.reported, c.ms, "", "", b.memcpy_ms / c.ms,
                           b.fork_ms / c.ms, c.reported != c.written ? "  (over-reported)" : "");
                    if (o.csv)
                        fprintf(o.csv, "collect,%s,%zu,%g,%s,%zu,%zu,%.4f,%.3f,%.3f,%.2f,%.2f,,,,\n",
                                tracker_names[k], size >> 20, fracs[f], block ? "block" : "spread",
                                c.written, c.reported, c.ms, b.memcpy_ms, b.fork_ms,
                                b.memcpy_ms / c.ms, b.fork_ms / c.ms);
                }
            if (k == 1)       /* uffd-async defers its re-arm: the split */
                for (int f = 0; f < nfracs && nsplit < 16; f++)
                    if (fracs[f] < 1)
                        splits[nsplit++] = measure_split(data, size, fracs[f], o.runs);
            close_tracked();
        }
    }
    printf("\nuffd-async, spread pages: the snapshot (scan only; an asynchronous checkpoint's "
           "blocking phase)\nand the deferred re-arm (the background writer's), ms:\n");
    printf("%-8s %8s %9s %10s %10s\n", "MiB", "written", "pages", "snapshot", "re-arm");
    for (int i = 0; i < nsplit; i++) {
        const struct split *sp = &splits[i];
        printf("%-8zu %7.1f%% %9zu %10.3f %10.3f\n", sp->size >> 20, sp->fraction * 100,
               sp->pages, sp->snapshot_ms, sp->rearm_ms);
        if (o.csv)
            fprintf(o.csv, "split,uffd-async,%zu,%g,spread,%zu,%zu,%.4f,,,,,,,%.4f,\n",
                    sp->size >> 20, sp->fraction, sp->pages, sp->pages, sp->snapshot_ms,
                    sp->rearm_ms);
    }
    printf("\nuffd-async snapshot, 1%% of the data written (spread), with 256 MiB never "
           "touched in front\nof it (the heap's page map for a 64 GiB region), open or "
           "fenced off (cr_region_fence), ms:\n");
    printf("%-8s %9s %10s %10s %8s\n", "MiB", "pages", "open", "fenced", "ratio");
    for (int s = 0; s < nsizes; s++) {
        struct fence_cell fc = measure_fence(sizes[s], o.runs);
        printf("%-8zu %9zu %10.3f %10.3f %7.2fx\n", fc.size >> 20, fc.pages, fc.open_ms,
               fc.fenced_ms, fc.open_ms / fc.fenced_ms);
        if (o.csv)
            fprintf(o.csv, "fence,uffd-async,%zu,0.01,spread,%zu,%zu,%.4f,,,,,,,,%.4f\n",
                    fc.size >> 20, fc.pages, fc.pages, fc.fenced_ms, fc.open_ms);
    }
    if (o.csv)
        fclose(o.csv);
    return 0;
}
