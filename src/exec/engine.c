/*
 * engine.c - the checkpoint engine glue: region + thread contexts -> store,
 * and back.
 *
 * Checkpoint (run by the last thread to stop, on its home stack, with every
 * persistent thread stopped - the "blocking phase"): commit the previous
 * epoch if one is pending, collect the extents written since the previous
 * epoch (or every populated extent when the store wants a full epoch),
 * build one record per thread from the control blocks, and begin the
 * epoch (cr_epoch_begin: collective, HDF5, so on this thread). Then, by
 * CRMPI_CKPT_MODE:
 *   async (default)  the dirty extents are copied into the staging buffer
 *                    (staging.c) before begin, and the background writer
 *                    (writer.c) puts them and finishes the epoch while the
 *                    application runs on. The epoch stays pending and is
 *                    committed by the next checkpoint (which only agrees
 *                    collectively and leaves the index write to the
 *                    writer's next job), by cr_checkpoint_wait(), or at
 *                    exit / MPI_Finalize (complete commits). When the
 *                    extents do not fit the staging buffer, they are put
 *                    from the region in place before the threads resume,
 *                    and the commit is still deferred: every rank keeps
 *                    the same sequence of collectives.
 *   sync             put, finish and commit here, reading the region in
 *                    place; nothing persistent runs until commit returns.
 * A scheduled full epoch in async mode is composed (compose.c): staged like
 * an incremental one (the pages written since the previous epoch), the
 * writer taking every other populated page from the previous epoch's
 * chain, which holds exactly their contents.
 * A failed epoch is abandoned by the store; since the tracker has already
 * moved on, the next epoch is forced full. A failed background write or
 * index publication is returned by the call that commits, on every rank.
 *
 * Restore: open the newest valid committed epoch, grow the region to its
 * size, write the pages back, re-base the tracker, and hand the thread
 * records to start.c. When page data of the newest epoch turns out corrupt,
 * the region is reset and the next older epoch is tried.
 *
 * Normal end: a pending epoch is committed at exit (cr_engine_at_exit). A
 * program that exits with status 0 then leaves the file "finished" in the
 * checkpoint directory; the next start is then a fresh one, and the marker
 * is removed when that run commits its first checkpoint - completely,
 * index on disk, never deferred (a kill in between just means starting
 * fresh once more).
 */
#include "exec/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/errors.h"
#include "common/fault.h"
#include "common/log.h"
#include "heap/heap.h"
#include "interpose/interpose.h"
#include "region/region.h"
#include "store/store.h"

#define FINISHED_NAME "finished"

/* A growing list of extents. */
struct extv {
    struct cr_extent *v;
    size_t n, cap;
};

static struct {
    struct cr_store *st;
    struct cr_coll *coll;
    int force_full;
    int marker_pending;          /* a "finished" marker awaits our first commit */
    int lazy_refused;            /* restored eagerly because of the lazy marker  */
    struct extv w;               /* written extents (a full epoch from memory: all
                                    populated ones): staged and re-armed       */
    struct extv pop, full;       /* a composed full epoch (compose.c): the populated
                                    extents, and the epoch's extents            */
    uint64_t base;               /* epoch the tracker was last collected at (its
                                    pages are the region's then): the rollback
                                    target; 0 when unknown (a failed epoch)   */
    int untracked;               /* lazily restored, no epoch since: pages the
                                    restore filled are written untracked      */
    struct cr_checkpoint_stats stats;
} E;

void cr_exec_set_coll(struct cr_coll *coll) { E.coll = coll; }

