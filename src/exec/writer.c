/*
 * writer.c - the background writer of asynchronous checkpoints: one plain
 * pthread per process that puts the staged extents of an epoch into its
 * file and finishes it (tables + fsync) while the application runs on.
 *
 * Contract with engine.c: at most one job at a time. cr_writer_submit()
 * hands over the index publication of the previous epoch (its commit was
 * agreed at this checkpoint; writing the index costs two fsyncs, which the
 * application should not wait for) and an epoch already begun (cr_epoch_begin ran on the application
 * thread: it is collective and calls HDF5) with its extents and the staged
 * bytes; cr_writer_wait() returns the job's local status (and where its
 * time went: re-arm, index, epoch write), after which the
 * caller commits (collectively, on the application thread). The writer
 * itself only calls cr_index_pub_run, cr_epoch_put, cr_epoch_finish and,
 * for a full epoch composed from the previous chain (compose.c), the
 * store's pread-only reader, which use neither HDF5 nor MPI nor state the
 * application thread changes (the store's index changes only at commits,
 * which wait for the job), so it never enters either concurrently with the
 * application.
 *
 * The thread is not a persistent thread: it runs on an ordinary pthread
 * stack, writes no persistent memory (it reads the staging buffer, outside
 * the region, and, re-arming the dirty-page tracking, the region's pages
 * it compares with their staged copies) and is not part of the checkpoint
 * rendezvous. Every signal is
 * blocked in it, so signals meant for the application (the stop signals of
 * mpi-wrap/jobctl.c, SIGSEGV of the mprotect tracker excepted since it is
 * synchronous) are never delivered on it.
 *
 * Priority: the writer runs at nice CRMPI_WRITER_NICE (default 19; Linux
 * nice values are per thread). A rank bound to one core (Open MPI binds
 * to cores by default) keeps its writer on that core, and a writer at the
 * application's priority, woken with the epoch, took the core from the
 * rest of the checkpoint call (measured: 17 ms of a 19 ms call, 1 rank,
 * 1 GiB, 1% written; 0.6-7 ms at nice 19): it re-arms dirty-page tracking
 * first, which is CPU work. At nice 19 it uses the gaps of the computation;
 * a checkpoint that finds it still busy waits for it, and it then has the
 * core to itself, so no work is lost, only moved.
 *
 * Placement (hwloc): the writer binds itself to the last PU of the CPUs the
 * process may run on. MPI launchers and OpenMP runtimes fill PUs from the
 * first one, so the last is the one most often idle (with SMT it is the
 * sibling thread of the last core, which shares no L1/L2 with the first
 * cores). The writer mostly sleeps in pwrite/fsync, so when that PU is
 * busy the cost is a few context switches. When the process may use a
 * single PU there is nothing to choose and the binding is left alone.
 *
 * Start: a job waits until the checkpoint call that submitted it has
 * returned to the application (cr_writer_release: the end of
 * cr_checkpoint(), or of crmpi_checkpoint() after its last collective) and
 * CRMPI_WRITER_DELAY_US more (default 2 ms), or until someone waits for it
 * (cr_writer_wait: the next checkpoint, an explicit wait, exit). The
 * writer's first work, re-arming dirty-page tracking, changes page tables
 * (TLB flushes; hypercalls on virtual machines), and started at once it
 * held back the ranks still finishing the call, among them the last one to
 * notice that its final collective is complete. perf/fast, 4 ranks on 2
 * CPUs, 1 GiB, 1% written, medians of 7 checkpoints per job, alternating
 * jobs, all with the polite collectives (mpi-wrap/polite.c): blocked
 * 8.0-11.5 ms with the writers started at once (as soon as begin was done),
 * 9.4-9.9 ms started when each rank's call returned, 4.9-5.4 ms 2 ms after
 * that, 6.8 ms 10 ms after it, against a CPU floor of 4.0-5.6 ms (every
 * rank's scan + copy over the 2 CPUs). Nothing is lost by the
 * delay: pages written meanwhile differ from their staged copies and are
 * carried to the next epoch (staging.c); the write takes far longer.
 *
 * Fork: a fork() child has no writer thread; the atfork handlers keep the
 * writer's lock consistent and make the child start one afresh if it ever
 * needs it. Shutdown: cr_writer_stop() waits for the job and joins.
 */
#include "exec/exec.h"

