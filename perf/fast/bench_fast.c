/*
 * bench_fast.c - cost of a checkpoint to the application, beside the
 * baselines of the same run (perf/fast/run.sh drives it).
 *
 * Built twice: bench_fast_mpi (libcrmpi; run under mpiexec with 1 or 4
 * ranks) for the sweep and the empty checkpoint, bench_fast_cr (libcr) for
 * the two-thread experiment of the copy-on-write checkpoint paper.
 * Rank 0 prints CSV lines "kind,ranks,heap_MiB,param,value[,value...]":
 *
 *   sweep HEAP_MIB FRACS REPS   heap of HEAP_MIB MiB (crmalloc, warmed), for
 *       each fraction f (percent) of its pages written between checkpoints:
 *       blocked,<np>,<heap>,<f>,<ms crmpi_checkpoint>,<ms commit part>,
 *               <ms copy to staging>,<ms begin>,<ms scan>,<ms CPU floor>
 *         (scan: finding the written pages; CPU floor: every rank's own
 *         work in the call - scan and copy - summed over the ranks and
 *         divided among the node's CPUs (at most one per rank). Every
 *         rank's work comes after the first rank entered the call and
 *         before the last leaves begin, so the slowest rank is blocked for
 *         at least that. But the parts are wall times: a rank preempted
 *         by another during its scan or copy counts the wait too, and
 *         where ranks share CPUs the floor can then overstate the bound)
 *       bytes,<np>,<heap>,<f>,<dirty bytes>,<page bytes written>,<file bytes>
 *       writer,<np>,<heap>,<f>,<MB/s writer>,<MB/s raw write+fsync same bytes>,
 *              <ms the writer spent re-arming dirty-page tracking first>,
 *              <ms it spent publishing the previous epoch's index>
 *         (MB/s writer: the epoch's bytes over its puts and finish, tables
 *         and fsync included; the re-arm and the index publication, which
 *         the same job does first, are reported apart)
 *       base,<np>,<heap>,0,<ms memcpy heap>,<ms fork>,<ms write+fsync heap>
 *       track,<np>,<heap>,<f>,<ms loop tracked>,<ms loop untracked>
 *       full,<np>,<heap>,1,<ms blocked>,<ms copy>,<ms begin>,<n staged>,
 *            <ms writer>
 *         (full epochs, timed apart: see full_epochs())
 *   full HEAP_MIB REPS   only the full epochs of the sweep (run.sh runs it
 *       with CRMPI_FULL_FROM_CHAIN=0 for the baseline: kind fullmem)
 *     Baseline buffers are mmap'd, outside the persistent region.
 *     Between checkpoints the program waits until the writer has finished
 *     (cr_checkpoint_stats().writing: the computation the writer overlaps),
 *     so "blocked" is the steady state of an application whose compute
 *     phase is longer than the write.
 *   empty REPS      crmpi_checkpoint() with nothing written since the last:
 *       empty,<np>,0,0,<ms median>
 *   paper DATA_MIB  (bench_fast_cr) two persistent threads share DATA_MIB
 *       MiB; for each modified size 4 KiB .. 1 MiB, 10 checkpoints with that
 *       many bytes modified between them:
 *       paper,1,<data>,<bytes modified>,<ms per checkpoint>,<ms memcpy data>
 */
#ifdef WITH_MPI
#include <crmpi.h>
#else
#include <cr.h>
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define CR_MIN_SZ(a, b) ((a) < (b) ? (a) : (b))
static int rank, np = 1;

/* Memory for the baselines, outside the persistent region: in transparent
 * mode (the default) malloc of a persistent thread - main here - comes from
 * the persistent heap, which is tracked and checkpointed like the heap
 * under test and would make every baseline measure crmpi as well. */
