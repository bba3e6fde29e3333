/*
 * bench_store.c - write and read bandwidth of the checkpoint container
 * against raw write+fsync / read of the same bytes on the same filesystem,
 * in the same run.
 *
 *   mpirun -np N bench_store DIR BYTES_PER_RANK REPS
 *
 * Each rank holds BYTES_PER_RANK of warmed, non-zero data. One repetition:
 *   raw write    every rank write()s its bytes to its own file, fsync
 *   ckpt write   one full epoch of all ranks: begin, put (2 MiB extents),
 *                finish (fsync), commit (with garbage collection of the
 *                previous epoch: CRMPI_KEEP=1), on a store opened once
 *   drop caches  (echo 3 > /proc/sys/vm/drop_caches when permitted, and
 *                posix_fadvise DONTNEED on every file in any case), before
 *                each of the two reads
 *   raw read     every rank read()s its file back
 *   ckpt read    cr_restore_open + cr_restore_pages_to into the buffer
 *                (every extent CRC-checked), then compared with the source
 * The order of raw and container alternates between repetitions, and one
 * untimed round warms the page cache machinery first.
 * Times are from a barrier before to a barrier after (the slowest rank).
 * BENCH_PHASES=1 prints the time of each phase of the container side;
 * BENCH_SELF=1 with one rank uses the serial variant (cr_coll_self, sec2).
 * BENCH_READ_GROUP sets the smallest read of the restore pipeline and
 * BENCH_PIPELINE=1/0 forces its reader thread on/off (default: as
 * CRMPI_RESTORE_READER says).
 * BENCH_RAW_SHARED=1 makes the raw side write one shared file, each rank
 * pwrite()ing its bytes at rank * BYTES_PER_RANK (rank 0 creates it with
 * O_TRUNC inside the timed region), as the container's ranks do; by
 * default each rank writes a file of its own.
 * BENCH_NOFREE=1 writes raw data to a new file each time (no O_TRUNC);
 * with CRMPI_KEEP large the container deletes nothing either: neither side
 * then pays for freeing blocks (with the `discard` mount option, freeing
 * 512 MiB costs 100+ ms here, charged to whichever operation follows).
 * Rank 0 prints one CSV line with the medians over REPS:
 *   nranks,bytes_per_rank,raw_write_MBps,ckpt_write_MBps,raw_read_MBps,
 *   ckpt_read_MBps,cache_drop
 */
#include "coll_mpi.h"
#include "store/store.h"
#include "common/config.h"
#include "common/errors.h"

#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXT (2u << 20)

static int rank, nranks;
static char dir[4096], rawbase[4200], rawpath[4300];
static uint8_t *buf;   /* the rank's data; reads land here too */
static size_t bytes;
static struct cr_coll *coll;

static double now(void)
{
    return MPI_Wtime();
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_store rank %d: %s: %s\n", rank, what, cr_strerror(rc));
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static uint64_t pattern(size_t i)
{
    return (i + 1) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)rank;
}

static void fill(void)
{
    for (size_t i = 0; i < bytes; i += 8) {
        uint64_t v = pattern(i);
        memcpy(buf + i, &v, 8);
    }
}

/* Reads must have brought back exactly the pattern; then scramble buf so
 * the next read has to deliver it again. */
