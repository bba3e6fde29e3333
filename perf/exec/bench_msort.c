/*
 * bench_msort.c - cost of checkpoints inside a recursive computation: the
 * mergesort experiment of the persistent-programs framework.
 *
 *   bench_msort N CKPTS [RUNS]
 *
 * Sorts N pseudo-random ints (crmalloc'd) with a top-down mergesort that
 * takes CKPTS (1..4) checkpoints in every subproblem of more than N/128
 * elements (so every size has about the same number of checkpoints: 127 per
 * checkpoint position), and, in the same process, the same sort of the same
 * data with no checkpoint (the baseline). Each is repeated RUNS times after
 * a warm-up sort; medians are reported. Prints one CSV line:
 *   n,ckpts_per_sub,baseline_s,total_s,checkpoints,s_per_ckpt,bytes_per_ckpt,write_s_per_ckpt,raw_s
 * where s_per_ckpt = (total - baseline) / checkpoints: everything a
 * checkpoint costs the computation, rendezvous and write included, and
 * write_s_per_ckpt the part spent in the collector (collect + store write,
 * from cr_checkpoint_stats), and raw_s the time of the filesystem baseline:
 * write bytes_per_ckpt bytes to a new file in the checkpoint directory,
 * fsync it, rename it, fsync the directory (what any durable checkpoint
 * must do at least; median of 9).
 * Needs libcr's persistent main (link with -lcr); the checkpoint directory
 * is CRMPI_DIR as usual.
 */
#include <cr.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

struct params {
    int nckpt;
    long cutoff;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void checkpoint(void)
{
    int rc = cr_checkpoint();
    if (rc < 0) {
        fprintf(stderr, "bench_msort: checkpoint failed: %s\n", cr_strerror(rc));
        exit(1);
    }
}

static void merge(int *a, int *tmp, long n, long mid)
{
    long i = 0, j = mid, k = 0;
    while (i < mid && j < n)
        tmp[k++] = a[i] <= a[j] ? a[i++] : a[j++];
    while (i < mid)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, (size_t)n * sizeof *a);
}

static void msort(const struct params *p, int *a, int *tmp, long n)
{
    if (n < 2)
        return;
    int ck = p->nckpt > 0 && n > p->cutoff;
    long mid = n / 2;
    if (ck && p->nckpt >= 1)
        checkpoint();
    msort(p, a, tmp, mid);
    if (ck && p->nckpt >= 2)
        checkpoint();
    msort(p, a + mid, tmp + mid, n - mid);
    if (ck && p->nckpt >= 3)
        checkpoint();
    merge(a, tmp, n, mid);
    if (ck && p->nckpt >= 4)
        checkpoint();
}

static void fill(int *a, long n)
{
    uint64_t x = 88172645463325252ULL;
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        a[i] = (int)(x % 1000000007);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Durable write of `bytes` bytes: new file, write, fsync, rename, fsync dir. */
static double raw_write(const char *dir, size_t bytes)
{
    char tmp[4096], dst[4096];
    snprintf(tmp, sizeof tmp, "%s/raw.tmp", dir);
    snprintf(dst, sizeof dst, "%s/raw", dir);
    char *buf = malloc(bytes ? bytes : 1);
    if (!buf)
        return -1;
    memset(buf, 0x5a, bytes);
    double t[9];
    for (int i = 0; i < 9; i++) {
        double t0 = now();
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (fd < 0 || dfd < 0 || write(fd, buf, bytes) != (ssize_t)bytes || fsync(fd) ||
            rename(tmp, dst) || fsync(dfd)) {
            perror("bench_msort: raw write baseline");
            free(buf);
            return -1;
        }
        close(fd);
        close(dfd);
        t[i] = now() - t0;
    }
    unlink(dst);
    free(buf);
    return median(t, 9);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_msort N CKPTS [RUNS]\n");
        return 2;
    }
    long n = atol(argv[1]);
    int nckpt = atoi(argv[2]);
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    if (n < 2 || nckpt < 1 || nckpt > 4 || runs < 1 || runs > 64)
        return 2;
    struct params *p = crmalloc(sizeof *p);
    int *a = crmalloc((size_t)n * sizeof *a), *tmp = crmalloc((size_t)n * sizeof *tmp);
    if (!p || !a || !tmp) {
        fprintf(stderr, "bench_msort: crmalloc failed\n");
        return 1;
    }
    p->cutoff = n / 128 > 1 ? n / 128 : 1;
    double base[64], ck[64], per[64], bytes[64], wr[64];
    uint64_t count = 0;
    p->nckpt = 0;
    fill(a, n);
    msort(p, a, tmp, n);            /* warm-up: touches both arrays */
    checkpoint();                   /* first (full) checkpoint out of the way */
    for (int r = 0; r < runs; r++) {
        p->nckpt = 0;
        fill(a, n);
        double t0 = now();
        msort(p, a, tmp, n);
        base[r] = now() - t0;

        p->nckpt = nckpt;
        fill(a, n);
        checkpoint();               /* the fill is not part of the sort */
        struct cr_checkpoint_stats s0, s1;
        if (cr_checkpoint_stats(&s0, sizeof s0))
            return 1;
        t0 = now();
        msort(p, a, tmp, n);
        ck[r] = now() - t0;
        if (cr_checkpoint_stats(&s1, sizeof s1))
            return 1;
        count = s1.checkpoints - s0.checkpoints;
        per[r] = count ? (ck[r] - base[r]) / (double)count : 0;
        bytes[r] = count ? (double)(s1.total_bytes - s0.total_bytes) / (double)count : 0;
        wr[r] = count ? (s1.total_seconds - s0.total_seconds) / (double)count : 0;
        for (long i = 1; i < n; i++)
            if (a[i - 1] > a[i]) {
                fprintf(stderr, "bench_msort: not sorted\n");
                return 1;
            }
    }
    double mb = median(bytes, runs);
    const char *dir = getenv("CRMPI_DIR");
    double raw = raw_write(dir ? dir : "crmpi-ckpt", (size_t)mb);
    printf("%ld,%d,%.6f,%.6f,%llu,%.6f,%.0f,%.6f,%.6f\n", n, nckpt, median(base, runs),
           median(ck, runs), (unsigned long long)count, median(per, runs), mb, median(wr, runs), raw);
    return 0;
}
