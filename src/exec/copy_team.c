/*
 * copy_team.c - the threads that copy the dirty pages into the staging
 * buffer during the blocking phase of an asynchronous checkpoint.
 *
 * Why: the copy is most of the time the application is blocked (1 GiB, 1%
 * written: 2621 scattered pages, ~1.4 ms of a ~2.2 ms call on one core),
 * and it is bound by reading scattered pages from memory, which one core
 * cannot saturate. While it runs, every persistent thread of the rank is
 * stopped, so a rank that owns more than one PU (a hybrid MPI+threads job
 * bound to a socket or a node, the usual way to run one rank per node)
 * has idle PUs. Two threads copied 2621 scattered pages of 1 GiB in 0.43-
 * 0.50 ms against 0.84-0.91 ms for one (this project's Intel VM, isolated,
 * medians of 9); with both threads on the same PU, spinning, it took 6.9 ms.
 *
 * Hence the team's size (CRMPI_STAGE_THREADS, the calling thread included):
 * by default the PUs this rank has to itself - the PUs of its CPU binding,
 * divided among the node's ranks when it is not bound (all of the node's
 * online PUs) - at most AUTO_MAX, where the memory bandwidth of a socket is
 * about used up. A rank bound to one core (Open MPI's default) copies
 * alone. Helpers run at nice 19, so a wrong guess costs the computation
 * nothing but a few context switches.
 *
 * How: the stream of non-zero bytes (the staging buffer's layout) is cut
 * into CHUNK-sized chunks, which the caller and the helpers take from an
 * atomic counter. A helper that wakes late, or never gets a PU, takes fewer
 * chunks or none and the caller does the rest: no thread ever waits for
 * another one to start, only for the chunks already taken. Nobody spins:
 * helpers sleep on a condition variable between checkpoints, and the caller
 * waits for the taken chunks on one.
 *
 * The helpers are plain pthreads, not persistent threads: they run on
 * ordinary stacks, only read the region (every persistent thread is
 * stopped) and write the staging buffer (outside it), and have every
 * signal blocked, like the writer (writer.c). A fork() child has none and
 * starts its own on first use.
 */
#include "exec/exec.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/page_copy.h"
#include "common/quiet_thread.h"
#include "region/region.h"

#define MAX_TEAM 64
#define AUTO_MAX 4
/* Small enough that two threads share 1% of 1 GiB (10 MiB) evenly, large
 * enough that taking a chunk (one atomic add) costs nothing beside it. */
#define CHUNK ((uint64_t)256 << 10)

struct job {
    uint8_t *dst;
    const struct cr_extent *ext;
    size_t n;
    const size_t *first;         /* extent holding each chunk's first byte  */
    const size_t *skip;          /* that byte's offset within the extent    */
    size_t nchunks;
    uint64_t chunk;              /* bytes per chunk (the last may be short)  */
    uint64_t total;
    atomic_size_t next;          /* next chunk to take                      */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;         /* helpers: a new job, or quit             */
    pthread_cond_t idle;         /* caller: no helper in the job any more   */
    unsigned size;               /* decided team size; 0: not yet           */
    unsigned started;            /* helper threads running                  */
    pthread_t tid[MAX_TEAM];
    uint64_t gen;
    struct job *job;             /* open for helpers to join, or NULL       */
    unsigned active;             /* helpers inside the job                  */
    int quit;
    int atfork;
    size_t *first, *skip;        /* chunk tables, kept between checkpoints  */
    size_t cap;
} T = { .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
        .idle = PTHREAD_COND_INITIALIZER };

/* Take chunks until none is left; each is copied extent piece by piece
 * (pieces stay page-aligned: extents and CHUNK are whole pages). */
