/*
 * attach.c - attaching the heap to the persistent region: building an empty
 * heap (root, page map and page area laid out from the region's maximum),
 * validating and adopting a heap whose bytes a restore wrote back, the
 * after-restore reset of process-local state, the first-use path that opens
 * the region when no runtime did, and fork safety.
 *
 * A restored root is trusted only after its magic, format version, layout
 * hash (size classes and structure sizes of this build) and every address
 * it holds have been checked against the region it now lives in.
 */
#include "heap/heap_internal.h"
#include "heap/annotate.h"
#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"

#include <errno.h>
#include <string.h>

struct heap_proc heap_proc = {
    .page_lock = PTHREAD_MUTEX_INITIALIZER,
    .shared_lock = PTHREAD_MUTEX_INITIALIZER,
    .check_lock = PTHREAD_MUTEX_INITIALIZER,
};
pthread_mutex_t heap_init_lock = PTHREAD_MUTEX_INITIALIZER;

struct layout { uintptr_t root, map, pages_base; uint32_t max_pages; };

/* Where root, page map and pages go for the open region. */
static int layout_for_region(struct layout *L)
{
    uintptr_t base = (uintptr_t)cr_region_base(), end = base + cr_region_max();
    L->root = cr_region_data_start();
    L->map = cr_align_up(L->root + sizeof(struct heap_root), HEAP_PAGE);
    if (L->map >= end)
        return -ENOMEM;
    uint64_t n = (end - L->map) / (HEAP_PAGE + sizeof(struct hpage));
    n = CR_MIN(n, (uint64_t)HEAP_MAX_PAGES);
    for (;;) {
        L->pages_base = cr_align_up(L->map + n * sizeof(struct hpage), 64 * 1024);
        if (n == 0 || L->pages_base + n * HEAP_PAGE <= end)
            break;
        n--;
    }
    L->max_pages = (uint32_t)n;
    return n < 64 ? -ENOMEM : 0;
}

/* The page map is laid out for the region's maximum (16 bytes per page:
 * 256 MiB for 64 GiB) but only its entries below the top are used. The
 * rest is fenced off (cr_region_fence): a checkpoint's scan does not walk
 * its page tables (0.08-0.38 ms of a 0.7-1.4 ms scan of a 1 GiB heap; the
 * tracker's write-protect markers make the kernel allocate and visit them),
 * and a stray write there faults instead of vanishing from checkpoints.
 * The fence moves up in CR_REGION_CHUNK steps (2 MiB of map: 512 MiB of
 * pages), a page ahead of the entries in use, so reads of the entry just
 * past the top stay inside. It never moves down in a process: an in-place
 * restore may lower the top, but the entries up to the high-water mark
 * still hold data (advance_top clears them). */
int heap_map_fence(uint32_t end)
{
    struct heap_root *r = heap_proc.root;
    uintptr_t need = (uintptr_t)&r->map[end] + HEAP_PAGE;
    if (heap_proc.map_fence && need <= heap_proc.map_fence)
        return 0;
    uintptr_t lo = CR_MIN(cr_align_up(need, CR_REGION_CHUNK), r->pages_base);
    int rc = cr_region_fence(lo, r->pages_base);
    if (rc)
        cr_errc(rc, "heap: fencing the unused page map [%#lx, %#lx)", (unsigned long)lo,
                (unsigned long)r->pages_base);
    else
        heap_proc.map_fence = lo;
    return rc;
}

static void fresh_caches(struct heap_root *r)
{
    r->caches[0].id = 0;
    r->caches[0].state = CACHE_BUSY;   /* the shared cache is never adopted */
}