#include <errno.h>
#include <hwloc.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/quiet_thread.h"
#include "store/store.h"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t tid;
    int running;                 /* thread started and not joined            */
    int quit;
    int has_job, done;
    int held;                    /* the job waits for cr_writer_release       */
    int grace;                   /* released: start at `start_at` unless waited for */
    struct timespec start_at;    /* CLOCK_MONOTONIC, the condition's clock once started */
    int cv_monotonic;            /* cv made with CLOCK_MONOTONIC (make_cv)      */
    struct cr_write_job job;
    int status;
    struct cr_writer_times times;
    void (*then_fn)(void *);     /* cr_writer_then, run after the job */
    void *then_arg;
    int atfork;
} W = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void lower_priority(void)
{
    unsigned nice = cr_config()->writer_nice;
    if (nice > 19)
        nice = 19;
    if (nice && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), (int)nice) != 0)
        cr_dbg("checkpoint writer: cannot lower its priority to nice %u: %s", nice,
               strerror(errno));
}

static void place(void)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) < 0)
        return;
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set || hwloc_topology_load(topo) < 0 ||
        hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) < 0)
        goto out;
    if (hwloc_bitmap_weight(set) <= 1)
        goto out;
    int last = hwloc_bitmap_last(set);
    if (last < 0)
        goto out;
    hwloc_bitmap_only(set, (unsigned)last);
    if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_THREAD) < 0)
        cr_dbg("checkpoint writer: cannot bind to PU %d: %s", last, strerror(errno));
    else
        cr_dbg("checkpoint writer bound to PU %d", last);
out:
    hwloc_bitmap_free(set);
    hwloc_topology_destroy(topo);
}

static int run_job(const struct cr_write_job *j, struct cr_writer_times *t)
{
    const uint8_t *src = j->data;
    /* First, so that fewer pages written meanwhile land in the next epoch. */
    double t0 = now();
    int rc = j->rearm ? cr_staging_rearm(j->dirty, j->ndirty, j->data) : 0;
    /* Before the index's fsync: the other ranks wait for rank 0's layout. */
    if (rc == 0 && j->ep)
        rc = cr_epoch_prepare(j->ep);
    double tp = now();
    int prc = cr_index_pub_run(j->pub);
    if (prc)
        cr_errc(prc, "cannot publish the checkpoint index (the epoch being written "
                "will not be committed)");
    rc = rc ? rc : prc;
    double t1 = now();
    if (j->st && rc == 0)
        rc = cr_compose_put(j);
    for (size_t i = 0; !j->st && i < j->n && rc == 0;) {
        rc = cr_epoch_put_batch(j->ep, &i, &src);
        if (rc == 0)
            (void)cr_fault("writer-put");
    }
    double t2 = now();
    if (rc == 0)
        rc = cr_epoch_finish(j->ep);
    if (rc == 0)
        (void)cr_fault("writer-finished");
    t->rearm = tp - t0;
    t->index = t1 - tp;
    t->write = now() - t1;
    cr_dbg("writer: re-arm %.3f ms, index %.3f ms, %zu extents put in %.3f ms, finish %.3f ms",
           1e3 * t->rearm, 1e3 * t->index, j->n, 1e3 * (t2 - t1), 1e3 * (now() - t2));
    return rc;
}

static void *writer_main(void *unused)
{
    lower_priority();
    place();
    pthread_mutex_lock(&W.mu);
    for (;;) {
        while ((!W.has_job || W.held) && !W.quit)
            pthread_cond_wait(&W.cv, &W.mu);
        while (W.has_job && W.grace && !W.quit &&
               pthread_cond_timedwait(&W.cv, &W.mu, &W.start_at) != ETIMEDOUT)
            ;
        W.grace = 0;
        if (!W.has_job)
            break;
        struct cr_write_job j = W.job;
        pthread_mutex_unlock(&W.mu);
        struct cr_writer_times t = { 0 };
        int rc = run_job(&j, &t);
        pthread_mutex_lock(&W.mu);
        /* has_job drops in the same critical section as the last check,
         * so a cr_writer_then that saw the job is always run. */
        while (W.then_fn) {
            void (*fn)(void *) = W.then_fn;
            void *arg = W.then_arg;
            W.then_fn = NULL;
            pthread_mutex_unlock(&W.mu);
            fn(arg);
            pthread_mutex_lock(&W.mu);
        }
        W.status = rc;
        W.times = t;
        W.has_job = 0;
        W.done = 1;
        pthread_cond_broadcast(&W.cv);
    }
    pthread_mutex_unlock(&W.mu);
    return NULL;
}