static void *plain_alloc(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void plain_free(void *p, size_t len)
{
    if (p)
        munmap(p, len);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The slowest rank's figure: what a collective operation costs the job. */
static double maxall(double v)
{
#ifdef WITH_MPI
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
#endif
    return v;
}

static double sumall(double v)
{
#ifdef WITH_MPI
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#endif
    return v;
}

/* CPUs the job's ranks share (the benchmark runs on one node): at most one
 * per rank. */
static double cpus_for_ranks(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    return (double)(cpus < np ? cpus : np);
}

static void barrier(void)
{
#ifdef WITH_MPI
    MPI_Barrier(MPI_COMM_WORLD);
#endif
}

static int ckpt(void)
{
#ifdef WITH_MPI
    return crmpi_checkpoint();
#else
    return cr_checkpoint();
#endif
}

static int ckpt_wait(void)
{
#ifdef WITH_MPI
    return crmpi_checkpoint_wait();
#else
    return cr_checkpoint_wait();
#endif
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_fast: %s: %s\n", what, rc < 0 ? cr_strerror(rc) : "failed");
    exit(1);
}

static struct cr_checkpoint_stats stats(void)
{
    struct cr_checkpoint_stats s;
    if (cr_checkpoint_stats(&s, sizeof s))
        die("cr_checkpoint_stats", -1);
    return s;
}

/* Write one byte in each of n pages spread evenly over the buffer. */
static void dirty(uint8_t *p, size_t pages, size_t n, uint8_t v)
{
    if (!n)
        return;
    double step = (double)pages / (double)n;
    for (size_t i = 0; i < n; i++)
        p[(size_t)(i * step) * PAGE] = v;
}

/* Raw write+fsync of len bytes from buf to a scratch file in CRMPI_DIR's
 * parent (the same filesystem); seconds. */
static double raw_write(const void *buf, size_t len, const char *tag)
{
    char path[4096];
    const char *dir = getenv("CRMPI_DIR");
    snprintf(path, sizeof path, "%s.raw-%s-%d", dir ? dir : "crmpi-ckpt", tag, rank);
    double t0 = now();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        die("open raw file", -1);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)buf + off, len - off);
        if (w <= 0)
            die("write raw file", -1);
        off += (size_t)w;
    }
    if (fsync(fd))
        die("fsync raw file", -1);
    double t = now() - t0;
    close(fd);
    unlink(path);
    return t;
}

/* Size of the newest epoch file: page bytes + tables + HDF5 metadata.
 * Shared by the ranks: divided by np for a per-rank figure. */
static double newest_epoch_bytes(void)
{
    const char *dir = getenv("CRMPI_DIR");
    DIR *d = opendir(dir ? dir : "crmpi-ckpt");
    if (!d)
        return 0;
    char best[300] = "";
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "epoch-", 6) && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    closedir(d);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "crmpi-ckpt", best);
    struct stat sb;
    return stat(path, &sb) == 0 ? (double)sb.st_size : 0;
}

static void baselines(uint8_t *heap, size_t len, size_t mib, int reps)
{
    uint8_t *copy = plain_alloc(len);
    if (!copy)
        die("baseline copy buffer", -ENOMEM);
    memset(copy, 1, len);                       /* warm: first touch is slow here */
    double tm[16], tf[16], tw[16];
    /* Each baseline in its own loop: a memcpy after a fork() would pay
     * copy-on-write faults that are no part of its cost. */
    for (int r = 0; r < reps; r++) {
        barrier();
        double t0 = now();
        memcpy(copy, heap, len);
        tm[r] = maxall(now() - t0);
        if (copy[len / 2 + (size_t)r] != heap[len / 2 + (size_t)r])
            die("memcpy baseline", -EIO);     /* and the copy is used */
    }
    plain_free(copy, len);   /* fork() copies the page tables of the heap alone */
    for (int r = 0; r < reps; r++) {
        barrier();
        double t0 = now();
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        tf[r] = maxall(now() - t0);             /* what the parent is blocked for */
        waitpid(pid, NULL, 0);
    }
    for (int r = 0; r < reps; r++) {
        barrier();
        tw[r] = maxall(raw_write(heap, len, "heap"));
    }
    if (rank == 0)
        printf("base,%d,%zu,0,%.3f,%.3f,%.3f\n", np, mib, 1e3 * median(tm, reps),
               1e3 * median(tf, reps), 1e3 * median(tw, reps));
}

/* A compute loop that writes fraction f of the pages (first write to each
 * after a checkpoint is a tracking fault), beside the same loop on malloc
 * memory. */