struct cr_coll *cr_exec_coll(void)
{
    return E.coll ? E.coll : cr_coll_self();
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int add_extent(const struct cr_extent *x, void *vec)
{
    struct extv *v = vec;
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 1024;
        struct cr_extent *p = realloc(v->v, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = *x;
    return 0;
}

static int open_store(void)
{
    if (E.st)
        return 0;
    const struct cr_config *cfg = cr_config();
    int rc = cr_store_open(&E.st, cfg->dir, cr_exec_coll(), NULL);
    if (rc)
        cr_errc(rc, "cannot open the checkpoint directory %s", cfg->dir);
    return rc;
}

static size_t thread_records(struct cr_exec_root *root, struct cr_thread_record *rec)
{
    size_t n = 0;
    for (uint32_t i = 0; i < root->nthreads; i++) {
        const struct cr_pthread *t = &root->threads[i];
        if (t->state != CR_T_RUNNING && t->state != CR_T_FINISHED)
            continue;
        memset(&rec[n], 0, sizeof rec[n]);
        rec[n].tid = i;
        rec[n].state = t->state;
        rec[n].stack_lo = (uintptr_t)t->stack_lo;
        rec[n].stack_hi = (uintptr_t)t->stack_lo + t->stack_size;
        rec[n].retval = (uintptr_t)t->retval;
        _Static_assert(sizeof t->ctx <= CR_CTX_BLOB, "context does not fit a thread record");
        memcpy(rec[n].ctx, &t->ctx, sizeof t->ctx);
        n++;
    }
    return n;
}

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
/* AddressSanitizer poisons the redzones between the frames on the
 * persistent stacks; a checkpoint saves those stacks as raw bytes (DESIGN.md
 * decision 3), which ASan cannot follow. Every persistent thread is stopped
 * here: open their stacks before the store reads them. */
static void open_stacks_for_asan(const struct cr_thread_record *rec, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ASAN_UNPOISON_MEMORY_REGION((void *)rec[i].stack_lo,
                                    (size_t)(rec[i].stack_hi - rec[i].stack_lo));
}

/* A restart under libcrmpi ran MPI_Init on main's persistent stack before
 * the restore, so that stack's shadow holds redzones of frames the restore
 * is about to overwrite with the saved ones: open the region it writes. */
static void open_region_for_asan(size_t size)
{
    ASAN_UNPOISON_MEMORY_REGION(cr_region_base(), size);
}
#else
#define open_stacks_for_asan(rec, n) ((void)0)
#define open_region_for_asan(size) ((void)0)
#endif

/* deferred (async mode): a snapshot, whose re-arm is left to whoever
 * writes the epoch (cr_staging_rearm): the writer thread, judging pages
 * against the staged copy, or this thread before writing in place.
 * composed: a full epoch composed from the chain (compose.c): the populated
 * extents into E.pop (a read-only walk), then the written ones into E.w
 * (an incremental snapshot); nothing runs in between. */
static int collect(int full, int deferred, int composed)
{
    E.w.n = 0;
    E.pop.n = 0;
    int rc = cr_fault("engine-collecting");    /* :eio as a failed PAGEMAP_SCAN would */
    if (rc)
        return rc;
    if (composed) {
        rc = cr_region_collect_populated(add_extent, &E.pop);
        return rc ? rc : cr_region_snapshot(0, add_extent, &E.w);
    }
    if (deferred)
        return cr_region_snapshot(full, add_extent, &E.w);
    if (!full)
        return cr_region_collect(add_extent, &E.w);
    rc = cr_region_collect_populated(add_extent, &E.w);
    if (rc)
        return rc;
    /* Nothing runs between the two calls: re-basing loses no write. */
    return cr_region_collect(NULL, NULL);
}

/* ---- pending epoch (async mode) ------------------------------------------- */

/* The begun, not yet committed epoch: written by the background writer
 * (async) or already written on this thread (sync fallback: local status
 * in pend_status). Committed before the next one begins, so epochs stay
 * ordered and an incremental epoch always has a committed parent. */
static struct {
    struct cr_epoch *ep;
    int async;                   /* the writer holds it                         */
    int status;                  /* local put/finish status when written inline */
    struct cr_index_pub *pub;    /* rank 0: agreed index, not yet written       */
} P;

static void remove_marker(void);

/* Write an agreed index now (when no writer job will). A failure becomes
 * the local status of the epoch being written, if any, so that its commit
 * reports it on every rank. */
static int flush_pub(void)
{
    int rc = cr_index_pub_run(P.pub);
    P.pub = NULL;
    if (rc) {
        cr_errc(rc, "cannot publish the checkpoint index");
        E.force_full = 1;
    }
    return rc;
}

/* Collective (same sequence on every rank): wait for the pending epoch's
 * writes and commit it. deferred: only agree, leaving the index write to
 * the writer's next job (P.pub); used by the next checkpoint, which hands
 * it over at once. Otherwise the commit is complete on return (wait, exit,
 * sync mode, and the first commit of a run after a finished one: the
 * "finished" marker may only go once an index of this run is on disk).
 * Returns the agreed status. */
static int commit_pending(int deferred)
{
    if (!P.ep)
        return 0;
    double t0 = now();
    struct cr_writer_times wt;
    int local = P.async ? cr_writer_wait(&wt) : P.status;
    if (P.async) {
        E.stats.last_write_seconds = wt.write;
        E.stats.last_rearm_seconds = wt.rearm;
        E.stats.last_index_seconds = wt.index;
    }
    struct cr_epoch *ep = P.ep;
    uint64_t epoch = cr_epoch_number(ep);
    P.ep = NULL;
    double t1 = now();
    int rc = deferred && !E.marker_pending ? cr_epoch_commit_deferred(E.st, ep, local, &P.pub)
                                           : cr_epoch_commit(E.st, ep, local);
    E.stats.last_commit_seconds = now() - t0;
    cr_dbg("commit of epoch %llu: %.3f ms waiting for the writer, %.3f ms committing",
           (unsigned long long)epoch, 1e3 * (t1 - t0), 1e3 * (now() - t1));
    if (rc) {
        cr_errc(rc, "checkpoint epoch %llu not committed", (unsigned long long)epoch);
        E.force_full = 1;    /* its pages are in no committed epoch */
        E.base = 0;
        return rc;
    }
    E.stats.checkpoints++;
    E.stats.last_epoch = epoch;
    E.stats.total_write_seconds += E.stats.last_write_seconds;
    if (E.marker_pending) {
        (void)cr_fault("marker-removing");
        remove_marker();
    }
    if (E.lazy_refused) {       /* a committed epoch of this run: lazy may be tried again */
        cr_lazy_marker_remove();
        E.lazy_refused = 0;
    }
    return 0;
}

static uint64_t data_bytes(const struct extv *x)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < x->n; i++)
        if (!(x->v[i].flags & CR_EXTENT_ZERO))
            bytes += x->v[i].len;
    return bytes;
}

