/*
 * test_heap_stress.c - the heap under several threads: random malloc /
 * calloc / realloc / free with blocks handed between threads (remote
 * frees), every block filled with a pattern derived from its address and
 * size and verified before it is resized or freed, the invariant checker at
 * the end, and a run with CRMPI_HEAP_CHECK=1 (checker on every operation).
 * Also: caches of exited threads are adopted, and more threads than private
 * caches share the locked cache.
 */
#include "cutest.h"
#include "heap_testutil.h"
#include "common/config.h"

#include <pthread.h>
#include <sys/wait.h>

#define MiB (1024UL * 1024)
#define SLOTS 400
#define MAILBOX 256

struct blk { void *p; size_t size; };

static struct {
    pthread_mutex_t lock;
    struct blk items[MAILBOX];
    int n;
} mailbox = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct worker {
    pthread_t tid;
    unsigned long long rng;
    long ops;
    long bad;          /* pattern mismatches and unexpected failures */
    long remote;       /* blocks freed that another thread allocated */
    struct blk slot[SLOTS];
};

static unsigned long long xs(unsigned long long *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

static size_t pick_size(struct worker *w)
{
    unsigned r = (unsigned)(xs(&w->rng) % 100);
    if (r < 80)
        return xs(&w->rng) % 513;
    if (r < 96)
        return 512 + xs(&w->rng) % 16000;
    return 16384 + xs(&w->rng) % 300000;
}

static void put(struct worker *w, struct blk *b)
{
    if (!pat_ok(b->p, b->size))
        w->bad++;
    crfree(b->p);
    b->p = NULL;
}

static void give_or_take(struct worker *w, struct blk *b)
{
    pthread_mutex_lock(&mailbox.lock);
    if (b->p && mailbox.n < MAILBOX) {
        mailbox.items[mailbox.n++] = *b;
        b->p = NULL;
    } else if (!b->p && mailbox.n > 0) {
        *b = mailbox.items[--mailbox.n];
        w->remote++;
    }
    pthread_mutex_unlock(&mailbox.lock);
}

static void one_op(struct worker *w)
{
    struct blk *b = &w->slot[xs(&w->rng) % SLOTS];
    unsigned r = (unsigned)(xs(&w->rng) % 100);
    if (r < 8) {
        give_or_take(w, b);
    } else if (!b->p) {
        b->size = pick_size(w);
        b->p = r < 20 ? crcalloc(1, b->size) : crmalloc(b->size);
        if (!b->p) {
            w->bad++;
            return;
        }
        if (r < 20)
            for (size_t i = 0; i < b->size; i++)
                if (((unsigned char *)b->p)[i]) {
                    w->bad++;
                    break;
                }
        pat_fill(b->p, b->size);
    } else if (r < 40) {
        size_t ns = pick_size(w), keep = CR_MIN(ns, b->size);
        if (!pat_ok(b->p, b->size))
            w->bad++;
        void *old = b->p, *q = crrealloc(b->p, ns);
        if (!q && ns) {
            w->bad++;
            return;
        }
        for (size_t i = 0; q && i < keep / 8; i++)
            if (((uint64_t *)q)[i] != pat_word(old, b->size, i)) {
                w->bad++;
                break;
            }
        b->p = q;
        b->size = ns;
        if (q)
            pat_fill(q, ns);
    } else {
        put(w, b);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (long i = 0; i < w->ops; i++)
        one_op(w);
    for (int i = 0; i < SLOTS; i++)
        if (w->slot[i].p)
            put(w, &w->slot[i]);
    return NULL;
}

static void run_workers(int nthreads, long ops)
{
    struct worker *w = calloc((size_t)nthreads, sizeof *w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    for (int i = 0; i < nthreads; i++) {
        w[i].rng = 0x1234567ULL * (unsigned long long)(i + 1) + cutest_rand();
        w[i].ops = ops;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&w[i].tid, NULL, worker_main, &w[i]), 0);
    }
    long bad = 0, remote = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].tid, NULL);
        bad += w[i].bad;
        remote += w[i].remote;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(remote > 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    struct worker last = { .rng = 99 };
    for (int i = 0; i < mailbox.n; i++)
        put(&last, &mailbox.items[i]);
    mailbox.n = 0;
    CU_ASSERT_EQUAL(last.bad, 0);
    CU_ASSERT_EQUAL(cr_heap_trim(), 0);
    struct cr_heap_stats st;
    CU_ASSERT_EQUAL(cr_heap_stats(&st), 0);
    CU_ASSERT_EQUAL(st.live_bytes, 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    free(w);
}

static void test_stress_four_threads_with_remote_frees(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(1024 * MiB), 0);
    run_workers(4, 150000);
}

static void test_stress_with_checker_on_every_operation(void)
{
    setenv("CRMPI_HEAP_CHECK", "1", 1);
    CU_ASSERT_EQUAL_FATAL(cr_config_reload(), 0);
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    run_workers(2, 1500);
    unsetenv("CRMPI_HEAP_CHECK");
    CU_ASSERT_EQUAL(cr_config_reload(), 0);
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
}