static void run_chunks(struct job *j)
{
    size_t c;
    while ((c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->nchunks) {
        uint64_t off = (uint64_t)c * j->chunk;
        uint64_t end = off + j->chunk < j->total ? off + j->chunk : j->total;
        size_t i = j->first[c], in = j->skip[c];
        while (off < end) {
            const struct cr_extent *e = &j->ext[i];
            if (e->flags & CR_EXTENT_ZERO) {
                i++;
                continue;
            }
            size_t len = e->len - in;
            if (len > end - off)
                len = (size_t)(end - off);
            /* Two extents ahead: most extents are one page (page_copy.h). */
            const void *ahead = i + 2 < j->n ? (const void *)j->ext[i + 2].addr : NULL;
            cr_page_copy(j->dst + off, (const void *)(e->addr + in), len, ahead);
            off += len;
            in = 0;
            i++;
        }
    }
    cr_page_copy_done();    /* orders this thread's streaming stores */
}

/* arg: the generation current when the thread was created (under the lock,
 * before the job that needed it was posted): it joins every later one. */
static void *helper_main(void *arg)
{
    uint64_t seen = (uint64_t)(uintptr_t)arg;
    /* Lowest priority: on a PU that is idle, as the team's size assumes,
     * it costs nothing; on one that is not (a binding the size got wrong),
     * the computation there runs first and the caller copies the chunks
     * this thread does not get to. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    pthread_mutex_lock(&T.mu);
    for (;;) {
        while (T.gen == seen && !T.quit)
            pthread_cond_wait(&T.wake, &T.mu);
        if (T.quit)
            break;
        seen = T.gen;
        struct job *j = T.job;
        if (!j)              /* woke after the caller closed it */
            continue;
        T.active++;
        pthread_mutex_unlock(&T.mu);
        run_chunks(j);
        pthread_mutex_lock(&T.mu);
        if (--T.active == 0)
            pthread_cond_signal(&T.idle);
    }
    pthread_mutex_unlock(&T.mu);
    return NULL;
}

/* The node's ranks according to the launcher (1 when it does not say):
 * Open MPI, MPICH's Hydra, Slurm's srun ("2(x3)": 2 tasks on each of 3
 * nodes; the first node's count). */