/* Copy the non-zero extents back to back into the staging buffer. NULL
 * when they do not fit: the caller writes from the region in place. The
 * rank's idle PUs help (copy_team.c). */
static const uint8_t *stage(uint64_t bytes)
{
    uint8_t *buf = bytes ? cr_staging_get(bytes) : NULL;
    if (buf)
        cr_copy_team_stage(buf, E.w.v, E.w.n);
    return buf;
}

static int put_inline(struct cr_epoch *ep, const struct extv *x)
{
    int rc = 0;
    for (size_t i = 0; i < x->n && rc == 0; i++)
        if (!(x->v[i].flags & CR_EXTENT_ZERO))
            rc = cr_epoch_put(ep, i, (const void *)x->v[i].addr);
    return rc ? rc : cr_epoch_finish(ep);
}

/* Begin the epoch (collective; local: this rank's failure so far, which
 * begin agrees on) and get its bytes written: handed to the writer when
 * staged (async), else written here. x: the epoch's extents (E.w, or E.full
 * for an epoch composed from the chain of epoch `parent`: then staged holds
 * E.w's bytes). In sync mode it is also committed here; in async mode it
 * stays pending. */
static int write_epoch(int full, struct cr_thread_record *rec, size_t nrec, const struct extv *x,
                       uint64_t parent, const uint8_t *staged, int local)
{
    struct cr_epoch_desc d = {
        .full = full, .region_base = (uintptr_t)cr_region_base(),
        .region_size = cr_region_size(), .nextents = x->n, .extents = x->v,
        .nthreads = nrec, .threads = rec, .status = local,
    };
    struct cr_epoch *ep;
    double t0 = now();
    int rc = cr_epoch_begin(E.st, &d, &ep);
    E.stats.last_begin_seconds = now() - t0;
    if (rc) {
        if (rc != local)     /* a local failure was reported where it happened */
            cr_errc(rc, "cannot begin a checkpoint epoch");
        (void)flush_pub();
        return rc;
    }
    P.ep = ep;
    P.async = 0;
    P.status = 0;
    E.stats.last_write_seconds = 0;
    E.stats.last_index_seconds = 0;
    if (staged) {
        struct cr_write_job job = {
            .rearm = 1, .pub = P.pub, .ep = ep, .ext = x->v, .n = x->n, .data = staged,
            .dirty = E.w.v, .ndirty = E.w.n, .st = parent ? E.st : NULL, .parent = parent,
        };
        if (cr_writer_submit(&job) == 0) {
            P.pub = NULL;
            P.async = 1;
            return 0;
        }
        /* No thread: the staged copy serves as well as the region. */
        rc = cr_staging_rearm(E.w.v, E.w.n, staged);
        int prc = flush_pub();
        rc = rc ? rc : prc;
        if (rc == 0 && parent)
            rc = cr_compose_put(&job);
        for (size_t i = 0, off = 0; !parent && i < x->n && rc == 0; i++) {
            if (x->v[i].flags & CR_EXTENT_ZERO)
                continue;
            rc = cr_epoch_put(ep, i, staged + off);
            off += x->v[i].len;
        }
        if (rc == 0)
            rc = cr_epoch_finish(ep);
    } else {
        t0 = now();
        int pub = P.pub != NULL;
        rc = flush_pub();
        double t1 = now();
        if (rc == 0)
            rc = put_inline(ep, x);
        E.stats.last_index_seconds = pub ? t1 - t0 : 0;
        E.stats.last_write_seconds = now() - t1;
    }
    P.status = rc;
    if (cr_config()->ckpt_mode == CR_CKPT_SYNC)
        return commit_pending(0);
    return 0;
}

