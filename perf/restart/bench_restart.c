/*
 * bench_restart.c - how long a restart takes, for perf/restart/run.sh.
 *
 *   bench_restart ckpt SIZE      fill SIZE bytes of crmalloc'ed heap (every
 *                                8-byte word a function of its index),
 *                                checkpoint once, leave without marking the
 *                                directory finished (as if killed)
 *   bench_restart resume SIZE    run under the same CRMPI_DIR: the restart
 *                                resumes inside cr_checkpoint(); prints
 *                                "resume_s,full_s,restore_s": seconds from
 *                                BENCH_T0_NS (CLOCK_REALTIME in ns, set by
 *                                the caller just before exec) until the
 *                                application runs again, until every word
 *                                has been read back and verified (for lazy
 *                                restore: every page fetched), and the time
 *                                the engine spent restoring before resuming
 *   bench_restart raw FILE       read() FILE in 4 MiB pieces into a warmed
 *                                4 MiB buffer: the filesystem's read
 *                                bandwidth; prints "seconds,bytes"
 *   bench_restart rawmem FILE    read() FILE in 4 MiB pieces into fresh
 *                                memory of the file's size: what any restore
 *                                pays (first touch of memory is expensive on
 *                                virtual machines); prints "seconds,bytes"
 * Run raw and rawmem with CRMPI_DISABLE=1 (no restore before main).
 */
#include <cr.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t word(uint64_t i) { return i * 0x9e3779b97f4a7c15ULL ^ (i >> 7); }

/* Persistent across the restart: on main's stack and in the heap. */
static int run(size_t size, int resuming)
{
    uint64_t *a = crmalloc(size);
    if (!a) {
        fprintf(stderr, "bench_restart: crmalloc(%zu) failed\n", size);
        return 1;
    }
    size_t n = size / sizeof *a;
    for (size_t i = 0; i < n; i++)
        a[i] = word(i);
    int rc = cr_checkpoint();
    if (rc == CR_CHECKPOINTED) {
        if (resuming) {
            fprintf(stderr, "bench_restart: nothing was restored from %s\n",
                    getenv("CRMPI_DIR") ? getenv("CRMPI_DIR") : "crmpi-ckpt");
            return 1;
        }
        /* Commit now: an asynchronous epoch is committed by the next
         * checkpoint or at exit, and _exit runs no exit handler. */
        rc = cr_checkpoint_wait();
        if (rc) {
            fprintf(stderr, "bench_restart: cr_checkpoint_wait: %s\n", cr_strerror(rc));
            return 1;
        }
        fflush(stdout);
        _exit(0);     /* no "finished" marker: the next start restarts */
    }
    double t_resume = now_real();
    if (rc != CR_RESTARTED) {
        fprintf(stderr, "bench_restart: cr_checkpoint: %s\n", cr_strerror(rc));
        return 1;
    }
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += a[i] != word(i);
    double t_full = now_real();
    if (bad) {
        fprintf(stderr, "bench_restart: %zu words differ after the restart\n", bad);
        return 1;
    }
    const char *t0s = getenv("BENCH_T0_NS");
    double t0 = t0s ? (double)strtoull(t0s, NULL, 10) * 1e-9 : t_resume;
    struct cr_checkpoint_stats st;
    if (cr_checkpoint_stats(&st, sizeof st))
        return 1;
    printf("%.6f,%.6f,%.6f\n", t_resume - t0, t_full - t0, st.restore_seconds);
    fflush(stdout);
    _exit(0);
}

static int raw(const char *path, int fresh)
{
    size_t chunk = 4u << 20;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    struct stat sb;
    if (fstat(fd, &sb))
        return 1;
    size_t bufsz = fresh ? (size_t)sb.st_size + chunk : chunk;
    char *buf = mmap(NULL, bufsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return 1;
    if (fresh)
        madvise(buf, bufsz, MADV_NOHUGEPAGE);   /* as the region */
    else
        memset(buf, 1, chunk);
    double t0 = now_real();
    size_t total = 0;
    for (;;) {
        ssize_t r = read(fd, buf + (fresh ? total : 0), chunk);
        if (r < 0) {
            perror("read");
            return 1;
        }
        if (r == 0)
            break;
        total += (size_t)r;
    }
    printf("%.6f,%zu\n", now_real() - t0, total);
    close(fd);
    munmap(buf, bufsz);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "raw"))
        return raw(argv[2], 0);
    if (argc == 3 && !strcmp(argv[1], "rawmem"))
        return raw(argv[2], 1);
    if (argc == 3 && (!strcmp(argv[1], "ckpt") || !strcmp(argv[1], "resume")))
        return run(strtoull(argv[2], NULL, 0), !strcmp(argv[1], "resume"));
    fprintf(stderr, "usage: bench_restart ckpt|resume SIZE | raw FILE\n");
    return 2;
}
