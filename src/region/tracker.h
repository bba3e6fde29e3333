/*
 * tracker.h - the contract between the region and a dirty-page tracker.
 *
 * A tracker learns which pages of the region's usable ranges were written
 * since its last collection. Three implementations, one file each:
 *   tracker_uffd_async.c  userfaultfd async write-protect + PAGEMAP_SCAN
 *   tracker_uffd_sync.c   userfaultfd write-protect + handler thread
 *   tracker_mprotect.c    mprotect + SIGSEGV handler
 * tracker.c picks one at open time (best usable, or CRMPI_TRACKER).
 *
 * The region core (region.c) serialises every call below with its own lock,
 * so a tracker only has to cope with application threads writing while it
 * runs. Ranges passed in are page-aligned and inside [base, base+max).
 * Invariant every tracker keeps: a page is reported by collect() iff it was
 * written since it was last reported, re-armed, discarded or added; a write
 * racing a collect() is reported by that collection or the next.
 */
#ifndef CR_TRACKER_H
#define CR_TRACKER_H

#include "region.h"
#include "common/config.h"

struct cr_tracker {
    const struct cr_tracker_ops *ops;
    uintptr_t base;      /* region base */
    size_t    max;       /* bytes reserved */
    void     *priv;      /* tracker state, allocated outside the region */
};

struct cr_tracker_ops {
    const char *name;                 /* as in CRMPI_TRACKER */
    enum cr_tracker_kind kind;
    /* 0 if usable here, else -errno with *why a static text saying why not. */
    int  (*probe)(const char **why);
    int  (*init)(struct cr_tracker *t);
    /* [addr, addr+len) just became usable (zero, readable and writable):
     * start tracking it; no page of it counts as written yet. */
    int  (*add_range)(struct cr_tracker *t, uintptr_t addr, size_t len);
    /* Report written extents of [start, end) in address order (extents may
     * be adjacent; the caller merges) and re-arm them. Stops at the first
     * non-zero return of fn and returns it. */
    int  (*collect)(struct cr_tracker *t, uintptr_t start, uintptr_t end,
                    cr_extent_fn fn, void *arg);
    /* Optional: report what collect() would, without re-arming (an in-memory
     * rollback writes those pages back next, then collects: writing a
     * re-armed page would cost a fault each). NULL: not available. */
    int  (*peek)(struct cr_tracker *t, uintptr_t start, uintptr_t end,
                 cr_extent_fn fn, void *arg);
    /* Optional, deferred re-arming (asynchronous checkpoints; see
     * cr_region_snapshot): snapshot() reports what collect() (full == 0) or
     * collect_populated() (full == 1) would and starts a new epoch, but
     * leaves the written pages unarmed; rearm() arms them later, while the
     * application may be writing again. For each page rearm() finds
     * written, same(page, arg) tells whether its contents still equal those
     * at the snapshot; the pages it says no for (all of them when same is
     * NULL) count as written since. While a re-arm is owed, collect(),
     * snapshot() and peek() report those pages as written (re-arming first
     * with same == NULL where they re-arm). NULL: not available. */
    int  (*snapshot)(struct cr_tracker *t, uintptr_t start, uintptr_t end, int full,
                     cr_extent_fn fn, void *arg);
    /* The re-arm comes in address-ordered pieces [start, end) (the region
     * lets other calls in between); `last` marks the one that ends it. */
    int  (*rearm)(struct cr_tracker *t, uintptr_t start, uintptr_t end, int last,
                  int (*same)(uintptr_t page, void *arg), void *arg);
    /* Report every page written at any time and not discarded since. */
    int  (*collect_populated)(struct cr_tracker *t, uintptr_t start, uintptr_t end,
                              cr_extent_fn fn, void *arg);
    /* Called after MADV_DONTNEED dropped [addr, addr+len): forget that the
     * pages were written or populated and re-arm them. */
    int  (*discard)(struct cr_tracker *t, uintptr_t addr, size_t len);
    /* Optional (lazy restore): also register [start, end) for missing-page
     * faults on the tracker's own userfaultfd, returned in *uffd, which the
     * caller serves with cr_uffd_copy/zeropage. -ENOTSUP when the tracker
     * cannot (not uffd-async, or a user-mode-only fd). */
    int  (*missing_begin)(struct cr_tracker *t, uintptr_t start, uintptr_t end, int *uffd);
    /* End missing mode on [start, end) with no application thread running:
     * pages filled since missing_begin count as populated and written. */
    int  (*missing_end)(struct cr_tracker *t, uintptr_t start, uintptr_t end);
    /* Optional (cr_region_fence): from now on every walk skips [lo, hi)
     * (lo == hi: nothing), which the region keeps inaccessible; forget what
     * was written, populated or carried there. NULL: cannot skip. */
    void (*fence)(struct cr_tracker *t, uintptr_t lo, uintptr_t hi);
    /* Optional: the kernel is about to write [addr, addr+len) (a restore
     * preads into it, cr_region_populate): make it writable for the kernel
     * and count it as written. NULL: the kernel's writes are tracked (or
     * allowed) like the application's. */
    int  (*open_write)(struct cr_tracker *t, uintptr_t addr, size_t len);
    /* Optional: the calling thread is about to run on a stack inside the
     * region (a persistent thread's). NULL: nothing to do. */
    int  (*thread_prepare)(struct cr_tracker *t);
    /* Stop tracking (the region is about to be unmapped). */
    void (*fini)(struct cr_tracker *t);
};

extern const struct cr_tracker_ops cr_tracker_uffd_async;
extern const struct cr_tracker_ops cr_tracker_uffd_sync;
extern const struct cr_tracker_ops cr_tracker_mprotect;

/* Choose the tracker for `kind` (CR_TRACKER_AUTO: best usable, logged at
 * info with the reasons better ones were not usable). Returns the ops, or
 * NULL with *err = -ENOSYS when a forced tracker is not usable (logged). */
const struct cr_tracker_ops *cr_tracker_select(int kind, int *err);
/* Name of a tracker kind ("auto", "uffd-async", ...). */
const char *cr_tracker_kind_name(int kind);

#endif