static void forked_child(void)
{
    /* The writer and the epoch belong to the parent; a child that
     * checkpoints starts over with a full epoch. */
    P.ep = NULL;
    P.pub = NULL;
    E.force_full = 1;
    E.base = 0;
}

int cr_engine_checkpoint(struct cr_exec_root *root, void *unused)
{
    double t0 = now();
    static int atfork;
    if (!atfork && pthread_atfork(NULL, NULL, forked_child) == 0)
        atfork = 1;
    /* The previous epoch first: its commit is this call's business, and a
     * new epoch must chain onto a committed one. A failed commit is this
     * call's result (identical on every rank); the next call takes a full
     * epoch, and the job goes on from the last committed one. */
    E.stats.last_commit_seconds = 0;
    /* A lazy restore still under way: this (full) epoch needs every page.
     * Its failure is this rank's alone: the commit still runs (it is
     * collective), and the failure is agreed at begin below. */
    int local = cr_lazy_wait(&E.stats.restore_full_seconds);
    int rc = commit_pending(1);
    if (rc == 0)
        rc = open_store();    /* collective, agreed */
    if (rc)
        goto failed;
    /* From here until begin, failures are local: they are carried into
     * begin (d.status), which agrees on them, so a rank that failed early
     * never leaves the others waiting in a collective. */
    int full = E.force_full || cr_store_next_is_full(E.st);
    E.w.n = 0;
    if (local == 0) {
        local = cr_transparent_checkpoint();     /* globals + files into the heap */
    }
    /* Free heap pages need not be saved: release them before a full epoch
     * (the allocator is idle, every persistent thread is stopped). Not
     * before incremental ones: trimming rewrites heap metadata (measured:
     * 32 pages per call even with nothing to release), which would cost
     * more than the free pages it spares. */
    if (local == 0 && full) {
        rc = cr_heap_trim();
        if (rc)
            cr_errc(rc, "cannot release the free pages of the heap (checkpoint continues)");
    }
    double tc = now();
    int deferred = cr_config()->ckpt_mode == CR_CKPT_ASYNC;
    /* A scheduled full epoch in async mode is composed from the chain of
     * the epoch the tracker was collected at (compose.c): it must be the
     * store's newest committed one, which is what E.base says after the
     * commit above (0 after a failure; force_full after a restart, a lazy
     * restore or a fork, where the tracker has no such base). */
    uint64_t parent = deferred && full && !E.force_full && !E.untracked &&
                      cr_config()->full_from_chain ? E.base : 0;
    if (local == 0) {
        local = collect(full, deferred, parent != 0);
        if (local)
            cr_errc(local, "cannot collect the written pages of the region");
    }
    tc = now() - tc;
    E.stats.last_collect_seconds = tc;
    if (local == 0)
        (void)cr_fault("engine-collected");
    static struct cr_thread_record rec[CR_MAX_THREADS];
    size_t nrec = thread_records(root, rec);
    open_stacks_for_asan(rec, nrec);
    const uint8_t *staged = NULL;
    if (deferred && local == 0) {
        double ts = now();
        staged = stage(data_bytes(&E.w));
        /* Written in place instead: re-arm before anything else runs (the
         * epoch then saves what the region holds from here on). */
        local = staged ? 0 : cr_staging_rearm(E.w.v, E.w.n, NULL);
        E.stats.last_stage_seconds = now() - ts;
    }
    /* Composed: the epoch holds every populated extent. Written in place
     * (nothing staged), they are read from the region before it resumes,
     * so the chain is not needed. */
    E.full.n = 0;
    if (parent && local == 0)
        local = cr_compose_plan(E.pop.v, E.pop.n, E.w.v, E.w.n, &E.full.v, &E.full.n,
                                &E.full.cap);
    const struct extv *x = parent ? &E.full : &E.w;
    if (!staged)
        parent = 0;
    uint64_t bytes = data_bytes(x);
    rc = write_epoch(full, rec, nrec, x, parent, staged, local);
    if (rc)
        goto failed;
    (void)cr_fault("engine-committed");
    E.force_full = 0;
    E.untracked = 0;
    /* sync mode committed it already; async: P.ep until committed */
    E.base = P.ep ? cr_epoch_number(P.ep) : E.stats.last_epoch;
    E.stats.last_async = P.ep && P.async;
    E.stats.last_bytes = bytes;
    E.stats.last_extents = x->n;
    E.stats.last_full = full;
    E.stats.total_bytes += bytes;
    E.stats.last_seconds = now() - t0;
    E.stats.total_seconds += E.stats.last_seconds;
    cr_dbg("checkpoint %s: %zu extents, %llu bytes, %s, blocked %.3f ms (commit %.3f, "
           "collect %.3f, stage %.3f, begin %.3f ms)",
           E.stats.last_async ? "staged" : "written", x->n, (unsigned long long)bytes,
           !full ? "incremental" : parent ? "full, composed" : "full", 1e3 * E.stats.last_seconds,
           1e3 * E.stats.last_commit_seconds, 1e3 * tc, 1e3 * E.stats.last_stage_seconds,
           1e3 * E.stats.last_begin_seconds);
    return 0;
failed:
    (void)flush_pub();
    /* The tracker may have moved on: pages not saved now must be in the next. */
    E.force_full = 1;
    E.base = 0;
    E.stats.failures++;
    E.stats.last_seconds = now() - t0;
    return rc;
}