static void tracking(uint8_t *heap, size_t pages, double pct, int reps)
{
    size_t n = (size_t)(pages * pct / 100.0);
    uint8_t *plain = plain_alloc(pages * PAGE);
    if (!plain)
        die("baseline buffer", -ENOMEM);
    memset(plain, 1, pages * PAGE);
    double tt[16], tp[16];
    for (int r = 0; r < reps; r++) {
        int rc = ckpt();
        if (rc < 0)
            die("checkpoint", rc);
        while (stats().writing)   /* the loop alone, not the writer beside it */
            usleep(1000);
        double t0 = now();
        for (int k = 0; k < 4; k++)
            dirty(heap, pages, n, (uint8_t)(k + r));
        tt[r] = now() - t0;
        t0 = now();
        for (int k = 0; k < 4; k++)
            dirty(plain, pages, n, (uint8_t)(k + r));
        tp[r] = now() - t0;
    }
    double a = maxall(median(tt, reps)), b = maxall(median(tp, reps));
    if (rank == 0)
        printf("track,%d,%zu,%g,%.3f,%.3f\n", np, pages * PAGE >> 20, pct, 1e3 * a, 1e3 * b);
    plain_free(plain, pages * PAGE);
}

/* Every CRMPI_FULL_EVERY-th checkpoint is full. By default (async,
 * CRMPI_FULL_FROM_CHAIN=1) it stages the written pages only and the writer
 * takes the others from the previous epoch's files; with
 * CRMPI_FULL_FROM_CHAIN=0 it stages every populated page (or, beyond
 * CRMPI_STAGING_MAX, writes them before returning): kind "fullmem", the
 * baseline run.sh measures in the same run. The sweep's medians are of
 * incremental ones; this times full ones apart, with 1% of the pages
 * written between checkpoints, until `reps` full epochs were seen:
 *   full|fullmem,<np>,<heap>,1,<ms blocked>,<ms copy to staging>,<ms begin>,
 *        <how many of them were staged (the others were written in the call)>,
 *        <ms the writer took for the epoch (slowest rank; 0 when written in the call)> */
static void full_epochs(uint8_t *heap, size_t pages, size_t mib, int reps)
{
    const char *chain = getenv("CRMPI_FULL_FROM_CHAIN");
    const char *kind = chain && !strcmp(chain, "0") ? "fullmem" : "full";
    double tb[16], ts[16], tbeg[16], twr[16];
    int staged = 0, r = 0;
    size_t n = pages / 100 ? pages / 100 : 1;
    for (int guard = 0; r < reps && guard < 64 * reps; guard++) {
        dirty(heap, pages, n, (uint8_t)(40 + guard));
        while (stats().writing)
            usleep(1000);
        barrier();
        double t0 = now();
        int rc = ckpt();
        double t = maxall(now() - t0);
        if (rc < 0)
            die("checkpoint", rc);
        struct cr_checkpoint_stats s = stats();   /* the same decision on every rank */
        double st = maxall(s.last_stage_seconds), bg = maxall(s.last_begin_seconds);
        if (s.last_full) {
            tb[r] = t;
            ts[r] = st;
            tbeg[r] = bg;
            staged += s.last_async;
            r++;
        }
        if ((rc = ckpt_wait()) < 0)
            die("checkpoint_wait", rc);
        if (s.last_full)
            twr[r - 1] = maxall(stats().last_write_seconds);
    }
    if (rank == 0 && r > 0)
        printf("%s,%d,%zu,1,%.3f,%.3f,%.3f,%d,%.1f\n", kind, np, mib, 1e3 * median(tb, r),
               1e3 * median(ts, r), 1e3 * median(tbeg, r), staged, 1e3 * median(twr, r));
}

/* Full checkpoints alone (run.sh's baseline with CRMPI_FULL_FROM_CHAIN=0). */
static void full_only(size_t mib, int reps)
{
    size_t len = mib << 20, pages = len / PAGE;
    uint8_t *heap = crmalloc(len);
    if (!heap)
        die("crmalloc heap", -12);
    memset(heap, 3, len);
    int rc = ckpt();
    if (rc < 0 || (rc = ckpt_wait()) < 0)
        die("first checkpoint", rc);
    full_epochs(heap, pages, mib, reps);
    fflush(stdout);
    crfree(heap);
}