static void check_and_scramble(const char *what)
{
    for (size_t i = 0; i < bytes; i += 8) {
        uint64_t v = pattern(i);
        if (memcmp(buf + i, &v, 8)) {
            fprintf(stderr, "bench_store rank %d: %s returned wrong bytes at %zu\n", rank,
                    what, i);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    memset(buf, 0x5a, bytes);
}

static int raw_seq, raw_shared;
static double raw_write(size_t len)
{
    if (getenv("BENCH_NOFREE"))     /* a new file each time: no blocks freed */
        snprintf(rawpath, sizeof rawpath, "%s.%d", rawbase, ++raw_seq);
    MPI_Barrier(MPI_COMM_WORLD);
    double t = now();

    int fd = -1;
    off_t at = raw_shared ? (off_t)rank * (off_t)len : 0;
    if (raw_shared) {
        if (rank == 0)
            fd = open(rawpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        MPI_Barrier(MPI_COMM_WORLD);
        if (rank != 0)
            fd = open(rawpath, O_WRONLY);
    } else {
        fd = open(rawpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    }
    if (fd < 0)
        die("open raw", -errno);
    for (size_t off = 0; off < len;) {
        ssize_t w = pwrite(fd, buf + off, CR_MIN(len - off, (size_t)1 << 30), at + (off_t)off);
        if (w <= 0)
            die("write raw", -errno);
        off += (size_t)w;
    }
    if (fsync(fd) < 0)
        die("fsync raw", -errno);
    close(fd);
    MPI_Barrier(MPI_COMM_WORLD);
    return now() - t;
}

static double raw_read(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t = now();
    int fd = open(rawpath, O_RDONLY);
    if (fd < 0)
        die("open raw", -errno);
    off_t at = raw_shared ? (off_t)rank * (off_t)bytes : 0;
    for (size_t off = 0; off < bytes;) {
        ssize_t r = pread(fd, buf + off, CR_MIN(bytes - off, (size_t)1 << 30), at + (off_t)off);
        if (r <= 0)
            die("read raw", -errno);
        off += (size_t)r;
    }
    close(fd);
    if (getenv("BENCH_PHASES"))
        fprintf(stderr, "raw read %.3f\n", now() - t);
    MPI_Barrier(MPI_COMM_WORLD);
    return now() - t;
}

/* The application opens its store once; each checkpoint is one epoch. */
static struct cr_store *wst;

static double ckpt_write(struct cr_extent *x, size_t n)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t = now();
    struct cr_store *st = wst;
    struct cr_epoch *ep;
    struct cr_thread_record thr = { .tid = 0, .state = CR_THREAD_RUNNING };
    struct cr_epoch_desc d = { .full = 1, .region_base = x[0].addr, .region_size = n * EXT,
        .nextents = n, .extents = x, .nthreads = 1, .threads = &thr };
    double t1 = now();
    int rc = cr_epoch_begin(st, &d, &ep);
    if (rc < 0)
        die("cr_epoch_begin", rc);
    double t2 = now();
    int local = 0;
    for (size_t i = 0; i < n && !local; i++)
        local = cr_epoch_put(ep, i, buf + (x[i].addr - x[0].addr));
    double t3 = now();
    if (!local)
        local = cr_epoch_finish(ep);
    double t4 = now();
    rc = cr_epoch_commit(st, ep, local);
    if (getenv("BENCH_PHASES"))
        fprintf(stderr, "open %.3f begin %.3f put %.3f finish %.3f commit %.3f\n", t1 - t, t2 - t1,
                t3 - t2, t4 - t3, now() - t4);
    if (rc < 0)
        die("cr_epoch_commit", rc);
    MPI_Barrier(MPI_COMM_WORLD);
    return now() - t;
}

static uintptr_t base_addr;
static void *map(void *arg, uintptr_t addr, size_t len)
{
    return addr >= base_addr && addr + len <= base_addr + bytes ? buf + (addr - base_addr) : NULL;
}
static int zero(void *arg, uintptr_t addr, size_t len)
{
    memset(map(arg, addr, len), 0, len);
    return 0;
}

static double ckpt_read(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t = now();
    struct cr_store *st;
    struct cr_restore *r;
    struct cr_restore_target tg = { map, zero, NULL, NULL };
    int rc = cr_store_open(&st, dir, coll, NULL);
    double t0 = now();
    if (rc == 0)
        rc = cr_restore_open(st, 0, &r);
    if (rc < 0)
        die("cr_restore_open", rc);
    double t1 = now();
    rc = cr_restore_pages_to(r, &tg);
    if (rc < 0)
        die("cr_restore_pages", rc);
    if (getenv("BENCH_PHASES"))
        fprintf(stderr, "read: open %.3f (store %.3f chain %.3f) pages %.3f\n", t1 - t, t0 - t,
                t1 - t0, now() - t1);
    cr_restore_close(r);
    cr_store_close(st);
    MPI_Barrier(MPI_COMM_WORLD);
    return now() - t;
}

/* Drop what the page cache holds of our files. Returns 1 if the global
 * drop_caches worked (on rank 0), 0 if only fadvise was used. */
static int drop_caches(void)
{
    char path[4400];
    int ok = 0;
    snprintf(path, sizeof path, "%s", rawpath);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    for (int e = 1; e < 10000; e++) {
        snprintf(path, sizeof path, "%s/epoch-%012d.h5", dir, e);
        fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        sync();
        FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
        if (f) {
            ok = fputs("3\n", f) >= 0;
            ok = (fclose(f) == 0) && ok;
        }
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return ok;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, dcmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (argc != 4) {
        if (rank == 0)
            fprintf(stderr, "usage: bench_store DIR BYTES_PER_RANK REPS\n");
        MPI_Finalize();
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/ckpt", argv[1]);
    raw_shared = getenv("BENCH_RAW_SHARED") && atoi(getenv("BENCH_RAW_SHARED"));
    if (raw_shared)
        snprintf(rawbase, sizeof rawbase, "%s/raw.shared", argv[1]);
    else
        snprintf(rawbase, sizeof rawbase, "%s/raw.%d", argv[1], rank);
    snprintf(rawpath, sizeof rawpath, "%s", rawbase);
    if (cr_parse_size(argv[2], &bytes) < 0 || bytes % EXT)
        die("size must be a multiple of 2 MiB", -EINVAL);
    int reps = atoi(argv[3]);
    extern size_t cr_restore_read_group;
    if (getenv("BENCH_READ_GROUP") && cr_parse_size(getenv("BENCH_READ_GROUP"), &cr_restore_read_group) < 0)
        die("BENCH_READ_GROUP", -EINVAL);
    extern int cr_restore_pipeline;     /* 1/0: reader thread or not */
    if (getenv("BENCH_PIPELINE"))
        cr_restore_pipeline = atoi(getenv("BENCH_PIPELINE"));
    if (nranks == 1 && getenv("BENCH_SELF"))
        coll = cr_coll_self();      /* the serial variant: sec2 driver */
    else if (cr_coll_mpi_create(MPI_COMM_WORLD, &coll) < 0)
        die("coll", -EIO);
    if (posix_memalign((void **)&buf, 1 << 21, bytes))
        die("memory", -ENOMEM);
    fill();                                     /* warm and non-zero */
    size_t n = bytes / EXT;
    struct cr_extent *x = calloc(n, sizeof *x);
    base_addr = 0x200000000000ULL;
    for (size_t i = 0; i < n; i++)
        x[i] = (struct cr_extent){ base_addr + i * EXT, EXT, 0 };
    double *rw = calloc((size_t)reps, sizeof(double)), *cw = calloc((size_t)reps, sizeof(double));
    double *rr = calloc((size_t)reps, sizeof(double)), *cr = calloc((size_t)reps, sizeof(double));
    /* Warm-up round, not timed: the first writes of a process into the page
     * cache are slower on these machines, whichever side goes first. */
    int orc = cr_store_open(&wst, dir, coll, NULL);
    if (orc < 0)
        die("cr_store_open", orc);
    size_t warm = CR_MIN(n, (size_t)128);      /* 256 MiB is enough to warm up */
    raw_write(warm * EXT);
    ckpt_write(x, warm);
    int dropped = 1;
    for (int k = 0; k < reps; k++) {
        /* Alternate the order so neither side always runs on a fresher disk. */
        if (k % 2 == 0) {
            rw[k] = raw_write(bytes);
            cw[k] = ckpt_write(x, n);
        } else {
            cw[k] = ckpt_write(x, n);
            rw[k] = raw_write(bytes);
        }
        dropped &= drop_caches();
        if (k % 2 == 0) {
            rr[k] = raw_read();
            check_and_scramble("raw read");
            dropped &= drop_caches();
            cr[k] = ckpt_read();
            check_and_scramble("container read");
        } else {
            cr[k] = ckpt_read();
            check_and_scramble("container read");
            dropped &= drop_caches();
            rr[k] = raw_read();
            check_and_scramble("raw read");
        }
        fill();
    }
    cr_store_close(wst);
    double mb = (double)bytes * nranks / 1e6;
    if (rank == 0)
        printf("%d,%zu,%.1f,%.1f,%.1f,%.1f,%s\n", nranks, bytes, mb / median(rw, reps),
               mb / median(cw, reps), mb / median(rr, reps), mb / median(cr, reps),
               dropped ? "drop_caches" : "fadvise");
    if (!getenv("BENCH_KEEP") && (!raw_shared || rank == 0))
        unlink(rawpath);
    if (coll != cr_coll_self())
        cr_coll_mpi_destroy(coll);
    MPI_Finalize();
    return 0;
}
