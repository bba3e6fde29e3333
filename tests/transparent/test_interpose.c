/*
 * test_interpose.c - where the interposed malloc family puts memory.
 *
 * Linked with the shared libcr like an application, so main (and the
 * CUnit runner in it) runs on a persistent stack. Rules checked: the
 * application's persistent threads allocate from the region; plain
 * pthreads allocate from glibc; frees and reallocs cross heaps correctly;
 * alignment functions honour their contract in both heaps; glibc-internal
 * allocations (strdup, fopen's FILE) made by the application are persistent.
 * With CRMPI_INTERPOSE=0 (second CTest run, TEST_EXPECT_OFF=1) nothing goes
 * to the region.
 */
#include <cr.h>

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cutest.h"

static uintptr_t region_lo, region_hi;
static int expect_on;

static int in_region(const void *p)
{
    return (uintptr_t)p >= region_lo && (uintptr_t)p < region_hi;
}

static int init(void)
{
    const char *b = getenv("CRMPI_REGION_BASE");
    region_lo = b ? (uintptr_t)strtoull(b, NULL, 0) : 0x200000000000ULL;
    region_hi = region_lo + (64ULL << 30);
    const char *off = getenv("TEST_EXPECT_OFF");
    expect_on = !(off && *off == '1');
    return 0;
}

static void test_main_malloc_lands_in_region(void)
{
    void *p = malloc(100), *q = malloc(1 << 20), *c = calloc(10, 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(in_region(p), expect_on);
    CU_ASSERT_EQUAL(in_region(q), expect_on);
    CU_ASSERT_EQUAL(in_region(c), expect_on);
    for (int i = 0; i < 10000; i++)
        CU_ASSERT_EQUAL_FATAL(((unsigned char *)c)[i], 0);
    CU_ASSERT(malloc_usable_size(p) >= 100);
    CU_ASSERT(malloc_usable_size(q) >= (1 << 20));
    free(p);
    free(q);
    free(c);
    CU_ASSERT_EQUAL(malloc_usable_size(NULL), 0);
}

static void *plain_thread(void *arg)
{
    void **out = arg;
    out[0] = malloc(64);
    out[1] = calloc(1, 4096);
    return NULL;
}

static void test_plain_pthread_malloc_goes_to_glibc(void)
{
    void *got[2] = { 0 };
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, plain_thread, got), 0);
    pthread_join(t, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got[0]);
    CU_ASSERT_FALSE(in_region(got[0]));
    CU_ASSERT_FALSE(in_region(got[1]));
    free(got[0]);             /* a foreign free from the persistent main */
    free(got[1]);
}

static void *persistent_thread(void *arg)
{
    void **out = arg;
    out[0] = malloc(64);
    out[1] = strdup("persistent thread");
    return NULL;
}

static void test_persistent_thread_malloc_lands_in_region(void)
{
    void *got[2] = { 0 };
    crthread_t t;
    int rc = crthread_create(&t, persistent_thread, got);
    if (!expect_on && rc) {
        return;
    }
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(crthread_join(t, NULL), 0);
    CU_ASSERT_EQUAL(in_region(got[0]), expect_on);
    CU_ASSERT_EQUAL(in_region(got[1]), expect_on);
    CU_ASSERT_STRING_EQUAL(got[1], "persistent thread");
    free(got[0]);
    free(got[1]);
}

static void *free_in_thread(void *p)
{
    free(p);
    return NULL;
}

static void test_persistent_block_freed_by_plain_pthread(void)
{
    void *p = malloc(200);
    CU_ASSERT_EQUAL(in_region(p), expect_on);
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, free_in_thread, p), 0);
    pthread_join(t, NULL);
    /* The heap reuses the freed block for the next request of that size. */
    void *q = malloc(200);
    CU_ASSERT_PTR_NOT_NULL(q);
    free(q);
}

static void *realloc_in_thread(void *p)
{
    return realloc(p, 100000);
}

static void test_realloc_moves_between_heaps_keeping_bytes(void)
{
    /* persistent -> glibc: grown by a non-persistent thread */
    unsigned char *p = malloc(3000);
    for (int i = 0; i < 3000; i++)
        p[i] = (unsigned char)(i * 7);
    pthread_t t;
    void *moved = NULL;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, realloc_in_thread, p), 0);
    pthread_join(t, &moved);
    CU_ASSERT_PTR_NOT_NULL_FATAL(moved);
    CU_ASSERT_FALSE(in_region(moved));
    for (int i = 0; i < 3000; i++)
        CU_ASSERT_EQUAL_FATAL(((unsigned char *)moved)[i], (unsigned char)(i * 7));
    /* glibc -> persistent: grown by the persistent main */
    unsigned char *back = realloc(moved, 200000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_EQUAL(in_region(back), expect_on);
    for (int i = 0; i < 3000; i++)
        CU_ASSERT_EQUAL_FATAL(back[i], (unsigned char)(i * 7));
    /* same heap, shrink and NULL / zero-size corners */
    back = realloc(back, 10);
    CU_ASSERT_EQUAL(back[9], (unsigned char)63);
    CU_ASSERT_PTR_NULL(realloc(back, 0));
    void *fresh = realloc(NULL, 50);
    CU_ASSERT_EQUAL(in_region(fresh), expect_on);
    free(fresh);
}

