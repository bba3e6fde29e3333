/*
 * engine.c - the checkpoint engine glue: region + thread contexts -> store,
 * and back.
 *
 * Checkpoint (run by the last thread to stop, on its home stack, with every
 * persistent thread stopped): collect the extents written since the previous
 * epoch (or every populated extent when the store wants a full epoch),
 * build one record per thread from the control blocks, and write them as one
 * epoch: cr_epoch_begin / put per extent / finish / commit. Writing reads
 * the region in place: nothing persistent runs until commit returns. A failed
 * epoch is abandoned by the store; since the tracker has already moved on,
 * the next epoch is forced full.
 *
 * Restore: open the newest valid committed epoch, grow the region to its
 * size, write the pages back, re-base the tracker, and hand the thread
 * records to start.c. When page data of the newest epoch turns out corrupt,
 * the region is reset and the next older epoch is tried.
 *
 * Normal end: a program that exits with status 0 leaves the file "finished"
 * in the checkpoint directory; the next start is then a fresh one, and the
 * marker is removed when that run commits its first checkpoint (a kill in
 * between just means starting fresh once more).
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
#include "common/log.h"
#include "heap/heap.h"
#include "interpose/interpose.h"
#include "region/region.h"
#include "store/store.h"

#define FINISHED_NAME "finished"

static struct {
    struct cr_store *st;
    struct cr_coll *coll;
    int force_full;
    int marker_pending;          /* a "finished" marker awaits our first commit */
    struct cr_extent *ext;
    size_t n, cap;
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

static int add_extent(const struct cr_extent *x, void *unused)
{
    if (E.n == E.cap) {
        size_t cap = E.cap ? 2 * E.cap : 1024;
        struct cr_extent *p = realloc(E.ext, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        E.ext = p;
        E.cap = cap;
    }
    E.ext[E.n++] = *x;
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

static int collect(int full)
{
    E.n = 0;
    if (!full)
        return cr_region_collect(add_extent, NULL);
    int rc = cr_region_collect_populated(add_extent, NULL);
    if (rc)
        return rc;
    /* Nothing runs between the two calls: re-basing loses no write. */
    return cr_region_collect(NULL, NULL);
}

static int write_epoch(int full, struct cr_thread_record *rec, size_t nrec, uint64_t *bytes)
{
    struct cr_epoch_desc d = {
        .full = full, .region_base = (uintptr_t)cr_region_base(),
        .region_size = cr_region_size(), .nextents = E.n, .extents = E.ext,
        .nthreads = nrec, .threads = rec,
    };
    struct cr_epoch *ep;
    int rc = cr_epoch_begin(E.st, &d, &ep);
    if (rc) {
        cr_errc(rc, "cannot begin a checkpoint epoch");
        return rc;
    }
    uint64_t epoch = cr_epoch_number(ep);
    *bytes = 0;
    for (size_t i = 0; i < E.n && rc == 0; i++) {
        if (E.ext[i].flags & CR_EXTENT_ZERO)
            continue;
        rc = cr_epoch_put(ep, i, (const void *)E.ext[i].addr);
        *bytes += E.ext[i].len;
    }
    if (rc == 0)
        rc = cr_epoch_finish(ep);
    int agreed = cr_epoch_commit(E.st, ep, rc);
    if (agreed) {
        cr_errc(agreed, "checkpoint epoch %llu not committed", (unsigned long long)epoch);
        return agreed;
    }
    E.stats.last_epoch = epoch;
    return 0;
}

static void remove_marker(void);

int cr_engine_checkpoint(struct cr_exec_root *root, void *unused)
{
    double t0 = now();
    int rc = open_store();
    if (rc)
        goto failed;
    int full = E.force_full || cr_store_next_is_full(E.st);
    rc = cr_transparent_checkpoint();     /* globals + files into the heap */
    if (rc)
        goto failed;
    /* Free heap pages need not be saved: release them before a full epoch
     * (the allocator is idle, every persistent thread is stopped). Not
     * before incremental ones: trimming rewrites heap metadata (measured:
     * 32 pages per call even with nothing to release), which would cost
     * more than the free pages it spares. */
    if (full) {
        rc = cr_heap_trim();
        if (rc)
            cr_errc(rc, "cannot release the free pages of the heap (checkpoint continues)");
    }
    rc = collect(full);
    if (rc) {
        cr_errc(rc, "cannot collect the written pages of the region");
        goto failed;
    }
    static struct cr_thread_record rec[CR_MAX_THREADS];
    size_t nrec = thread_records(root, rec);
    uint64_t bytes = 0;
    rc = write_epoch(full, rec, nrec, &bytes);
    if (rc)
        goto failed;
    E.force_full = 0;
    if (E.marker_pending)
        remove_marker();
    E.stats.checkpoints++;
    E.stats.last_bytes = bytes;
    E.stats.last_extents = E.n;
    E.stats.last_full = full;
    E.stats.last_seconds = now() - t0;
    E.stats.total_bytes += bytes;
    E.stats.total_seconds += E.stats.last_seconds;
    cr_dbg("checkpoint epoch %llu: %zu extents, %llu bytes, %s, %.3f ms",
           (unsigned long long)E.stats.last_epoch, E.n, (unsigned long long)bytes,
           full ? "full" : "incremental", 1e3 * E.stats.last_seconds);
    return 0;
failed:
    /* The tracker may have moved on: pages not saved now must be in the next. */
    E.force_full = 1;
    E.stats.failures++;
    return rc;
}

CR_EXPORT int cr_checkpoint_stats(struct cr_checkpoint_stats *out, size_t size)
{
    if (!out || size == 0)
        return -EINVAL;
    pthread_mutex_lock(&cr_exec_rt_.lock);
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
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        cr_perr("cannot record the normal end of the program in %s", path);
        return;
    }
    if (fsync(fd))
        cr_perr("fsync(%s)", path);
    close(fd);
    sync_dir();
}

/* ---- restore --------------------------------------------------------------------- */

static int restore_epoch(uint64_t epoch, uint64_t *got, struct cr_thread_record **recs, size_t *n)
{
    struct cr_restore *r;
    int rc = cr_restore_open(E.st, epoch, &r);
    if (rc)
        return rc;
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
    rc = cr_region_grow(info.region_size);
    if (rc) {
        cr_errc(rc, "cannot grow the region to %zu bytes for epoch %llu", info.region_size,
                (unsigned long long)info.epoch);
        goto close_restore;
    }
    *recs = calloc(info.nthreads ? info.nthreads : 1, sizeof **recs);
    if (!*recs) {
        rc = -ENOMEM;
        goto close_restore;
    }
    *n = info.nthreads;
    rc = cr_restore_threads(r, *recs, info.nthreads);
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
    cr_info("restored checkpoint epoch %llu from %s (%zu threads)",
            (unsigned long long)got, cfg->dir, *n);
    return 0;
}