int cr_engine_rollback_base(struct cr_store **st, uint64_t *epoch, int *untracked)
{
    int rc = cr_lazy_wait(&E.stats.restore_full_seconds);
    if (rc == 0)
        rc = commit_pending(0);
    if (rc) {
        E.stats.failures++;
        E.base = 0;
        return rc;
    }
    if (!E.st || !E.base)
        return CR_ENOCKPT;
    *st = E.st;
    *epoch = E.base;
    *untracked = E.untracked;
    return 0;
}

void cr_engine_rollback_done(double seconds, uint64_t bytes, uint64_t pages)
{
    E.untracked = 0;
    E.stats.rollbacks++;
    E.stats.last_rollback_seconds = seconds;
    E.stats.last_rollback_bytes = bytes;
    E.stats.last_rollback_pages = pages;
}

void cr_engine_rollback_lost(void)
{
    E.force_full = 1;
    E.base = 0;
}

CR_EXPORT int cr_checkpoint_wait(void)
{
    cr_exec_lazy_init();
    pthread_mutex_lock(&cr_exec_rt_.lock);
    int rc = commit_pending(0);
    if (rc)
        E.stats.failures++;
    pthread_mutex_unlock(&cr_exec_rt_.lock);
    return rc;
}

void cr_engine_at_exit(void)
{
    pthread_mutex_lock(&cr_exec_rt_.lock);
    if (P.ep && cr_exec_coll() == cr_coll_self()) {
        int rc = commit_pending(0);
        if (rc)
            cr_errc(rc, "at exit: the last checkpoint could not be committed");
    } else if (P.ep) {
        /* A collective commit cannot be started from an exit handler (the
         * other ranks are not there): the job ended without MPI_Finalize. */
        (void)cr_writer_wait(NULL);
        cr_warn("at exit: checkpoint epoch %llu was not committed (MPI_Finalize not "
                "called); the previous one stays the restart point",
                (unsigned long long)cr_epoch_number(P.ep));
        P.ep = NULL;
    }
    pthread_mutex_unlock(&cr_exec_rt_.lock);
    cr_writer_stop();
    cr_copy_team_stop();
}

