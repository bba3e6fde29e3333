/*
 * region.h - the persistent region: one range of virtual memory per process,
 * at a fixed address, whose written pages the kernel tracks.
 *
 * The region is reserved (address space only) at CRMPI_REGION_BASE with
 * MAP_FIXED_NOREPLACE for CRMPI_REGION_MAX bytes, and made usable on demand
 * by cr_region_grow(). Everything persistent lives inside it: the heap (with
 * all of its metadata), persistent thread stacks, copies of argv/envp and the
 * runtime's own control blocks, found through the root slots of the header
 * page. The checkpoint engine asks "which pages were written since the last
 * call" (cr_region_collect); the restore path writes pages back and then
 * re-bases the tracker.
 *
 * Tracking is done by one of three trackers (tracker.h), chosen at run time
 * or forced by CRMPI_TRACKER. All functions are thread-safe. Status codes:
 * 0, -errno, or CR_E* (cr.h).
 */
#ifndef CR_REGION_H
#define CR_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "common/compiler.h"

#define CR_PAGE_SIZE      4096UL
#define CR_REGION_CHUNK   (2UL << 20)  /* growth granularity */

struct cr_region_params {
    uintptr_t base;        /* page-aligned fixed address (0: CRMPI_REGION_BASE)    */
    size_t    max_size;    /* bytes reserved (0: CRMPI_REGION_MAX)                 */
    int       tracker;     /* enum cr_tracker_kind (CR_TRACKER_AUTO: best usable)  */
};

/* One range of pages reported by a collection. */
struct cr_extent {
    uintptr_t addr;        /* page-aligned */
    size_t    len;         /* multiple of CR_PAGE_SIZE */
    uint32_t  flags;       /* CR_EXTENT_* */
};
#define CR_EXTENT_ZERO 0x1u
/* Longest data extent a collection reports (longer runs are cut): the unit
 * a lazy restore reads and checksums to serve one page fault. */
#define CR_EXTENT_MAX  (1UL << 20)   /* discarded since the last collection: now reads as zeros */

/* Called once per extent, in increasing address order. A non-zero return
 * stops the collection and is returned by it (the epoch still advances:
 * extents not yet delivered are lost for this epoch, so a caller that stops
 * early must take a full epoch next). */
typedef int (*cr_extent_fn)(const struct cr_extent *ext, void *arg);

/* Reserve the region and start tracking. Errors: CR_ECOLLISION (the address
 * range is already mapped: the message names it), -EINVAL (misaligned base,
 * zero size), -EBUSY (already open), -ENOSYS (forced tracker unavailable). */
CR_MUST_CHECK int cr_region_open(const struct cr_region_params *params);
/* Unmap the region and stop tracking. Returns -EBADF if not open. */
int cr_region_close(void);
int cr_region_is_open(void);

void     *cr_region_base(void);
size_t    cr_region_size(void);     /* usable bytes from the base */
size_t    cr_region_max(void);
const char *cr_region_tracker_name(void);
/* True when [p, p+len) lies inside the usable part of the region. */
int cr_region_contains(const void *p, size_t len);

/* Make [base, base+new_size) usable (rounded up to CR_REGION_CHUNK) and
 * tracked; never shrinks. New pages read as zeros and are not reported
 * until written. -ENOMEM beyond max_size. */
CR_MUST_CHECK int cr_region_grow(size_t new_size);

/* Drop the contents of whole pages [addr, addr+len) (page-aligned): they
 * read as zeros afterwards, cost no memory, and the next collection reports
 * them once with CR_EXTENT_ZERO instead of as written. */
CR_MUST_CHECK int cr_region_discard(void *addr, size_t len);

/* Back [addr, addr+len) (inside the usable part) with memory now, as if
 * written, in one call (MADV_POPULATE_WRITE, Linux >= 5.14): a restore that
 * is about to fill the range saves one page fault per page, which is what
 * dominates restoring into fresh memory on virtual machines (measured here:
 * 1 GiB touched page by page 8.8-17.5 s, populated 0.56-1.4 s). The pages
 * count as written. -EINVAL if the kernel lacks it (the caller just goes
 * on: the faults then happen one by one). With the mprotect tracker it
 * also makes the range writable for the kernel, which a pread into it
 * needs (call it first). */
CR_MUST_CHECK int cr_region_populate(void *addr, size_t len);

/* ---- lazy restore support ---------------------------------------------- */
/* Serve missing-page faults of [base, base+len) (len: the restored usable
 * size) through the tracker's userfaultfd, returned in *uffd; pages already
 * present are not affected. -ENOTSUP when the tracker cannot (only
 * uffd-async with a fd that sees kernel-mode faults can). */