static int build_root(void)
{
    struct layout L;
    int rc = layout_for_region(&L);
    if (rc) {
        cr_err("heap: region of %zu bytes is too small for the heap", cr_region_max());
        return rc;
    }
    /* Whatever an earlier heap left in the region must read as zeros, so
     * the page map starts empty and pages above the top are clean. Only the
     * part usable before this call can hold anything: growth reads as zeros. */
    uintptr_t end = (uintptr_t)cr_region_base() + cr_region_size();
    if (end > L.map && (rc = cr_region_discard((void *)L.map, end - L.map)))
        return rc;
    rc = cr_region_grow(L.pages_base - (uintptr_t)cr_region_base());
    if (rc) {
        cr_errc(rc, "heap: growing the region to %#lx for the heap's page map",
                (unsigned long)L.pages_base);
        return rc;
    }
    end = (uintptr_t)cr_region_base() + cr_region_size();
    struct heap_root *r = (struct heap_root *)L.root;
    memset(r, 0, sizeof *r);
    r->magic = HEAP_MAGIC;
    r->version = HEAP_VERSION;
    r->root_len = sizeof *r;
    r->layout = heap_classes_hash();
    r->self = L.root;
    r->pages_base = L.pages_base;
    r->map = (struct hpage *)L.map;
    r->max_pages = L.max_pages;
    memset(r->bins, 0xff, sizeof r->bins);
    fresh_caches(r);
    heap_proc.hwm = 0;
    heap_proc_set_root(r);
    if ((rc = heap_map_fence(0)))
        return rc;
    /* Sanitizer state is per address, not per mapping: forget whatever an
     * earlier heap at these addresses left poisoned. */
    HEAP_ANN_OPEN((void *)L.root, end - L.root);
    cr_region_set_root(CR_ROOT_HEAP, r);
    return 0;
}

/* Check a root written back by a restore before trusting any of it. */
static int validate_root(struct heap_root *r)
{
    struct layout L;
    if (!r) {
        cr_err("heap: the region has no heap root (nothing to restore)");
        return CR_EFORMAT;
    }
    if ((uintptr_t)r != cr_region_data_start() || !cr_region_contains(r, sizeof *r)) {
        cr_err("heap: heap root at %p is not at the region's data start %#lx",
               (void *)r, (unsigned long)cr_region_data_start());
        return CR_ECORRUPT;
    }
    if (r->magic != HEAP_MAGIC || r->version != HEAP_VERSION || r->root_len != sizeof *r ||
        r->layout != heap_classes_hash()) {
        cr_err("heap: heap root at %p has another format (magic %#llx version %u, layout "
               "%#llx, expected %#llx version %u layout %#llx)", (void *)r,
               (unsigned long long)r->magic, r->version, (unsigned long long)r->layout,
               (unsigned long long)HEAP_MAGIC, HEAP_VERSION,
               (unsigned long long)heap_classes_hash());
        return CR_EFORMAT;
    }
    /* The page map's length (hence where the pages start) was computed from
     * the region's maximum when the heap was built; the region may now be
     * opened with another maximum. The heap keeps its layout and, in a
     * smaller region, gives up the pages beyond it if its top allows. */
    int rc = layout_for_region(&L);
    uintptr_t end = (uintptr_t)cr_region_base() + cr_region_max();
    if (rc || r->self != L.root || (uintptr_t)r->map != L.map || r->top > r->max_pages ||
        r->pages_base % (64 * 1024) ||
        r->pages_base < L.map + (uint64_t)r->max_pages * sizeof(struct hpage) ||
        r->pages_base + (uint64_t)r->top * HEAP_PAGE > end ||
        !cr_region_contains(r->map, r->pages_base - L.map) ||
        r->pages_base + (uint64_t)r->top * HEAP_PAGE > (uintptr_t)cr_region_base() + cr_region_size()) {
        cr_err("heap: heap root at %p does not fit this region (map %p pages %#lx max %u "
               "top %u; region max %zu size %zu)", (void *)r, (void *)r->map,
               (unsigned long)r->pages_base, r->max_pages, r->top, cr_region_max(),
               cr_region_size());
        return CR_ECORRUPT;
    }
    if (r->pages_base + (uint64_t)r->max_pages * HEAP_PAGE > end) {
        uint32_t fit = (uint32_t)((end - r->pages_base) / HEAP_PAGE);
        cr_info("heap: region maximum is smaller than when the heap was built: %u pages "
                "instead of %u", fit, r->max_pages);
        r->max_pages = fit;
    }
    return 0;
}