static void test_alignment_functions_honour_alignment(void)
{
    void *p = NULL;
    CU_ASSERT_EQUAL(posix_memalign(&p, 64, 1000), 0);
    CU_ASSERT_EQUAL((uintptr_t)p % 64, 0);
    CU_ASSERT_EQUAL(in_region(p), expect_on);
    free(p);
    CU_ASSERT_EQUAL(posix_memalign(&p, 3, 10), EINVAL);
    CU_ASSERT_EQUAL(posix_memalign(&p, 4, 10), EINVAL);   /* < sizeof(void *) */
    void *a = aligned_alloc(4096, 8192), *m = memalign(256, 77);
    void *v = valloc(10), *pv = pvalloc(5000);
    CU_ASSERT_EQUAL((uintptr_t)a % 4096, 0);
    CU_ASSERT_EQUAL((uintptr_t)m % 256, 0);
    CU_ASSERT_EQUAL((uintptr_t)v % 4096, 0);
    CU_ASSERT_EQUAL((uintptr_t)pv % 4096, 0);
    CU_ASSERT(malloc_usable_size(pv) >= 8192);
    CU_ASSERT_EQUAL(in_region(a), expect_on);
    CU_ASSERT_EQUAL(in_region(v), expect_on);
    free(a);
    free(m);
    free(v);
    free(pv);
}

static void test_glibc_internal_allocations_are_persistent(void)
{
    char *s = strdup("hello");
    CU_ASSERT_EQUAL(in_region(s), expect_on);
    free(s);
    char *tmp = cutest_tmpdir("interpose");
    char path[4096];
    snprintf(path, sizeof path, "%s/f", tmp);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(in_region(f), expect_on);
    fprintf(f, "x\n");
    CU_ASSERT_EQUAL(fclose(f), 0);
    cutest_rmtree(tmp);
    free(tmp);
}

static void test_many_sizes_round_trip(void)
{
    enum { N = 2000 };
    static void *v[N];     /* a global: not on the stack */
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(cutest_rand() % 70000) + 1;
        v[i] = malloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v[i]);
        memset(v[i], i & 0xff, n);
    }
    for (int i = 0; i < N; i += 2)
        free(v[i]);
    for (int i = 1; i < N; i += 2) {
        CU_ASSERT_EQUAL(((unsigned char *)v[i])[0], (unsigned char)(i & 0xff));
        free(v[i]);
    }
}

/* A forked child has no checkpoint of its own: its allocations go to glibc,
 * and it can still free blocks it inherited from the persistent heap. */
static void test_forked_child_allocates_from_glibc(void)
{
    void *inherited = malloc(128);
    CU_ASSERT_EQUAL(in_region(inherited), expect_on);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        void *p = malloc(256);
        int bad = !p || in_region(p);
        free(p);
        free(inherited);
        char *s = strdup("child");
        bad |= !s || in_region(s);
        free(s);
        _exit(bad ? 3 : 0);
    }
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    void *after = malloc(128);     /* the parent still allocates persistently */
    CU_ASSERT_EQUAL(in_region(after), expect_on);
    free(after);
    free(inherited);
}

/* ---- codes we did not write: C library calls that allocate for the caller --- */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* What the C library does for the caller; returns how many checks failed
 * and stores the blocks it handed back in out[0..3]. Run from main, from a
 * persistent thread and from a plain pthread. */
