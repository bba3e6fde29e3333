/*
 * heap.h - the persistent heap, as seen by the rest of the runtime.
 *
 * The public malloc family (crmalloc, crfree, ... in cr.h) allocates from
 * the persistent region. All allocator state lives inside the region: a
 * root block found through cr_region_root(CR_ROOT_HEAP), a page map (16 bytes
 * per 4 KiB page of heap), slab headers in the slabs themselves and the
 * per-thread caches. Writing the region's bytes back therefore restores the
 * heap exactly; the only process-local state is locks, the calling thread's
 * cache pointer (__thread) and a generation number that invalidates it.
 *
 * Life cycle, driven by the runtime:
 *   cr_region_open();  cr_heap_init(CR_HEAP_FRESH)          first start
 *   ... region bytes written back ...; cr_heap_init(CR_HEAP_RESTORED)
 *   in-place rollback of a live process: cr_heap_after_restore()
 * crmalloc() before cr_heap_init attaches by itself: to the open region
 * (restored if it holds a heap root, fresh otherwise), or, if no one opened
 * the region, after opening it with the configured defaults.
 *
 * Thread safety: every function here may be called from any thread, except
 * that cr_heap_init/after_restore/detach need the allocator to be idle, and
 * cr_heap_check needs it idle unless CRMPI_HEAP_CHECK=1 (which serialises
 * every operation with the checker).
 */
#ifndef CR_HEAP_H
#define CR_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/compiler.h"

enum cr_heap_mode { CR_HEAP_FRESH = 0, CR_HEAP_RESTORED = 1 };

/* Attach the heap to the open region. FRESH builds an empty heap (replacing
 * any root), RESTORED validates the root written back by a restore and then
 * runs cr_heap_after_restore(). Errors: -ENODEV (region not open), -ENOMEM
 * (region too small for the heap's metadata), CR_EFORMAT (no heap root, or
 * another format version/layout), CR_ECORRUPT (root inconsistent with the
 * region). */
CR_MUST_CHECK int cr_heap_init(enum cr_heap_mode mode);

/* Forget the process-local attachment (before cr_region_close, in tests).
 * The heap's persistent state is untouched. */
void cr_heap_detach(void);

/* After the region's bytes were written back under a running process:
 * invalidate every thread's cached pointer to its per-thread cache, make all
 * caches of the restored image adoptable again (their slabs and pending
 * remote frees go to the next thread that needs a cache: nothing leaks),
 * and stop trusting that discarded pages read as zeros. Returns 0, or the
 * checker's status when CRMPI_HEAP_CHECK=1. */
CR_MUST_CHECK int cr_heap_after_restore(void);

/* Full invariant check of the heap (page map, free-extent bins, coalescing,
 * every slab's bitmaps and free list, caches and their remote queues).
 * Returns 0, or CR_ECORRUPT after logging the first violation found, or
 * -ENODEV when the heap is not attached. */
CR_MUST_CHECK int cr_heap_check(void);

/* True when p points into the heap's pages (not necessarily at a live
 * allocation): the test a malloc interposer uses to route free(p). Cheap. */
int cr_heap_owns(const void *p);

/* Release the contents of every free page (MADV_DONTNEED through
 * cr_region_discard) so that the next checkpoint does not save them. Also
 * returns fully free slabs held by abandoned caches. The checkpoint engine
 * calls it before collecting. Returns 0 or the discard's error. */
CR_MUST_CHECK int cr_heap_trim(void);

struct cr_heap_stats {
    size_t live_bytes;       /* usable bytes of live allocations              */
    size_t live_objects;     /* number of live allocations                    */
    size_t small_bytes;      /* pages held by slabs (small objects)           */
    size_t large_bytes;      /* pages of live large objects                   */
    size_t free_bytes;       /* pages in free extents                         */
    size_t free_dirty_bytes; /* free pages whose contents are not yet released*/
    size_t heap_bytes;       /* pages handed out from the region so far (top) */
    size_t meta_bytes;       /* root + page map entries covering the top      */
    size_t used_bytes;       /* heap_bytes - released free pages + meta_bytes:
                                what a full checkpoint of the heap holds      */
    double fragmentation;    /* 1 - live_bytes / (used_bytes - meta_bytes)    */
    unsigned caches_in_use;  /* per-thread caches owned by a live thread      */
    unsigned caches_total;   /* caches ever created (adoptable ones included) */
};
/* Fill *st (a consistent snapshot when the allocator is idle; approximate
 * under concurrent use). Returns 0 or -ENODEV. */
int cr_heap_stats(struct cr_heap_stats *st);

#endif
