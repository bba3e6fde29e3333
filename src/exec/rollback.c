/*
 * rollback.c - cr_rollback(): return the running process to its last
 * checkpoint in memory, without restarting it (speculative execution).
 *
 * The caller arrives at a rendezvous like cr_checkpoint() (rendezvous.c),
 * asking for a rollback round; the collector of that round runs here, on
 * the caller's home stack, with every persistent thread stopped:
 *  1. the engine commits the pending epoch (async mode) and names the epoch
 *     the tracker was last collected at: the last checkpoint (or the one
 *     restored). None (never checkpointed, or the last one failed):
 *     CR_ENOCKPT, nothing changed. Application files open (transparent
 *     mode): CR_EUNSUPPORTED, nothing changed.
 *  2. the chain of that epoch is opened and its final pieces computed (the
 *     lazy restore's machinery: cr_restore_pieces, metadata only). Both are
 *     kept for the next rollback to the same epoch. (After a lazy restore
 *     and before the next epoch, the tracker missed the writes to pages the
 *     restore filled - they are not write-protected until the next
 *     collection -, so every populated page is put back then: once, at the
 *     cost of the whole image.)
 *  3. the tracker is peeked (uffd-async: reported without re-arming; the
 *     other trackers are collected): the pages written or discarded since
 *     that checkpoint. Only they differ from it. For each, the piece covering it
 *     says where its checkpoint contents are: an extent of one chain link,
 *     read whole (it is the unit of the CRC) and CRC-checked, or zeros (a
 *     zero piece, or no piece: the page had no contents then). Everything
 *     is read into a buffer first, each needed extent once; a read failure
 *     leaves memory untouched (after a collection, not a peek, the tracker
 *     has moved on: the next epoch is then full and no rollback is possible
 *     before it). The cost grows
 *     with the pages written since (plus whole extents around them, at most
 *     CR_EXTENT_MAX each), never with the heap.
 *  4. the pages are written (zero ranges discarded) and the tracker is
 *     re-based: the region equals the checkpoint's epoch again, so the next
 *     epoch stays incremental on it. Peeking matters: writing a page a
 *     collection just re-armed costs a write-protect fault (~30 us per page
 *     measured on the 2-core VM, most of a rollback's time for consecutive
 *     pages before the peek existed).
 *  5. process-local state that depends on the region is redone as after a
 *     restore: the heap (cr_heap_after_restore), the executable's globals
 *     (transparent mode: its saved copy is in the heap; copying it back
 *     costs the size of the globals).
 *  6. threads: the control blocks in the region are those of the
 *     checkpoint now, with every thread's context saved then. A thread
 *     running at the checkpoint and carried by a parked pthread now resumes
 *     that context (its cr_checkpoint() returns CR_ROLLEDBACK; a thread that
 *     was waiting in join/mutex/condition waits again); a thread created
 *     since ends its pthread (joined later, cr_exec_reap_stale); a thread
 *     finished since gets a new pthread (after the old one is joined: the
 *     home slot is the same).
 * In an MPI job a rank cannot roll back alone: CR_EUNSUPPORTED.
 *
 * Not undone: output written since, other processes, memory outside the
 * region (glibc allocations of the runtime and of non-persistent threads).
 */
#include "exec/exec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "heap/heap.h"
#include "interpose/interpose.h"
#include "region/region.h"
#include "store/store.h"

#define RT cr_exec_rt_
#define PAGE CR_PAGE_SIZE
#define ROLLBACK_EXIT_FATAL 75

/* One range to put back: from the chain (link, ext) or zeros. */
struct op {
    uintptr_t addr;
    size_t len;
    uint32_t link;
    uint32_t zero;
    uint64_t ext;
    size_t off;                  /* in the staging buffer (data ranges) */
};

static struct {
    /* the chain of the last rollback's epoch, kept while it stays the target */
    struct cr_store *st;
    uint64_t epoch;
    struct cr_restore *r;
    struct cr_restore_piece *pc;
    size_t npc;
    /* this round */
    struct cr_extent *dirty;
    size_t nd, capd;
    struct op *op;
    size_t nop, capop;
    size_t *order;
    uint8_t *ebuf;
    size_t ebuflen;
    /* the checkpoint's bytes of the pages to put back; kept warm for the
     * next rollback (first touches of fresh memory cost a page fault each,
     * which on this VM costs more than the copy) */
    uint8_t *stage;
    size_t stagelen;
} W;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static CR_NORETURN void fatal(const char *what, int rc)
{
    fprintf(stderr, "crmpi: cr_rollback: %s: %s. Memory is already back at the checkpoint but "
            "the process cannot go on; start the program again to resume from the checkpoint "
            "in the checkpoint directory.\n", what, cr_strerror(rc));
    _exit(ROLLBACK_EXIT_FATAL);
}