static void sweep(size_t mib, const char *fracs, int reps)
{
    size_t len = mib << 20, pages = len / PAGE;
    uint8_t *heap = crmalloc(len);
    if (!heap)
        die("crmalloc heap", -12);
    memset(heap, 3, len);
    int rc = ckpt();                 /* the full epoch */
    if (rc < 0 || (rc = ckpt_wait()) < 0)
        die("first checkpoint", rc);
    baselines(heap, len, mib, reps);
    uint8_t *rawbuf = NULL;
    char *list = strdup(fracs);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        double pct = atof(tok);
        size_t n = (size_t)(pages * pct / 100.0);
        if (n == 0)
            n = 1;
        double tb[16], tc[16], ts[16], tbeg[16], wr[16], raw[16], trearm[16], tidx[16];
        double tscan[16], tfloor[16];
        double written = 0, file = 0;
        /* one round untimed: the staging buffer grows to this size, and
         * the writer's time for this size is known */
        dirty(heap, pages, n, 8);
        if ((rc = ckpt()) < 0)
            die("checkpoint", rc);
        dirty(heap, pages, n, 9);       /* a job with an index to publish too */
        if ((rc = ckpt()) < 0 || (rc = ckpt_wait()) < 0)
            die("checkpoint", rc);
        for (int r = 0; r < reps; r++) {
            struct cr_checkpoint_stats s;
            dirty(heap, pages, n, (uint8_t)(10 + r));
            /* the computation the writer overlaps: at least as long as the
             * write of the previous checkpoint */
            while (stats().writing)
                usleep(1000);
            barrier();
            double t0 = now();
            rc = ckpt();
            double t = now() - t0;
            if (rc < 0)
                die("checkpoint", rc);
            s = stats();
            tb[r] = maxall(t);
            tc[r] = maxall(s.last_commit_seconds);
            ts[r] = maxall(s.last_stage_seconds);
            tbeg[r] = maxall(s.last_begin_seconds);
            tscan[r] = maxall(s.last_collect_seconds);
            tfloor[r] = sumall(s.last_collect_seconds + s.last_stage_seconds) / cpus_for_ranks();
            written = (double)s.last_bytes;
            if ((rc = ckpt_wait()) < 0)
                die("checkpoint_wait", rc);
            s = stats();
            wr[r] = s.last_write_seconds > 0 ? written / s.last_write_seconds / 1e6 : 0;
            trearm[r] = maxall(s.last_rearm_seconds);
            tidx[r] = maxall(s.last_index_seconds);
            file = newest_epoch_bytes() / np;
            if (!rawbuf) {
                rawbuf = plain_alloc(n * PAGE);
                if (!rawbuf)
                    die("raw write buffer", -ENOMEM);
                memset(rawbuf, 5, n * PAGE);
            }
            raw[r] = written / raw_write(rawbuf, CR_MIN_SZ((size_t)written, n * PAGE), "dirty") / 1e6;
            barrier();
        }
        if (rank == 0) {
            printf("blocked,%d,%zu,%g,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f\n", np, mib, pct,
                   1e3 * median(tb, reps), 1e3 * median(tc, reps), 1e3 * median(ts, reps),
                   1e3 * median(tbeg, reps), 1e3 * median(tscan, reps),
                   1e3 * median(tfloor, reps));
            printf("bytes,%d,%zu,%g,%zu,%.0f,%.0f\n", np, mib, pct, n * PAGE, written, file);
            printf("writer,%d,%zu,%g,%.1f,%.1f,%.3f,%.3f\n", np, mib, pct, median(wr, reps),
                   median(raw, reps), 1e3 * median(trearm, reps), 1e3 * median(tidx, reps));
            fflush(stdout);
        }
        plain_free(rawbuf, n * PAGE);
        rawbuf = NULL;
        tracking(heap, pages, pct, reps);
        fflush(stdout);
    }
    free(list);
    full_epochs(heap, pages, mib, reps);
    fflush(stdout);
}

static void empty(int reps)
{
    double t[64];
    int rc = ckpt();
    if (rc < 0 || (rc = ckpt_wait()) < 0)
        die("first checkpoint", rc);
    for (int r = 0; r < reps + 1; r++) {
        barrier();
        double t0 = now();
        rc = ckpt();
        if (rc < 0)
            die("checkpoint", rc);
        if (r)
            t[r - 1] = maxall(now() - t0);
        usleep(20000);
    }
    if (rank == 0)
        printf("empty,%d,0,0,%.3f\n", np, 1e3 * median(t, reps));
}

#ifndef WITH_MPI
/* The copy-on-write checkpoint paper's experiment: two threads, data of
 * DATA bytes, 10 checkpoints with `mod` bytes modified between them.
 * Each thread times its own cr_checkpoint() calls; a checkpoint blocked the
 * program as long as the slower of the two was inside it. Run twice: back
 * to back (the next checkpoint then waits for the background writer of
 * the previous one: the rate at which epochs can be made durable) and with
 * `gap_ms` of the program's own time between checkpoints, in which the
 * writer finishes (what the program pays when checkpoints are spaced as
 * applications space them). */