CR_EXPORT int cr_checkpoint_stats(struct cr_checkpoint_stats *out, size_t size)
{
    if (!out || size == 0)
        return -EINVAL;
    pthread_mutex_lock(&cr_exec_rt_.lock);
    E.stats.writing = P.ep && P.async && cr_writer_busy();
    memcpy(out, &E.stats, CR_MIN(size, sizeof E.stats));
    pthread_mutex_unlock(&cr_exec_rt_.lock);
    return 0;
}

/* ---- the "finished" marker --------------------------------------------------- */

static int marker_path(char *buf, size_t len)
{
    return (size_t)snprintf(buf, len, "%s/" FINISHED_NAME, cr_config()->dir) < len ? 0 : -ENAMETOOLONG;
}

static void sync_dir(void)
{
    int fd = open(cr_config()->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fsync(fd))
        cr_perr("fsync(%s)", cr_config()->dir);
    close(fd);
}

int cr_engine_dir_finished(void)
{
    char path[PATH_MAX + 16];
    struct stat sb;
    if (marker_path(path, sizeof path) || stat(path, &sb) != 0)
        return 0;
    E.marker_pending = 1;
    return 1;
}

static void remove_marker(void)
{
    char path[PATH_MAX + 16];
    if (marker_path(path, sizeof path))
        return;
    if (unlink(path) != 0 && errno != ENOENT) {
        cr_perr("unlink(%s)", path);
        return;
    }
    sync_dir();
    E.marker_pending = 0;
}

void cr_engine_mark_finished(void)
{
    char path[PATH_MAX + 16];
    struct stat sb;
    if (stat(cr_config()->dir, &sb) != 0)
        return;    /* never checkpointed: leave no trace */
    if (marker_path(path, sizeof path))
        return;
    (void)cr_fault("finished-marking");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        cr_perr("cannot record the normal end of the program in %s", path);
        return;
    }
    if (fsync(fd))
        cr_perr("fsync(%s)", path);
    close(fd);
    sync_dir();
    (void)cr_fault("finished-marked");
}

/* ---- restore --------------------------------------------------------------------- */