static void chain_close(void)
{
    if (W.r)
        cr_restore_close(W.r);
    free(W.pc);
    W.r = NULL;
    W.pc = NULL;
    W.npc = 0;
    W.st = NULL;
    W.epoch = 0;
}

static int chain_open(struct cr_store *st, uint64_t epoch)
{
    if (W.r && W.st == st && W.epoch == epoch)
        return 0;
    chain_close();
    int rc = cr_restore_open(st, epoch, &W.r);
    if (rc) {
        W.r = NULL;
        cr_errc(rc, "cr_rollback: cannot open checkpoint epoch %llu", (unsigned long long)epoch);
        return rc;
    }
    rc = cr_restore_pieces(W.r, &W.pc, &W.npc);
    if (rc) {
        cr_errc(rc, "cr_rollback: cannot list the pieces of checkpoint epoch %llu",
                (unsigned long long)epoch);
        chain_close();
        return rc;
    }
    W.st = st;
    W.epoch = epoch;
    return 0;
}

static int add_dirty(const struct cr_extent *x, void *unused)
{
    if (W.nd == W.capd) {
        size_t cap = W.capd ? 2 * W.capd : 256;
        struct cr_extent *p = realloc(W.dirty, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        W.dirty = p;
        W.capd = cap;
    }
    W.dirty[W.nd++] = *x;
    return 0;
}

static int by_addr(const void *x, const void *y)
{
    const struct cr_extent *a = x, *b = y;
    return a->addr < b->addr ? -1 : a->addr > b->addr;
}

/* Two collections' extents (populated + written): sorted, disjoint. */
static int merge_dirty(void)
{
    if (W.nd == 0)
        return 0;
    qsort(W.dirty, W.nd, sizeof *W.dirty, by_addr);
    size_t k = 0;
    for (size_t i = 1; i < W.nd; i++) {
        struct cr_extent *l = &W.dirty[k];
        if (W.dirty[i].addr <= l->addr + l->len) {
            uintptr_t end = CR_MAX(l->addr + l->len, W.dirty[i].addr + W.dirty[i].len);
            l->len = end - l->addr;
        } else {
            W.dirty[++k] = W.dirty[i];
        }
    }
    W.nd = k + 1;
    return 0;
}

static int add_op(uintptr_t a, size_t len, const struct cr_restore_piece *p)
{
    if (len == 0)
        return 0;
    if (W.nop == W.capop) {
        size_t cap = W.capop ? 2 * W.capop : 256;
        struct op *o = realloc(W.op, cap * sizeof *o);
        if (!o)
            return -ENOMEM;
        W.op = o;
        W.capop = cap;
    }
    struct op *o = &W.op[W.nop++];
    memset(o, 0, sizeof *o);
    o->addr = a;
    o->len = len;
    o->zero = !p || p->zero;
    if (p && !p->zero) {
        o->link = p->link;
        o->ext = p->ext;
    }
    return 0;
}

/* First piece ending after a. */
static size_t piece_at(uintptr_t a) { return cr_restore_piece_at(W.pc, W.npc, a); }

/* Split the dirty extents along the pieces. */
static int plan(void)
{
    W.nop = 0;
    for (size_t d = 0; d < W.nd; d++) {
        uintptr_t a = W.dirty[d].addr, end = a + W.dirty[d].len;
        for (size_t i = piece_at(a); a < end; i++) {
            int rc;
            if (i >= W.npc || W.pc[i].addr >= end) {
                rc = add_op(a, end - a, NULL);   /* no piece: zeros */
                if (rc)
                    return rc;
                break;
            }
            const struct cr_restore_piece *p = &W.pc[i];
            rc = 0;
            if (p->addr > a)
                rc = add_op(a, p->addr - a, NULL);
            uintptr_t lo = CR_MAX(a, p->addr), hi = CR_MIN(end, p->addr + p->len);
            if (rc == 0)
                rc = add_op(lo, hi - lo, p);
            if (rc)
                return rc;
            a = hi;
        }
    }
    return 0;
}

static int by_source(const void *x, const void *y)
{
    const struct op *a = &W.op[*(const size_t *)x], *b = &W.op[*(const size_t *)y];
    if (a->link != b->link)
        return a->link < b->link ? -1 : 1;
    if (a->ext != b->ext)
        return a->ext < b->ext ? -1 : 1;
    return a->addr < b->addr ? -1 : a->addr > b->addr;
}

/* Read the checkpoint contents of every data op into *stage, each extent
 * once. Touches no region memory. */
static int fetch(uint8_t **stage, uint64_t *bytes)
{
    size_t nd = 0, total = 0;
    for (size_t i = 0; i < W.nop; i++)
        if (!W.op[i].zero) {
            W.op[i].off = total;
            total += W.op[i].len;
            nd++;
        }
    *bytes = 0;
    *stage = NULL;
    if (nd == 0)
        return 0;
    if (total > W.stagelen) {
        uint8_t *nb = realloc(W.stage, total);
        if (!nb) {
            cr_err("cr_rollback: no memory to stage %zu bytes", total);
            return -ENOMEM;
        }
        W.stage = nb;
        W.stagelen = total;
    }
    uint8_t *buf = W.stage;
    size_t *ord = malloc(nd * sizeof *ord);
    if (!ord)
        return -ENOMEM;
    for (size_t i = 0, k = 0; i < W.nop; i++)
        if (!W.op[i].zero)
            ord[k++] = i;
    qsort(ord, nd, sizeof *ord, by_source);
    int rc = 0;
    uint32_t cur_link = UINT32_MAX;
    uint64_t cur_ext = UINT64_MAX;
    uintptr_t ea = 0;
    for (size_t k = 0; k < nd && rc == 0; k++) {
        const struct op *o = &W.op[ord[k]];
        if (o->link != cur_link || o->ext != cur_ext) {
            size_t elen;
            cr_restore_extent(W.r, o->link, o->ext, &ea, &elen);
            if (elen > W.ebuflen) {
                uint8_t *nb = realloc(W.ebuf, elen);
                if (!nb) {
                    rc = -ENOMEM;
                    break;
                }
                W.ebuf = nb;
                W.ebuflen = elen;
            }
            rc = cr_restore_fetch(W.r, o->link, o->ext, W.ebuf);
            if (rc) {
                cr_errc(rc, "cr_rollback: cannot read extent %llu of checkpoint epoch %llu",
                        (unsigned long long)o->ext,
                        (unsigned long long)cr_restore_link_epoch(W.r, o->link));
                break;
            }
            *bytes += elen;
            cur_link = o->link;
            cur_ext = o->ext;
        }
        memcpy(buf + o->off, W.ebuf + (o->addr - ea), o->len);
    }
    free(ord);
    if (rc)
        return rc;
    *stage = buf;
    return 0;
}

/* Put the checkpoint's contents back. Cannot fail. */
static void apply(const uint8_t *stage)
{
    for (size_t i = 0; i < W.nop; i++) {
        const struct op *o = &W.op[i];
        if (!o->zero)
            memcpy((void *)o->addr, stage + o->off, o->len);
        else if (cr_region_discard((void *)o->addr, o->len) != 0)
            memset((void *)o->addr, 0, o->len);
    }
}

/* Decide what every pthread does; was_running: carried by a parked pthread. */
static void threads(struct cr_exec_root *root, const uint8_t *was_running)
{
    int live = 0;
    for (uint32_t i = 0; i < CR_MAX_THREADS; i++) {
        struct cr_pthread *t = &root->threads[i];
        int ck = t->state == CR_T_RUNNING;
        live += ck;
        RT.rb_action[i] = 0;
        if (was_running[i]) {
            RT.rb_action[i] = ck ? CR_RB_RESUME : CR_RB_EXIT;
            if (!ck)
                RT.stale[i] = 1;
        } else if (!ck && t->state == CR_T_FREE && RT.has_pt[i] && !RT.stale[i]) {
            RT.stale[i] = 1;   /* created and finished since: nobody will join it */
        }
    }
    for (uint32_t i = 1; i < CR_MAX_THREADS; i++) {
        struct cr_pthread *t = &root->threads[i];
        if (was_running[i] || t->state != CR_T_RUNNING)
            continue;
        /* Finished since the checkpoint: a new pthread on the same home slot,
         * once the old one is gone. It may need the lock to leave (its home
         * routine's rendezvous check, which returns at once: RT.busy). */
        if (RT.has_pt[i]) {
            pthread_t pt = RT.pt[i];
            RT.stale[i] = 2;
            pthread_mutex_unlock(&RT.lock);
            int rc = pthread_join(pt, NULL);
            pthread_mutex_lock(&RT.lock);
            if (rc)
                cr_errc(-rc, "cr_rollback: pthread_join of persistent thread %u", i);
            RT.has_pt[i] = 0;
            RT.stale[i] = 0;
        }
        int rc = cr_exec_spawn(t, CR_RESUME_ROLLEDBACK);
        if (rc)
            fatal("cannot start a pthread for a thread that ran at the checkpoint", rc);
    }
    RT.live = live;
    RT.stopped = 0;
    RT.arrived = 0;
    RT.rb_gen++;
}

int cr_rollback_collect(struct cr_exec_root *root)
{
    double t0 = now();
    struct cr_store *st;
    uint64_t epoch;
    int untracked = 0;
    int rc = cr_engine_rollback_base(&st, &epoch, &untracked);
    if (rc) {
        if (rc == CR_ENOCKPT)
            cr_err("cr_rollback: no checkpoint to roll back to (none taken or restored in this "
                   "run, or the last one failed)");
        return rc;
    }
    rc = cr_transparent_rollback_check();
    if (rc == 0)
        rc = chain_open(st, epoch);
    if (rc)
        return rc;          /* nothing changed */
    static uint8_t was_running[CR_MAX_THREADS];
    for (uint32_t i = 0; i < CR_MAX_THREADS; i++)
        was_running[i] = root->threads[i].state == CR_T_RUNNING;
    double t1 = now();
    W.nd = 0;
    rc = untracked ? cr_region_collect_populated(add_dirty, NULL) : 0;
    /* Peek when the tracker can: the tracker is untouched until the pages
     * are back (a failed read then loses nothing), and writing them back
     * costs no write-protect faults. */
    int peeked = 0;
    if (rc == 0) {
        size_t nd0 = W.nd;
        rc = cr_region_peek(add_dirty, NULL);
        peeked = rc == 0;
        if (rc == -ENOTSUP) {
            W.nd = nd0;
            rc = cr_region_collect(add_dirty, NULL);
        }
    }
    if (rc == 0 && untracked)
        rc = merge_dirty();
    uint8_t *stage = NULL;
    uint64_t bytes = 0;
    if (rc)
        cr_errc(rc, "cr_rollback: cannot collect the written pages of the region");
    double t2 = now();
    if (rc == 0)
        rc = plan();
    if (rc == 0)
        rc = fetch(&stage, &bytes);
    double t3 = now();
    if (rc) {
        if (!peeked)
            cr_engine_rollback_lost();
        chain_close();
        return rc;
    }
    size_t pages = 0;
    for (size_t i = 0; i < W.nd; i++)
        pages += W.dirty[i].len / PAGE;
    apply(stage);
    double t4 = now();
    /* The region is the epoch's image again: the next epoch chains onto it. */
    rc = cr_region_collect(NULL, NULL);
    if (rc) {
        cr_errc(rc, "cr_rollback: cannot re-base the dirty-page tracker (next checkpoint full)");
        cr_engine_rollback_lost();
    }
    rc = cr_heap_after_restore();
    if (rc)
        fatal("the heap is not consistent after putting its pages back", rc);
    rc = cr_transparent_rolled_back();
    if (rc)
        fatal("cannot copy the globals of the checkpoint back", rc);
    double t5 = now();
    threads(root, was_running);
    double sec = now() - t0;
    cr_engine_rollback_done(sec, bytes, pages);
    cr_dbg("rollback to epoch %llu: %zu pages in %zu extents, %llu checkpoint bytes read, "
           "%.3f ms (commit+open %.3f, collect %.3f, read %.3f, write %.3f, re-base+heap+globals "
           "%.3f, threads %.3f)", (unsigned long long)epoch, pages, W.nd,
           (unsigned long long)bytes, 1e3 * sec, 1e3 * (t1 - t0), 1e3 * (t2 - t1),
           1e3 * (t3 - t2), 1e3 * (t4 - t3), 1e3 * (t5 - t4), 1e3 * (now() - t5));
    return 0;
}

CR_EXPORT int cr_rollback(void)
{
    cr_exec_lazy_init();
    struct cr_pthread *self = cr_exec_self();
    if (!self || !RT.persistent || RT.collector != cr_engine_checkpoint) {
        cr_err("cr_rollback: %s", !self ? "not called from a persistent thread"
                                        : "checkpoint/restart is off in this process");
        return CR_ESTATE;
    }
    if (cr_exec_in_mpi_job()) {
        cr_err("cr_rollback: not supported in an MPI job (a rank cannot roll back alone; "
               "the other ranks would not follow)");
        return CR_EUNSUPPORTED;
    }
    return cr_exec_rollback_arrive();
}