/* The start delay is a timed wait on W.cv: on CLOCK_MONOTONIC, so that a
 * step of the wall clock (NTP, an administrator) neither starts the writer
 * early nor holds an epoch back for as long as the clock went back. Made
 * before the thread exists (nobody can be waiting on the old condition:
 * cr_writer_wait waits only for a job, and there is none yet). */
static void make_cv(void)
{
    pthread_condattr_t a;
    int have_attr = pthread_condattr_init(&a) == 0;
    W.cv_monotonic = have_attr && pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0 &&
                     pthread_cond_init(&W.cv, &a) == 0;
    if (!W.cv_monotonic)
        pthread_cond_init(&W.cv, NULL);
    if (have_attr)
        pthread_condattr_destroy(&a);
}

static void fork_prepare(void) { pthread_mutex_lock(&W.mu); }
static void fork_parent(void) { pthread_mutex_unlock(&W.mu); }
static void fork_child(void)
{
    pthread_mutex_init(&W.mu, NULL);
    make_cv();
    W.running = W.quit = W.has_job = W.done = W.held = W.grace = 0;
    W.then_fn = NULL;
    cr_staging_forget();
}

static int start(void)
{
    if (!W.cv_monotonic) {
        pthread_cond_destroy(&W.cv);   /* the static one; nobody waits on it yet */
        make_cv();
    }
    if (!W.atfork) {
        int rc = pthread_atfork(fork_prepare, fork_parent, fork_child);
        if (rc) {
            cr_errc(-rc, "pthread_atfork for the checkpoint writer");
            return -rc;
        }
        W.atfork = 1;
    }
    int rc = cr_quiet_thread_create(&W.tid, writer_main, NULL, CR_QUIET_BUT_FAULTS);
    if (rc) {
        cr_errc(-rc, "cannot start the checkpoint writer thread");
        return -rc;
    }
    W.running = 1;
    W.quit = 0;
    return 0;
}

int cr_writer_submit(const struct cr_write_job *job)
{
    pthread_mutex_lock(&W.mu);
    int rc = W.has_job ? CR_ESTATE : 0;
    if (rc == 0 && !W.running)
        rc = start();
    if (rc == 0) {
        W.job = *job;
        W.done = 0;
        W.has_job = 1;
        W.held = 1;
        pthread_cond_broadcast(&W.cv);
    }
    pthread_mutex_unlock(&W.mu);
    return rc;
}

void cr_writer_release(void)
{
    pthread_mutex_lock(&W.mu);
    if (W.held) {
        W.held = 0;
        unsigned us = cr_config()->writer_delay_us;
        if (us) {
            clock_gettime(W.cv_monotonic ? CLOCK_MONOTONIC : CLOCK_REALTIME, &W.start_at);
            long long ns = W.start_at.tv_nsec + 1000LL * us;
            W.start_at.tv_sec += (time_t)(ns / 1000000000LL);
            W.start_at.tv_nsec = (long)(ns % 1000000000LL);
            W.grace = 1;
        }
        pthread_cond_broadcast(&W.cv);
    }
    pthread_mutex_unlock(&W.mu);
}

int cr_writer_wait(struct cr_writer_times *t)
{
    pthread_mutex_lock(&W.mu);
    if (W.held || W.grace) {
        W.held = W.grace = 0;
        pthread_cond_broadcast(&W.cv);
    }
    while (W.has_job)
        pthread_cond_wait(&W.cv, &W.mu);
    int rc = W.done ? W.status : CR_ESTATE;
    if (t)
        *t = W.done ? W.times : (struct cr_writer_times){ 0 };
    W.done = 0;
    pthread_mutex_unlock(&W.mu);
    return rc;
}

void cr_writer_then(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&W.mu);
    int later = W.has_job;
    if (later) {
        W.then_fn = fn;
        W.then_arg = arg;
    }
    pthread_mutex_unlock(&W.mu);
    if (!later)
        fn(arg);
}

int cr_writer_busy(void)
{
    pthread_mutex_lock(&W.mu);
    int busy = W.has_job;
    pthread_mutex_unlock(&W.mu);
    return busy;
}

void cr_writer_stop(void)
{
    pthread_mutex_lock(&W.mu);
    if (!W.running) {
        pthread_mutex_unlock(&W.mu);
        return;
    }
    W.quit = 1;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    pthread_join(W.tid, NULL);    /* the loop finishes a job before quitting */
    pthread_mutex_lock(&W.mu);
    W.running = 0;
    pthread_mutex_unlock(&W.mu);
}