static void *short_lived(void *arg)
{
    void *p[200];
    for (int i = 0; i < 200; i++)
        pat_fill(p[i] = crmalloc(64 + (size_t)i), 64 + (size_t)i);
    for (int i = 0; i < 200; i += 2)
        crfree(p[i]);
    void **keep = arg;
    for (int i = 1; i < 200; i += 2)
        keep[i / 2] = p[i];
    return NULL;
}

static void test_exited_threads_caches_are_adopted(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    static void *kept[20][100];
    for (int t = 0; t < 20; t++) {
        pthread_t tid;
        pthread_create(&tid, NULL, short_lived, kept[t]);
        pthread_join(tid, NULL);
    }
    struct cr_heap_stats st;
    CU_ASSERT_EQUAL(cr_heap_stats(&st), 0);
    CU_ASSERT(st.caches_total <= 2);      /* one for the first thread, reused */
    CU_ASSERT_EQUAL(st.caches_in_use, 0);
    for (int t = 0; t < 20; t++)
        for (int i = 0; i < 100; i++) {
            CU_ASSERT(pat_ok(kept[t][i], 64 + (size_t)(2 * i + 1)));
            crfree(kept[t][i]);              /* remote frees into a FREE cache */
        }
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    CU_ASSERT_EQUAL(cr_heap_trim(), 0);      /* empties the abandoned cache */
    CU_ASSERT_EQUAL(cr_heap_stats(&st), 0);
    CU_ASSERT_EQUAL(st.live_bytes, 0);
    CU_ASSERT_EQUAL(st.small_bytes, 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static pthread_barrier_t many_barrier;

static void *many_main(void *arg)
{
    void *p[50];
    for (int i = 0; i < 50; i++)
        pat_fill(p[i] = crmalloc(32 * (size_t)(i + 1)), 32 * (size_t)(i + 1));
    pthread_barrier_wait(&many_barrier);    /* all threads hold a cache now */
    long *bad = arg;
    for (int i = 0; i < 50; i++) {
        if (!pat_ok(p[i], 32 * (size_t)(i + 1)))
            __atomic_add_fetch(bad, 1, __ATOMIC_RELAXED);
        crfree(p[i]);
    }
    return NULL;
}

static void test_more_threads_than_caches_share_the_locked_cache(void)
{
    enum { N = 150 };
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    static pthread_t tid[N];
    long bad = 0;
    pthread_barrier_init(&many_barrier, NULL, N);
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&tid[i], NULL, many_main, &bad), 0);
    for (int i = 0; i < N; i++)
        pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&many_barrier);
    CU_ASSERT_EQUAL(bad, 0);
    struct cr_heap_stats st;
    CU_ASSERT_EQUAL(cr_heap_stats(&st), 0);
    CU_ASSERT_EQUAL(st.live_bytes, 0);
    CU_ASSERT_EQUAL(st.caches_total, 127);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static int forking_done;   /* atomic */

static void *alloc_loop(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&forking_done, __ATOMIC_RELAXED)) {
        void *p[64];
        for (int i = 0; i < 64; i++)
            p[i] = crmalloc(i % 8 ? 48 : 70000);
        for (int i = 0; i < 64; i++)
            crfree(p[i]);
    }
    return NULL;
}

static void test_fork_during_allocations_leaves_child_heap_usable(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    pthread_t t;
    __atomic_store_n(&forking_done, 0, __ATOMIC_RELAXED);
    pthread_create(&t, NULL, alloc_loop, NULL);
    int failures = 0;
    for (int k = 0; k < 40; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* The other thread is gone here, perhaps in the middle of an
             * operation: no lock may be stuck, and the child's own blocks
             * must be distinct and intact. */
            void *p[100];
            for (int i = 0; i < 100; i++) {
                if (!(p[i] = crmalloc(i % 8 ? 48 : 70000)))
                    _exit(2);
                pat_fill(p[i], i % 8 ? 48 : 70000);
            }
            for (int i = 0; i < 100; i++) {
                if (!pat_ok(p[i], i % 8 ? 48 : 70000))
                    _exit(3);
                crfree(p[i]);
            }
            _exit(0);
        }
        int st = -1;
        waitpid(pid, &st, 0);
        failures += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    __atomic_store_n(&forking_done, 1, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(failures, 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static CU_TestInfo tests[] = {
    CUTEST(test_stress_four_threads_with_remote_frees),
    CUTEST(test_stress_with_checker_on_every_operation),
    CUTEST(test_exited_threads_caches_are_adopted),
    CUTEST(test_more_threads_than_caches_share_the_locked_cache),
    CUTEST(test_fork_during_allocations_leaves_child_heap_usable),
    CU_TEST_INFO_NULL
};
static CU_SuiteInfo suites[] = {
    { "stress", NULL, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
