/*
 * kill_msort.c - kill-test program: recursive mergesort with checkpoints
 * inside the recursion (deep persistent stacks).
 *
 *   kill_msort [N [CKPTS [CUTOFF]]]
 *
 * Sorts N pseudo-random integers (crmalloc'd) with a top-down mergesort that
 * takes CKPTS checkpoints in every subproblem larger than CUTOFF elements:
 * before the first half, between the halves, after the merge, ... so a
 * restart resumes in the middle of nested frames, with loop indices and
 * pointers held in those frames. Prints a checksum of the sorted array and
 * whether it is sorted: the same line with or without kills.
 */
#include <cr.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameters live in the persistent heap, not in globals: after a restart
 * main() does not run again, and globals are not part of a checkpoint. */
struct params {
    int nckpt;
    long cutoff;
};
static long restarts;    /* this run only: reported on stderr */

static void checkpoint(void)
{
    int rc = cr_checkpoint();
    if (rc == CR_RESTARTED)
        restarts++;
    else if (rc < 0) {
        fprintf(stderr, "kill_msort: checkpoint failed: %s\n", cr_strerror(rc));
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

/* The checkpoints are spread over the subproblem: the first before the
 * left half, then between the halves, after the merge, and at the end. */
static void msort(const struct params *p, int *a, int *tmp, long n)
{
    if (n < 2)
        return;
    int big = n > p->cutoff;
    long mid = n / 2;
    if (big && p->nckpt >= 1)
        checkpoint();
    msort(p, a, tmp, mid);
    if (big && p->nckpt >= 2)
        checkpoint();
    msort(p, a + mid, tmp + mid, n - mid);
    if (big && p->nckpt >= 3)
        checkpoint();
    merge(a, tmp, n, mid);
    if (big && p->nckpt >= 4)
        checkpoint();
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    struct params *p = crmalloc(sizeof *p);
    if (!p)
        return 1;
    p->nckpt = argc > 2 ? atoi(argv[2]) : 2;
    p->cutoff = argc > 3 ? atol(argv[3]) : 2048;
    int *a = crmalloc((size_t)n * sizeof *a), *tmp = crmalloc((size_t)n * sizeof *tmp);
    if (!a || !tmp) {
        fprintf(stderr, "kill_msort: crmalloc failed\n");
        return 1;
    }
    uint64_t x = 88172645463325252ULL;
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        a[i] = (int)(x % 1000000007);
    }
    msort(p, a, tmp, n);
    uint64_t h = 1469598103934665603ULL;
    int sorted = 1;
    for (long i = 0; i < n; i++) {
        h = (h ^ (uint32_t)a[i]) * 1099511628211ULL;
        if (i && a[i - 1] > a[i])
            sorted = 0;
    }
    printf("n %ld sorted %d hash %016llx\n", n, sorted, (unsigned long long)h);
    fprintf(stderr, "kill_msort: %ld restarts\n", restarts);
    return sorted ? 0 : 1;
}