static unsigned local_ranks(void)
{
    static const char *const vars[] = { "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                                        "SLURM_STEP_TASKS_PER_NODE" };
    for (size_t k = 0; k < sizeof vars / sizeof *vars; k++) {
        const char *s = getenv(vars[k]);
        char *end;
        unsigned long v = s ? strtoul(s, &end, 10) : 0;
        if (s && end != s && v > 0 && v < 1u << 20)
            return (unsigned)v;
    }
    return 1;
}

/* PUs this process may run on, and whether that is every online PU (not
 * bound). From the affinity mask, which costs one system call, rather than
 * from hwloc, whose topology load would run on the application's thread in
 * the blocking phase of the first checkpoint. */
static unsigned own_pus(int *unbound)
{
    cpu_set_t set;
    *unbound = 0;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    int w = CPU_COUNT(&set);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    *unbound = online > 0 && w >= online;
    return w > 0 ? (unsigned)w : 0;
}

static unsigned decide(void)
{
    unsigned want = cr_config()->stage_threads;
    if (want)
        return want < MAX_TEAM ? want : MAX_TEAM;
    int unbound;
    unsigned pus = own_pus(&unbound);
    unsigned share = unbound ? local_ranks() : 1;
    unsigned n = share ? pus / share : 0;
    n = n < 1 ? 1 : n > AUTO_MAX ? AUTO_MAX : n;
    cr_dbg("staging copy: %u thread%s (%u PU%s, %s, %u rank%s sharing them)", n,
           n == 1 ? "" : "s", pus, pus == 1 ? "" : "s", unbound ? "unbound" : "bound", share,
           share == 1 ? "" : "s");
    return n;
}

static void fork_prepare(void) { pthread_mutex_lock(&T.mu); }
static void fork_parent(void) { pthread_mutex_unlock(&T.mu); }
static void fork_child(void)
{
    pthread_mutex_init(&T.mu, NULL);
    pthread_cond_init(&T.wake, NULL);
    pthread_cond_init(&T.idle, NULL);
    T.size = 0;
    T.started = 0;
    T.job = NULL;
    T.active = 0;
    T.quit = 0;
}

/* Start helpers up to size-1 (lock held). A helper that cannot be started
 * only makes the team smaller. */
static void start_helpers(void)
{
    if (!T.atfork && pthread_atfork(fork_prepare, fork_parent, fork_child) != 0)
        return;
    T.atfork = 1;
    while (T.started + 1 < T.size) {
        int rc = cr_quiet_thread_create(&T.tid[T.started], helper_main,
                                        (void *)(uintptr_t)T.gen, CR_QUIET_BUT_FAULTS);
        if (rc) {
            cr_warn("cannot start a staging copy thread (%s): %u copy", strerror(rc),
                    T.started + 1);
            T.size = T.started + 1;
            break;
        }
        (void)pthread_setname_np(T.tid[T.started], "crmpi-copy");
        T.started++;
    }
}

unsigned cr_copy_team_size(void)
{
    pthread_mutex_lock(&T.mu);
    if (!T.size)
        T.size = decide();
    unsigned n = T.size;
    pthread_mutex_unlock(&T.mu);
    return n;
}

/* Chunk tables for `total` bytes of ext[0..n). -ENOMEM: none. */
static int plan(struct job *j)
{
    size_t need = (size_t)((j->total + CHUNK - 1) / CHUNK);
    if (need > T.cap) {
        size_t *f = realloc(T.first, need * sizeof *f);
        if (f)
            T.first = f;
        size_t *s = f ? realloc(T.skip, need * sizeof *s) : NULL;
        if (s)
            T.skip = s;
        if (!f || !s)
            return -ENOMEM;
        T.cap = need;
    }
    uint64_t off = 0, boundary = 0;
    size_t c = 0;
    for (size_t i = 0; i < j->n; i++) {
        if (j->ext[i].flags & CR_EXTENT_ZERO)
            continue;
        for (; boundary < off + j->ext[i].len; boundary += CHUNK, c++) {
            T.first[c] = i;
            T.skip[c] = (size_t)(boundary - off);
        }
        off += j->ext[i].len;
    }
    j->first = T.first;
    j->skip = T.skip;
    j->nchunks = c;
    j->chunk = CHUNK;
    return 0;
}

void cr_copy_team_stage(uint8_t *dst, const struct cr_extent *ext, size_t n)
{
    struct job j = { .dst = dst, .ext = ext, .n = n };
    for (size_t i = 0; i < n; i++)
        if (!(ext[i].flags & CR_EXTENT_ZERO))
            j.total += ext[i].len;
    atomic_init(&j.next, 0);
    pthread_mutex_lock(&T.mu);
    if (!T.size)
        T.size = decide();
    int team = T.size > 1 && j.total > CHUNK;
    if (team && T.started + 1 < T.size)
        start_helpers();
    if (team && (T.started == 0 || plan(&j) != 0))
        team = 0;
    if (team) {
        T.job = &j;
        T.gen++;
        pthread_cond_broadcast(&T.wake);
    }
    pthread_mutex_unlock(&T.mu);
    if (!team) {                 /* the caller alone: one chunk of everything */
        static const size_t zero = 0;
        j.first = j.skip = &zero;
        j.nchunks = j.total ? 1 : 0;
        j.chunk = j.total;
        run_chunks(&j);
        return;
    }
    run_chunks(&j);
    pthread_mutex_lock(&T.mu);
    T.job = NULL;                 /* late wakers find nothing */
    while (T.active)
        pthread_cond_wait(&T.idle, &T.mu);
    pthread_mutex_unlock(&T.mu);
}

void cr_copy_team_stop(void)
{
    pthread_mutex_lock(&T.mu);
    unsigned n = T.started;
    T.quit = 1;
    pthread_cond_broadcast(&T.wake);
    pthread_mutex_unlock(&T.mu);
    for (unsigned k = 0; k < n; k++)
        pthread_join(T.tid[k], NULL);
    pthread_mutex_lock(&T.mu);
    T.started = 0;
    T.quit = 0;
    T.size = 0;
    pthread_mutex_unlock(&T.mu);
}