CR_MUST_CHECK int cr_region_missing_begin(size_t len, int *uffd);
/* Back to tracking only. Call with no application thread running; pages
 * filled meanwhile count as populated (the next full epoch saves them). */
CR_MUST_CHECK int cr_region_missing_end(void);
/* Called by cr_region_discard, under the region's lock, before the pages
 * are dropped (the lazy restore must not refill a discarded page from the
 * checkpoint). NULL removes the hook. */
void cr_region_set_discard_hook(void (*fn)(void *arg, uintptr_t addr, size_t len), void *arg);

/* Fence off [lo, hi) of the usable part (page-aligned; lo == hi: no
 * fence), replacing the previous fence: a range the caller keeps empty and
 * does not touch, such as the unused end of an array sized for the
 * region's maximum. It becomes inaccessible (a stray access faults instead
 * of going unsaved), and collections skip it, which saves walking its page
 * tables (uffd-async visits every pte of a page table, armed or not: the
 * heap's 256 MiB page map cost 0.08-0.38 ms of a 0.7-1.4 ms scan of a 1 GiB
 * heap: perf/region, fence table).
 * Its contents are not saved by later checkpoints (it is meant to hold
 * none). Pages leaving the fence are accessible and tracked again. With a
 * tracker that cannot skip (uffd-sync, mprotect pay per page written, not
 * per page table) this does nothing and returns 0. -EINVAL: misaligned, or
 * outside the data part. */
CR_MUST_CHECK int cr_region_fence(uintptr_t lo, uintptr_t hi);

/* The calling thread is about to run on a stack inside the region (a
 * persistent thread's): call it on that thread first. With a tracker whose
 * write faults are signals (mprotect) it gets an alternate signal stack,
 * without which a fault on its own stack kills the process. 0, or -errno
 * (the thread must then not run on a region stack). */
CR_MUST_CHECK int cr_region_thread_prepare(void);

/* Report every extent written or discarded since the previous collection
 * and start a new epoch, atomically per page: a page written while this runs
 * is reported now or by the next collection, never lost. fn may be NULL to
 * only re-base (used after a restore has written pages back). */
CR_MUST_CHECK int cr_region_collect(cr_extent_fn fn, void *arg);

/* What cr_region_collect would report now, without starting a new epoch
 * (only for a caller that stops every writer and collects right after: an
 * in-memory rollback). -ENOTSUP when the tracker cannot (uffd-async can). */
CR_MUST_CHECK int cr_region_peek(cr_extent_fn fn, void *arg);

/* Report every page that currently has contents (written at any time and not
 * discarded since): what a full checkpoint must save. Does not start a new
 * epoch. */
CR_MUST_CHECK int cr_region_collect_populated(cr_extent_fn fn, void *arg);

/* Two-phase collection, for checkpoints that let the application run on
 * while they are written. cr_region_snapshot reports what cr_region_collect
 * (full == 0) or cr_region_collect_populated (full == 1) would and starts a
 * new epoch, like cr_region_collect, but may leave re-arming the tracking
 * of the reported pages (the costly part on virtual machines) to
 * cr_region_rearm, which may run on another thread while the application
 * writes again. For every page rearm finds written since the last re-arm,
 * same(page, arg) must say whether its contents still equal those at the
 * snapshot (the caller keeps a copy of the reported pages): the pages it
 * says no for are reported by the next collection, the others were only
 * written before the snapshot or rewritten with the same bytes. A
 * collection or snapshot while a re-arm is owed re-arms first, treating
 * every written page as changed (more pages, never fewer). With a tracker
 * that cannot defer, the snapshot re-arms at once and rearm does nothing. */
CR_MUST_CHECK int cr_region_snapshot(int full, cr_extent_fn fn, void *arg);
CR_MUST_CHECK int cr_region_rearm(int (*same)(uintptr_t page, void *arg), void *arg);

/* ---- the header page and its root slots --------------------------------- */
/* The first page of the region belongs to the region itself. It records the
 * usable size and a few root pointers through which each module finds its
 * persistent state after a restore. */
enum cr_root_id { CR_ROOT_HEAP = 0, CR_ROOT_EXEC, CR_ROOT_MPI, CR_ROOT_USER,
                   CR_ROOT_TRANSPARENT, CR_ROOT_MAX = 16 };
void *cr_region_root(enum cr_root_id id);
void  cr_region_set_root(enum cr_root_id id, void *p);
/* First byte after the header page: where other modules may allocate. */
uintptr_t cr_region_data_start(void);

#endif