/* fork() while another thread holds a heap lock would leave the child's
 * copy locked forever: hold them all across fork, as malloc does. The
 * caches of the other threads stay owned in the child (their threads may
 * have been in the middle of a lock-free operation on them when fork
 * copied the memory): objects they hold are lost to the child, never
 * corrupted, exactly like glibc's per-thread caches. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&heap_init_lock);
    pthread_mutex_lock(&heap_proc.check_lock);
    pthread_mutex_lock(&heap_proc.shared_lock);
    pthread_mutex_lock(&heap_proc.page_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&heap_proc.page_lock);
    pthread_mutex_unlock(&heap_proc.shared_lock);
    pthread_mutex_unlock(&heap_proc.check_lock);
    pthread_mutex_unlock(&heap_init_lock);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_register(void)
{
    int rc = pthread_atfork(fork_prepare, fork_parent, fork_parent);
    if (rc)
        cr_err("heap: pthread_atfork failed (%s): fork() during an allocation may "
               "deadlock the child", strerror(rc));
}

static int init_locked(enum cr_heap_mode mode)
{
    pthread_once(&atfork_once, atfork_register);
    if (!cr_region_is_open()) {
        cr_err("heap: the persistent region is not open");
        return -ENODEV;
    }
    heap_classes_init();
    heap_proc.check = cr_config()->heap_check;
    heap_proc.map_fence = 0;   /* a new heap, or the region may have been reopened */
    if (mode == CR_HEAP_FRESH) {
        int rc = build_root();
        if (rc)
            return rc;
        __atomic_add_fetch(&heap_proc.gen, 1, __ATOMIC_RELEASE);
        heap_proc.zero_gen = ++heap_proc.root->gen_counter & 0x7fffffffu;
        return 0;
    }
    int rc = validate_root(cr_region_root(CR_ROOT_HEAP));
    if (rc)
        return rc;
    heap_proc_set_root(cr_region_root(CR_ROOT_HEAP));
    return cr_heap_after_restore();
}

int cr_heap_init(enum cr_heap_mode mode)
{
    pthread_mutex_lock(&heap_init_lock);
    heap_proc_set_root(NULL);
    int rc = init_locked(mode);
    if (rc)
        heap_proc_set_root(NULL);
    pthread_mutex_unlock(&heap_init_lock);
    return rc;
}

void cr_heap_detach(void)
{
    pthread_mutex_lock(&heap_init_lock);
    heap_proc_set_root(NULL);
    __atomic_add_fetch(&heap_proc.gen, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&heap_init_lock);
}

int cr_heap_after_restore(void)
{
    struct heap_root *r = heap_proc.root;
    if (!r)
        return -ENODEV;
    int rc = validate_root(r);
    if (rc)
        return rc;
    /* Threads' __thread cache pointers predate the restore: a new
     * generation makes each re-adopt a cache on its next call. */
    __atomic_add_fetch(&heap_proc.gen, 1, __ATOMIC_RELEASE);
    r->gen_counter = (r->gen_counter + 1) & 0x7fffffffu;
    if (!r->gen_counter)
        r->gen_counter = 1;
    heap_proc.zero_gen = r->gen_counter;
    heap_proc.hwm = CR_MAX(heap_proc.hwm, r->top);
    if ((rc = heap_map_fence(heap_proc.hwm)))
        return rc;
    heap_proc.check = cr_config()->heap_check;
    /* The restored bytes come with no poisoning: open metadata and pages
     * (free objects are poisoned again as they are reused and freed). */
    HEAP_ANN_OPEN((void *)r, heap_page_addr(r->top) - (uintptr_t)r);
    caches_reset_after_restore();
    return heap_proc.check ? cr_heap_check() : 0;
}

/* First use of the heap without cr_heap_init: attach to the open region
 * (restored if it holds a heap root), or, in a program where nothing opened
 * the region yet (libcr used as a plain persistent allocator), open it with
 * the configured defaults and start an empty heap. */
int heap_lazy_init(void)
{
    pthread_mutex_lock(&heap_init_lock);
    int rc = 0;
    if (!heap_proc.root) {
        if (!cr_region_is_open()) {
            rc = cr_region_open(NULL);
            if (!rc)
                cr_info("heap: opened the persistent region on first use");
        }
        if (!rc)
            rc = init_locked(cr_region_root(CR_ROOT_HEAP) ? CR_HEAP_RESTORED : CR_HEAP_FRESH);
        if (rc)
            heap_proc_set_root(NULL);
    }
    pthread_mutex_unlock(&heap_init_lock);
    if (rc)
        cr_errc(rc, "crmalloc: the persistent heap is unavailable");
    return rc;
}