static int restore_epoch(uint64_t epoch, uint64_t *got, struct cr_thread_record **recs, size_t *n)
{
    struct cr_restore *r;
    int rc = cr_restore_open(E.st, epoch, &r);
    if (rc)
        return rc;
    (void)cr_fault("restore-opened");
    struct cr_restore_info info;
    cr_restore_info(r, &info);
    *got = info.epoch;
    if (info.region_base != (uintptr_t)cr_region_base()) {
        cr_err("checkpoint epoch %llu was taken with the region at %#lx, this process has it "
               "at %p (CRMPI_REGION_BASE differs)", (unsigned long long)info.epoch,
               (unsigned long)info.region_base, cr_region_base());
        rc = CR_EMISMATCH;
        goto close_restore;
    }
    /* An MPI job starts a fresh heap before MPI_Init decides to restore,
     * and that heap fenced off the part of its page map it does not use
     * (src/heap/attach.c); the checkpoint's heap may use more of it. Lift
     * the fence before writing: cr_heap_init(CR_HEAP_RESTORED) fences what
     * the restored heap leaves unused. */
    rc = cr_region_fence(0, 0);
    if (rc) {
        cr_errc(rc, "cannot lift the heap's fence for epoch %llu", (unsigned long long)info.epoch);
        goto close_restore;
    }
    rc = cr_region_grow(info.region_size);
    if (rc) {
        cr_errc(rc, "cannot grow the region to %zu bytes for epoch %llu", info.region_size,
                (unsigned long long)info.epoch);
        goto close_restore;
    }
    open_region_for_asan(info.region_size);
    *recs = calloc(info.nthreads ? info.nthreads : 1, sizeof **recs);
    if (!*recs) {
        rc = -ENOMEM;
        goto close_restore;
    }
    *n = info.nthreads;
    rc = cr_restore_threads(r, *recs, info.nthreads);
    if (rc == 0 && cr_config()->restore == CR_RESTORE_LAZY && !E.lazy_refused) {
        if (cr_lazy_marker_present()) {
            cr_warn("%s: the last lazy restore found corrupt data: restoring eagerly",
                    cr_config()->dir);
            E.lazy_refused = 1;
        } else {
            rc = cr_lazy_start(r, info.nlinks, *recs, info.nthreads);
            if (rc == 0) {
                E.untracked = 1;
                return 0;     /* r belongs to the lazy restore now */
            }
            cr_info("lazy restore not possible here (%s): restoring eagerly", cr_strerror(rc));
            rc = 0;
        }
    }
    if (rc == 0)
        rc = cr_restore_pages(r);
    if (rc) {
        free(*recs);
        *recs = NULL;
    }
close_restore:
    cr_restore_close(r);
    return rc;
}

/* Drop everything a failed restore wrote: close and reopen the region. */
static int reset_region(void)
{
    const struct cr_config *cfg = cr_config();
    struct cr_region_params p = { cfg->region_base, cfg->region_max, cfg->tracker };
    int rc = cr_region_close();
    if (rc == 0)
        rc = cr_region_open(&p);
    if (rc)
        cr_errc(rc, "cannot reset the region after a failed restore");
    return rc;
}

int cr_engine_restore(struct cr_thread_record **recs, size_t *n)
{
    double t0 = now();
    const struct cr_config *cfg = cr_config();
    struct stat sb;
    if (stat(cfg->dir, &sb) != 0)
        return CR_ENOCKPT;
    if (cr_engine_dir_finished()) {
        cr_info("%s: the last run finished normally; starting from the beginning", cfg->dir);
        return CR_ENOCKPT;
    }
    int rc = open_store();
    if (rc)
        return rc;
    uint64_t epoch = 0, got = 0;
    for (;;) {
        rc = restore_epoch(epoch, &got, recs, n);
        if (rc != CR_ECORRUPT || got <= 1)
            break;
        cr_err("page data of checkpoint epoch %llu is corrupt; trying the previous epoch",
               (unsigned long long)got);
        rc = reset_region();
        if (rc)
            return rc;
        epoch = got - 1;
    }
    if (rc == CR_ENOCKPT)
        return rc;
    if (rc) {
        cr_errc(rc, "cannot restart from the checkpoint in %s", cfg->dir);
        return rc;
    }
    rc = cr_region_collect(NULL, NULL);
    if (rc) {
        cr_errc(rc, "cannot re-base the dirty-page tracker after the restore");
        return rc;
    }
    /* The first epoch after a restart is full: it must not chain onto an
     * epoch newer than the one restored (after a fallback) or onto pages
     * the restore itself wrote. */
    E.force_full = 1;
    E.base = got;
    E.stats.restore_seconds = now() - t0;
    E.stats.restore_full_seconds = E.stats.restore_seconds;
    cr_info("restored checkpoint epoch %llu from %s (%zu threads)",
            (unsigned long long)got, cfg->dir, *n);
    return 0;
}
