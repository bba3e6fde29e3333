/*
 * test_threads.c - unit tests of persistent threads, the runtime mutex and
 * condition, and the checkpoint rendezvous.
 *
 * Runs without the __libc_start_main hook (linked with cr_internal): the
 * runtime initialises itself lazily in its non-persistent mode (stacks from
 * mmap), which exercises the same thread, wait and rendezvous code. The
 * checkpoint itself is replaced by a test collector that records, under the
 * runtime lock, how many threads had announced their arrival: a rendezvous
 * is correct when every live thread had stopped before it ran.
 */
#include "cutest.h"
#include "exec/exec.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* ---- the test collector ------------------------------------------------------ */

static struct {
    int calls;
    int announced;       /* threads that said "about to arrive" this round   */
    int expect;          /* how many must have arrived when the collector runs */
    int bad_rounds;      /* rounds where fewer had                             */
    int status;          /* what the collector returns                        */
} C;
static pthread_mutex_t announce_lock = PTHREAD_MUTEX_INITIALIZER;

static int test_collector(struct cr_exec_root *root, void *arg)
{
    pthread_mutex_lock(&announce_lock);
    if (C.announced != C.expect)
        C.bad_rounds++;
    C.announced = 0;
    pthread_mutex_unlock(&announce_lock);
    C.calls++;
    return C.status;
}

static int suite_init(void)
{
    cr_exec_lazy_init();
    cr_exec_set_collector(test_collector, NULL);
    return cr_exec_self() ? 0 : 1;
}

static void reset(int expect, int status)
{
    pthread_mutex_lock(&announce_lock);
    C.calls = C.announced = C.bad_rounds = 0;
    C.expect = expect;
    C.status = status;
    pthread_mutex_unlock(&announce_lock);
}