struct paper_arg { uint8_t *p; size_t len, mod; int gap_ms; double t[10]; };
static void *paper_thread(void *v)
{
    struct paper_arg *a = v;
    for (int c = 0; c < 10; c++) {
        for (size_t i = 0; i < a->mod; i += 64)
            a->p[(i + (size_t)c * a->mod) % a->len] = (uint8_t)c;
        if (a->gap_ms) {
            struct timespec ts = { 0, (long)a->gap_ms * 1000000L };
            nanosleep(&ts, NULL);
        }
        double t0 = now();
        if (cr_checkpoint() < 0)
            return (void *)1;
        a->t[c] = now() - t0;
    }
    return NULL;
}

static void paper(size_t mib)
{
    size_t len = mib << 20;
    uint8_t *data = crmalloc(len), *copy = plain_alloc(len);
    if (!data || !copy)
        die("paper buffers", -ENOMEM);
    memset(data, 1, len);
    memset(copy, 2, len);
    int rc = ckpt();
    if (rc < 0 || (rc = ckpt_wait()) < 0)
        die("first checkpoint", rc);
    double tm[5];
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        memcpy(copy, data, len);
        tm[r] = now() - t0;
    }
    double mcp = median(tm, 5);
    static const int gaps[] = { 0, 100 };
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++)
        for (size_t mod = 4096; mod <= (1 << 20); mod *= 4) {
            struct paper_arg a[2] = { { data, len / 2, mod / 2, gaps[g], { 0 } },
                                      { data + len / 2, len / 2, mod / 2, gaps[g], { 0 } } };
            crthread_t t;
            double t0 = now();
            if ((rc = crthread_create(&t, paper_thread, &a[1])) != 0)
                die("crthread_create", rc);
            if (paper_thread(&a[0]))
                die("checkpoint", -1);
            void *ret;
            if ((rc = crthread_join(t, &ret)) != 0 || ret)
                die("crthread_join", rc);
            /* wall time per checkpoint, gaps excluded; the work itself
             * (writing mod bytes) is in it too: negligible beside a
             * checkpoint, and it is what the paper's figure included */
            double per = (now() - t0) / 10 - gaps[g] * 1e-3;
            double blk[10], sum = 0;
            for (int c = 0; c < 10; c++) {
                blk[c] = a[0].t[c] > a[1].t[c] ? a[0].t[c] : a[1].t[c];
                sum += blk[c];
            }
            printf("paper,1,%zu,%zu,%.3f,%.3f,%d,%.3f,%.3f\n", mib, mod, 1e3 * per, 1e3 * mcp,
                   gaps[g], 1e3 * sum / 10, 1e3 * median(blk, 10));
            fflush(stdout);
            if ((rc = ckpt_wait()) < 0)
                die("checkpoint_wait", rc);
        }
    crfree(data);
    plain_free(copy, len);
}
#endif

int main(int argc, char **argv)
{
#ifdef WITH_MPI
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
#endif
    if (argc < 2)
        die("usage: sweep MIB FRACS REPS | full MIB REPS | empty REPS | paper MIB", -22);
    if (!strcmp(argv[1], "sweep") && argc >= 5) {
        int reps = atoi(argv[4]);
        sweep((size_t)atol(argv[2]), argv[3], reps < 1 ? 1 : reps > 16 ? 16 : reps);
    } else if (!strcmp(argv[1], "empty") && argc >= 3) {
        int reps = atoi(argv[2]);
        empty(reps < 1 ? 1 : reps > 64 ? 64 : reps);
    } else if (!strcmp(argv[1], "full") && argc >= 4) {
        int reps = atoi(argv[3]);
        full_only((size_t)atol(argv[2]), reps < 1 ? 1 : reps > 16 ? 16 : reps);
#ifndef WITH_MPI
    } else if (!strcmp(argv[1], "paper") && argc >= 3) {
        paper((size_t)atol(argv[2]));
#endif
    } else {
        die("usage: sweep MIB FRACS REPS | full MIB REPS | empty REPS | paper MIB", -22);
    }
#ifdef WITH_MPI
    MPI_Finalize();
#endif
    return 0;
}