static int libc_work(void *out[4])
{
    int bad = 0;
    char *tmp = cutest_tmpdir("libc");
    char path[4096];
    snprintf(path, sizeof path, "%s/lines", tmp);
    /* printf family with a 1 MiB field (vfprintf takes a work buffer) */
    FILE *f = fopen(path, "w");
    if (!f)
        return 100;
    enum { BIG = 1 << 20 };
    bad += fprintf(f, "%*d\nshort\n", BIG, 42) != BIG + 7;
    bad += fclose(f) != 0;
    /* getline grows its buffer with realloc */
    f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    bad += getline(&line, &cap, f) != BIG + 1;
    bad += !line || strtol(line, NULL, 10) != 42;
    bad += getline(&line, &cap, f) != 6 || strcmp(line, "short\n") != 0;
    fclose(f);
    /* qsort of 1 MiB (glibc's merge sort takes a malloc'd buffer) */
    enum { N = 1 << 18 };
    int *v = malloc(N * sizeof *v);
    for (int i = 0; i < N; i++)
        v[i] = (int)((i * 2654435761u) % 1000003u);
    qsort(v, N, sizeof *v, cmp_int);
    for (int i = 1; i < N; i++)
        bad += v[i - 1] > v[i];
    /* asprintf, open_memstream, strdup */
    char *as = NULL;
    bad += asprintf(&as, "%s-%d", "value", 7) != 7 || strcmp(as, "value-7");
    char *ms = NULL;
    size_t msz = 0;
    FILE *m = open_memstream(&ms, &msz);
    for (int i = 0; i < 10000; i++)
        fprintf(m, "%d,", i);
    fclose(m);
    bad += msz < 10000 || strncmp(ms, "0,1,2,", 6) != 0;
    out[0] = line;
    out[1] = v;
    out[2] = as;
    out[3] = ms;
    cutest_rmtree(tmp);
    free(tmp);
    return bad;
}

struct libc_run { void *out[4]; int bad; };

static void *libc_thread(void *arg)
{
    struct libc_run *r = arg;
    r->bad = libc_work(r->out);
    return NULL;
}

static void check_libc_run(struct libc_run *r, int persistent)
{
    CU_ASSERT_EQUAL(r->bad, 0);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_PTR_NOT_NULL(r->out[i]);
        CU_ASSERT_EQUAL(in_region(r->out[i]), persistent);
        free(r->out[i]);
    }
}

static void test_libc_calls_from_main_are_persistent(void)
{
    struct libc_run r = { 0 };
    r.bad = libc_work(r.out);
    check_libc_run(&r, expect_on);
}

static void test_libc_calls_from_persistent_thread(void)
{
    struct libc_run r = { 0 };
    crthread_t t;
    int rc = crthread_create(&t, libc_thread, &r);
    if (!expect_on && rc)
        return;
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(crthread_join(t, NULL), 0);
    check_libc_run(&r, expect_on);
}

static void test_libc_calls_from_plain_pthread_go_to_glibc(void)
{
    struct libc_run r = { 0 };
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, libc_thread, &r), 0);
    pthread_join(t, NULL);
    check_libc_run(&r, 0);
}

/* A persistent thread grows blocks a plain pthread allocated from glibc:
 * they move into the persistent heap with their bytes. */
static void *glibc_blocks(void *arg)
{
    unsigned char **b = arg;
    for (int i = 0; i < 8; i++) {
        b[i] = malloc((size_t)100 << i);
        for (size_t k = 0; k < ((size_t)100 << i); k++)
            b[i][k] = (unsigned char)(k * 13 + i);
    }
    return NULL;
}

static void *grow_blocks(void *arg)
{
    unsigned char **b = arg;
    for (int i = 0; i < 8; i++)
        b[i] = realloc(b[i], ((size_t)100 << i) * 3);
    return NULL;
}

static void test_persistent_thread_reallocs_glibc_blocks(void)
{
    unsigned char *b[8] = { 0 };
    pthread_t pt;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&pt, NULL, glibc_blocks, b), 0);
    pthread_join(pt, NULL);
    for (int i = 0; i < 8; i++)
        CU_ASSERT_FALSE(in_region(b[i]));
    crthread_t t;
    int rc = crthread_create(&t, grow_blocks, b);
    if (!expect_on && rc)
        return;
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(crthread_join(t, NULL), 0);
    for (int i = 0; i < 8; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(b[i]);
        CU_ASSERT_EQUAL(in_region(b[i]), expect_on);
        CU_ASSERT(malloc_usable_size(b[i]) >= ((size_t)100 << i) * 3);
        for (size_t k = 0; k < ((size_t)100 << i); k++)
            CU_ASSERT_EQUAL_FATAL(b[i][k], (unsigned char)(k * 13 + i));
        free(b[i]);
    }
}

static CU_TestInfo tests[] = {
    CUTEST(test_forked_child_allocates_from_glibc),
    CUTEST(test_main_malloc_lands_in_region),
    CUTEST(test_plain_pthread_malloc_goes_to_glibc),
    CUTEST(test_persistent_thread_malloc_lands_in_region),
    CUTEST(test_persistent_block_freed_by_plain_pthread),
    CUTEST(test_realloc_moves_between_heaps_keeping_bytes),
    CUTEST(test_alignment_functions_honour_alignment),
    CUTEST(test_glibc_internal_allocations_are_persistent),
    CUTEST(test_many_sizes_round_trip),
    CUTEST(test_libc_calls_from_main_are_persistent),
    CUTEST(test_libc_calls_from_persistent_thread),
    CUTEST(test_libc_calls_from_plain_pthread_go_to_glibc),
    CUTEST(test_persistent_thread_reallocs_glibc_blocks),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    { "interpose", init, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