static int arrive(void)
{
    pthread_mutex_lock(&announce_lock);
    C.announced++;
    pthread_mutex_unlock(&announce_lock);
    return cr_checkpoint();
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void *double_it(void *arg)
{
    return (void *)((intptr_t)arg * 2);
}

static void test_create_join_returns_value(void)
{
    crthread_t t[3];
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL_FATAL(crthread_create(&t[i], double_it, (void *)(intptr_t)(i + 10)), 0);
    for (int i = 0; i < 3; i++) {
        void *r = NULL;
        CU_ASSERT_EQUAL(crthread_join(t[i], &r), 0);
        CU_ASSERT_EQUAL((intptr_t)r, 2 * (i + 10));
    }
    CU_ASSERT_EQUAL(crthread_join(t[0], NULL), -ESRCH);   /* joined already */
}

static void test_join_after_thread_finished_keeps_retval(void)
{
    crthread_t t;
    CU_ASSERT_EQUAL_FATAL(crthread_create(&t, double_it, (void *)21), 0);
    sleep_us(20000);
    void *r = NULL;
    CU_ASSERT_EQUAL(crthread_join(t, &r), 0);
    CU_ASSERT_EQUAL((intptr_t)r, 42);
}

static void *exit_early(void *arg)
{
    crthread_exit((void *)7);
}

static void test_crthread_exit_value_seen_by_join(void)
{
    crthread_t t;
    void *r = NULL;
    CU_ASSERT_EQUAL_FATAL(crthread_create(&t, exit_early, NULL), 0);
    CU_ASSERT_EQUAL(crthread_join(t, &r), 0);
    CU_ASSERT_EQUAL((intptr_t)r, 7);
}

static void test_join_self_and_invalid_ids(void)
{
    CU_ASSERT_EQUAL(crthread_self(), 0);
    CU_ASSERT_EQUAL(crthread_join(0, NULL), -ESRCH);
    CU_ASSERT_EQUAL(crthread_join(CR_MAX_THREADS, NULL), -ESRCH);
    CU_ASSERT_EQUAL(crthread_join(CR_MAX_THREADS - 1, NULL), -ESRCH);
    CU_ASSERT_EQUAL(crthread_create(NULL, double_it, NULL), -EINVAL);
}

static void *self_join(void *arg)
{
    return (void *)(intptr_t)crthread_join(crthread_self(), NULL);
}

static void test_join_self_is_edeadlk(void)
{
    crthread_t t;
    void *r;
    CU_ASSERT_EQUAL_FATAL(crthread_create(&t, self_join, NULL), 0);
    CU_ASSERT_EQUAL(crthread_join(t, &r), 0);
    CU_ASSERT_EQUAL((intptr_t)r, -EDEADLK);
}

static void *plain_pthread(void *arg)
{
    int *out = arg;
    out[0] = cr_checkpoint();
    cr_mutex_t m = CR_MUTEX_INITIALIZER;
    out[1] = cr_mutex_lock(&m);
    out[2] = (int)crthread_self();
    return NULL;
}

static void test_non_persistent_thread_gets_estate(void)
{
    pthread_t pt;
    int out[3] = { 0 };
    CU_ASSERT_EQUAL_FATAL(pthread_create(&pt, NULL, plain_pthread, out), 0);
    pthread_join(pt, NULL);
    CU_ASSERT_EQUAL(out[0], CR_ESTATE);
    CU_ASSERT_EQUAL(out[1], CR_ESTATE);
    CU_ASSERT_EQUAL((crthread_t)out[2], CRTHREAD_INVALID);
}

static void test_many_threads_reuse_ids(void)
{
    /* more creations than ids: joined ids are reused */
    for (int round = 0; round < 3; round++) {
        crthread_t t[100];
        for (int i = 0; i < 100; i++)
            CU_ASSERT_EQUAL_FATAL(crthread_create(&t[i], double_it, (void *)(intptr_t)i), 0);
        for (int i = 0; i < 100; i++) {
            void *r;
            CU_ASSERT_EQUAL(crthread_join(t[i], &r), 0);
            CU_ASSERT_EQUAL((intptr_t)r, 2 * i);
        }
    }
}

/* ---- rendezvous ------------------------------------------------------------------ */

#define NT 4
#define ROUNDS 30

struct worker_arg {
    int rounds;
    unsigned seed;
    int results[ROUNDS];
};

static void *rendezvous_worker(void *p)
{
    struct worker_arg *a = p;
    for (int r = 0; r < a->rounds; r++) {
        a->seed = a->seed * 1103515245u + 12345u;
        sleep_us((a->seed >> 16) % 2000);    /* arrive in a random order */
        a->results[r] = arrive();
    }
    return NULL;
}

static void run_rendezvous(int main_joins, int status)
{
    struct worker_arg a[NT];
    crthread_t t[NT];
    reset(main_joins ? NT : NT + 1, status);
    for (int i = 0; i < NT; i++) {
        a[i].rounds = ROUNDS;
        a[i].seed = (unsigned)cutest_rand();
        CU_ASSERT_EQUAL_FATAL(crthread_create(&t[i], rendezvous_worker, &a[i]), 0);
    }
    int mine[ROUNDS];
    if (!main_joins)
        for (int r = 0; r < ROUNDS; r++) {
            sleep_us(cutest_rand() % 2000);
            mine[r] = arrive();
        }
    for (int i = 0; i < NT; i++)
        CU_ASSERT_EQUAL(crthread_join(t[i], NULL), 0);
    CU_ASSERT_EQUAL(C.calls, ROUNDS);
    CU_ASSERT_EQUAL(C.bad_rounds, 0);
    int expect = status ? status : CR_CHECKPOINTED;
    for (int i = 0; i < NT; i++)
        for (int r = 0; r < ROUNDS; r++)
            CU_ASSERT_EQUAL(a[i].results[r], expect);
    if (!main_joins)
        for (int r = 0; r < ROUNDS; r++)
            CU_ASSERT_EQUAL(mine[r], expect);
}

static void test_rendezvous_threads_arrive_in_any_order(void)
{
    run_rendezvous(0, 0);
}

static void test_rendezvous_counts_joiner_as_arrived(void)
{
    run_rendezvous(1, 0);
}

static void test_collector_error_reaches_every_thread(void)
{
    run_rendezvous(0, -EIO);
}

static void *short_lived(void *arg)
{
    sleep_us(30000);
    return NULL;
}

static void test_exiting_thread_completes_rendezvous(void)
{
    crthread_t t;
    reset(1, 0);
    CU_ASSERT_EQUAL_FATAL(crthread_create(&t, short_lived, NULL), 0);
    /* main arrives while t runs; t finishes without checkpointing: the
     * rendezvous must complete when it exits */
    CU_ASSERT_EQUAL(arrive(), CR_CHECKPOINTED);
    CU_ASSERT_EQUAL(C.calls, 1);
    CU_ASSERT_EQUAL(crthread_join(t, NULL), 0);
}

/* ---- mutex and condition ------------------------------------------------------------ */

static cr_mutex_t shared_m = CR_MUTEX_INITIALIZER;
static int holder_done;

static void *hold_then_checkpoint(void *arg)
{
    CU_ASSERT_EQUAL(cr_mutex_lock(&shared_m), 0);
    sleep_us(20000);
    int rc = arrive();                 /* the other thread waits for the mutex */
    holder_done = 1;                   /* before unlock: the waiter reads it under the mutex */
    CU_ASSERT_EQUAL(cr_mutex_unlock(&shared_m), 0);
    return (void *)(intptr_t)rc;
}

static void *wait_for_mutex(void *arg)
{
    sleep_us(5000);
    CU_ASSERT_EQUAL(cr_mutex_lock(&shared_m), 0);
    int saw = holder_done;
    CU_ASSERT_EQUAL(cr_mutex_unlock(&shared_m), 0);
    return (void *)(intptr_t)saw;
}

static void test_rendezvous_counts_mutex_waiter_as_arrived(void)
{
    crthread_t a, b;
    void *ra, *rb;
    reset(1, 0);
    holder_done = 0;
    CU_ASSERT_EQUAL_FATAL(crthread_create(&a, hold_then_checkpoint, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(crthread_create(&b, wait_for_mutex, NULL), 0);
    CU_ASSERT_EQUAL(crthread_join(a, &ra), 0);
    CU_ASSERT_EQUAL(crthread_join(b, &rb), 0);
    CU_ASSERT_EQUAL((intptr_t)ra, CR_CHECKPOINTED);
    CU_ASSERT_EQUAL((intptr_t)rb, 1);     /* got the mutex only after the holder */
    CU_ASSERT_EQUAL(C.calls, 1);
    CU_ASSERT_EQUAL(C.bad_rounds, 0);
}

static void test_mutex_misuse_errors(void)
{
    cr_mutex_t m;
    CU_ASSERT_EQUAL(cr_mutex_init(&m), 0);
    CU_ASSERT_EQUAL(cr_mutex_unlock(&m), -EPERM);
    CU_ASSERT_EQUAL(cr_mutex_lock(&m), 0);
    CU_ASSERT_EQUAL(cr_mutex_lock(&m), -EDEADLK);
    CU_ASSERT_EQUAL(cr_mutex_destroy(&m), -EBUSY);
    CU_ASSERT_EQUAL(cr_mutex_unlock(&m), 0);
    CU_ASSERT_EQUAL(cr_mutex_trylock(&m), 0);
    CU_ASSERT_EQUAL(cr_mutex_unlock(&m), 0);
    CU_ASSERT_EQUAL(cr_mutex_destroy(&m), 0);
    CU_ASSERT_EQUAL(cr_mutex_lock(NULL), -EINVAL);
    cr_cond_t c = CR_COND_INITIALIZER;
    CU_ASSERT_EQUAL(cr_cond_wait(&c, &m), -EPERM);   /* mutex not owned */
    CU_ASSERT_EQUAL(cr_cond_signal(&c), 0);          /* no waiter: no effect */
    CU_ASSERT_EQUAL(cr_cond_destroy(&c), 0);
}

static void *hold_briefly(void *m)
{
    return (void *)(intptr_t)cr_mutex_trylock(m);
}

static void test_trylock_on_held_mutex_is_ebusy(void)
{
    cr_mutex_t m = CR_MUTEX_INITIALIZER;
    crthread_t t;
    void *r;
    CU_ASSERT_EQUAL(cr_mutex_lock(&m), 0);
    CU_ASSERT_EQUAL_FATAL(crthread_create(&t, hold_briefly, &m), 0);
    CU_ASSERT_EQUAL(crthread_join(t, &r), 0);
    CU_ASSERT_EQUAL((intptr_t)r, -EBUSY);
    CU_ASSERT_EQUAL(cr_mutex_unlock(&m), 0);
}

static struct {
    cr_mutex_t m;
    cr_cond_t c;
    int waiting, woken;
} W = { CR_MUTEX_INITIALIZER, CR_COND_INITIALIZER, 0, 0 };

static void *cond_waiter(void *arg)
{
    cr_mutex_lock(&W.m);
    W.waiting++;
    CU_ASSERT_EQUAL(cr_cond_wait(&W.c, &W.m), 0);
    W.woken++;
    cr_mutex_unlock(&W.m);
    return NULL;
}

static int waiting_count(void)
{
    cr_mutex_lock(&W.m);
    int n = W.waiting;
    cr_mutex_unlock(&W.m);
    return n;
}

static int woken_count(void)
{
    cr_mutex_lock(&W.m);
    int n = W.woken;
    cr_mutex_unlock(&W.m);
    return n;
}

static void test_cond_signal_wakes_one_broadcast_wakes_rest(void)
{
    crthread_t t[3];
    W.waiting = W.woken = 0;
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL_FATAL(crthread_create(&t[i], cond_waiter, NULL), 0);
    while (waiting_count() < 3)
        sleep_us(1000);
    sleep_us(10000);
    CU_ASSERT_EQUAL(woken_count(), 0);
    CU_ASSERT_EQUAL(cr_cond_signal(&W.c), 0);
    for (int i = 0; i < 200 && woken_count() < 1; i++)
        sleep_us(1000);
    sleep_us(10000);
    CU_ASSERT_EQUAL(woken_count(), 1);
    CU_ASSERT_EQUAL(cr_cond_broadcast(&W.c), 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(crthread_join(t[i], NULL), 0);
    CU_ASSERT_EQUAL(W.woken, 3);
}

static void *cond_waiter_checkpointing(void *arg)
{
    cr_mutex_lock(&W.m);
    W.waiting++;
    cr_cond_wait(&W.c, &W.m);
    W.woken++;
    cr_mutex_unlock(&W.m);
    return NULL;
}

static void test_rendezvous_counts_cond_waiter_as_arrived(void)
{
    crthread_t t;
    W.waiting = W.woken = 0;
    CU_ASSERT_EQUAL_FATAL(crthread_create(&t, cond_waiter_checkpointing, NULL), 0);
    while (waiting_count() < 1)
        sleep_us(1000);
    reset(1, 0);
    CU_ASSERT_EQUAL(arrive(), CR_CHECKPOINTED);   /* t waits on the condition */
    CU_ASSERT_EQUAL(C.calls, 1);
    CU_ASSERT_EQUAL(woken_count(), 0);
    CU_ASSERT_EQUAL(cr_cond_signal(&W.c), 0);
    CU_ASSERT_EQUAL(crthread_join(t, NULL), 0);
    CU_ASSERT_EQUAL(W.woken, 1);
}

static CU_TestInfo thread_tests[] = {
    CUTEST(test_create_join_returns_value),
    CUTEST(test_join_after_thread_finished_keeps_retval),
    CUTEST(test_crthread_exit_value_seen_by_join),
    CUTEST(test_join_self_and_invalid_ids),
    CUTEST(test_join_self_is_edeadlk),
    CUTEST(test_non_persistent_thread_gets_estate),
    CUTEST(test_many_threads_reuse_ids),
    CU_TEST_INFO_NULL,
};

static CU_TestInfo rendezvous_tests[] = {
    CUTEST(test_rendezvous_threads_arrive_in_any_order),
    CUTEST(test_rendezvous_counts_joiner_as_arrived),
    CUTEST(test_collector_error_reaches_every_thread),
    CUTEST(test_exiting_thread_completes_rendezvous),
    CUTEST(test_rendezvous_counts_mutex_waiter_as_arrived),
    CUTEST(test_rendezvous_counts_cond_waiter_as_arrived),
    CU_TEST_INFO_NULL,
};

static CU_TestInfo sync_tests[] = {
    CUTEST(test_mutex_misuse_errors),
    CUTEST(test_trylock_on_held_mutex_is_ebusy),
    CUTEST(test_cond_signal_wakes_one_broadcast_wakes_rest),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    { "threads", suite_init, NULL, NULL, NULL, thread_tests },
    { "rendezvous", suite_init, NULL, NULL, NULL, rendezvous_tests },
    { "sync", suite_init, NULL, NULL, NULL, sync_tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
