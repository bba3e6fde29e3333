/*
 * heap.c - the public malloc family on the persistent region, the heap's
 * attachment to the region (fresh or restored), and misuse detection.
 *
 * Requests up to HEAP_SMALL_MAX bytes go to the per-thread caches
 * (cache.c); larger ones are page extents (pages.c) under one mutex, their
 * length kept in the page map, so a large object is exactly its pages and
 * needs no header. Every pointer handed to free/realloc/usable_size is
 * validated through the page map before anything is written: a foreign
 * pointer, an interior pointer or a double free is reported by name and
 * ignored, leaving the heap intact.
 *
 * With CRMPI_HEAP_CHECK=1 every operation runs under one process-wide mutex
 * with a full cr_heap_check() before and after it.
 */
#include "heap/heap_internal.h"
#include "heap/annotate.h"
#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>

struct heap_proc heap_proc = {
    .page_lock = PTHREAD_MUTEX_INITIALIZER,
    .shared_lock = PTHREAD_MUTEX_INITIALIZER,
    .check_lock = PTHREAD_MUTEX_INITIALIZER,
};
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- attachment ---------------------------------------------------------- */

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
    rc = cr_region_grow(L.pages_base - (uintptr_t)cr_region_base());
    if (rc) {
        cr_errc(rc, "heap: growing the region to %#lx for the heap's page map",
                (unsigned long)L.pages_base);
        return rc;
    }
    /* Whatever an earlier heap left in the region now reads as zeros, so
     * the page map starts empty and pages above the top are clean. */
    uintptr_t end = (uintptr_t)cr_region_base() + cr_region_size();
    rc = cr_region_discard((void *)L.map, end - L.map);
    if (rc)
        return rc;
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
    heap_proc.root = r;
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
    pthread_mutex_lock(&init_lock);
    pthread_mutex_lock(&heap_proc.check_lock);
    pthread_mutex_lock(&heap_proc.shared_lock);
    pthread_mutex_lock(&heap_proc.page_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&heap_proc.page_lock);
    pthread_mutex_unlock(&heap_proc.shared_lock);
    pthread_mutex_unlock(&heap_proc.check_lock);
    pthread_mutex_unlock(&init_lock);
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
    heap_proc.root = cr_region_root(CR_ROOT_HEAP);
    return cr_heap_after_restore();
}

int cr_heap_init(enum cr_heap_mode mode)
{
    pthread_mutex_lock(&init_lock);
    heap_proc.root = NULL;
    int rc = init_locked(mode);
    if (rc)
        heap_proc.root = NULL;
    pthread_mutex_unlock(&init_lock);
    return rc;
}

void cr_heap_detach(void)
{
    pthread_mutex_lock(&init_lock);
    heap_proc.root = NULL;
    __atomic_add_fetch(&heap_proc.gen, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&init_lock);
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
static int lazy_init(void)
{
    pthread_mutex_lock(&init_lock);
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
            heap_proc.root = NULL;
    }
    pthread_mutex_unlock(&init_lock);
    if (rc)
        cr_errc(rc, "crmalloc: the persistent heap is unavailable");
    return rc;
}

static inline int heap_ready(void)
{
    return cr_likely(heap_proc.root != NULL) || lazy_init() == 0;
}

int cr_heap_owns(const void *p)
{
    const struct heap_root *r = heap_proc.root;
    return r && (uintptr_t)p >= r->pages_base &&
           ((uintptr_t)p - r->pages_base) >> HEAP_PAGE_SHIFT < r->max_pages;
}

int cr_heap_trim(void)
{
    if (!heap_proc.root)
        return -ENODEV;
    int check = heap_proc.check;       /* no checker running meanwhile */
    if (check)
        pthread_mutex_lock(&heap_proc.check_lock);
    int rc = caches_trim();
    pthread_mutex_lock(&heap_proc.page_lock);
    int e = pages_purge();
    pthread_mutex_unlock(&heap_proc.page_lock);
    if (check)
        pthread_mutex_unlock(&heap_proc.check_lock);
    return rc ? rc : e;
}

/* ---- the operations ------------------------------------------------------ */

static uint32_t large_pages(uint32_t n, uint32_t align_pages, int *zero)
{
    pthread_mutex_lock(&heap_proc.page_lock);
    uint32_t page = pages_alloc(n, align_pages, zero);
    if (page != HEAP_NIL)
        pages_set_large(page, n);
    pthread_mutex_unlock(&heap_proc.page_lock);
    return page;
}

static void *large_alloc(size_t size, uint32_t align_pages, int *zero)
{
    struct heap_root *r = heap_proc.root;
    if (size > (size_t)r->max_pages * HEAP_PAGE)
        return NULL;
    uint32_t n = (uint32_t)((size + HEAP_PAGE - 1) >> HEAP_PAGE_SHIFT);
    n = n ? n : 1;
    uint32_t page = large_pages(n, align_pages, zero);
    if (page == HEAP_NIL) {
        /* Empty slabs kept by caches may be what stands in the way. */
        (void)caches_trim();
        page = large_pages(n, align_pages, zero);
    }
    if (page == HEAP_NIL)
        return NULL;
    void *p = (void *)heap_page_addr(page);
    HEAP_ANN_ALLOC(p, (size_t)n * HEAP_PAGE, *zero);
    return p;
}

static void *op_malloc(size_t size)
{
    if (size <= HEAP_SMALL_MAX) {
        unsigned cls = heap_class_of(size);
        void *p = small_alloc(cls);
        if (cr_unlikely(!p)) {
            (void)caches_trim();
            p = small_alloc(cls);
        }
        if (p)
            HEAP_ANN_ALLOC(p, heap_classes[cls].size, 0);
        return p;
    }
    int zero;
    return large_alloc(size, 1, &zero);
}

/* What p is: its usable size and, for large objects, first page and length.
 * Returns 0, or CR_ESTATE after logging why p is not a live allocation. */
struct lookup { size_t usable; struct slab *slab; uint32_t page, npages; };

static int lookup(void *p, struct lookup *L, const char *who, int check_small)
{
    const struct heap_root *r = heap_proc.root;
    uint32_t page = heap_page_of(p);
    if (page == HEAP_NIL) {
        cr_err("%s(%p): not a pointer from the persistent heap (its pages are %#lx-%#lx); "
               "ignored", who, p, (unsigned long)r->pages_base,
               (unsigned long)heap_page_addr(r->top));
        return CR_ESTATE;
    }
    uint32_t info = map_info(page);
    L->page = page;
    if (pk_kind(info) == PK_SLAB) {
        L->slab = slab_of_page(page, info);
        if (!L->slab) {
            cr_err("%s(%p): points into a slab whose header is damaged; ignored", who, p);
            return CR_ECORRUPT;
        }
        L->usable = heap_classes[L->slab->cls].size;
        return check_small ? small_live(L->slab, p, who) : 0;
    }
    L->slab = NULL;
    if (pk_kind(info) == PK_LARGE_HEAD && (uintptr_t)p == heap_page_addr(page)) {
        L->npages = pk_n(info);
        L->usable = (size_t)L->npages * HEAP_PAGE;
        return 0;
    }
    if (pk_kind(info) == PK_LARGE_HEAD || pk_kind(info) == PK_LARGE_TAIL)
        cr_err("%s(%p): interior pointer into a large allocation; ignored", who, p);
    else
        cr_err("%s(%p): not a live allocation (double free, freed memory, or an interior "
               "pointer of a large allocation); ignored", who, p);
    return CR_ESTATE;
}

static void large_free(void *p, uint32_t page, const char *who)
{
    pthread_mutex_lock(&heap_proc.page_lock);
    uint32_t info = map_info(page);    /* again, under the lock: racing double frees */
    if (pk_kind(info) != PK_LARGE_HEAD) {
        pthread_mutex_unlock(&heap_proc.page_lock);
        cr_err("%s(%p): double free of a large allocation; ignored", who, p);
        return;
    }
    HEAP_ANN_FREE(p, (size_t)pk_n(info) * HEAP_PAGE);
    pages_free(page, pk_n(info));
    pthread_mutex_unlock(&heap_proc.page_lock);
}

static void op_free(void *p, const char *who)
{
    uint32_t page = heap_page_of(p);
    if (cr_likely(page != HEAP_NIL)) {    /* the common case, without lookup() */
        uint32_t info = map_info(page);
        struct slab *s = pk_kind(info) == PK_SLAB ? slab_of_page(page, info) : NULL;
        if (cr_likely(s != NULL)) {
            (void)small_free(s, p, who);
            return;
        }
    }
    struct lookup L;
    if (!p || lookup(p, &L, who, 0))
        return;
    if (L.slab)
        (void)small_free(L.slab, p, who);
    else
        large_free(p, L.page, who);
}

static void *op_calloc(size_t nmemb, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total))
        return NULL;
    if (total <= HEAP_SMALL_MAX) {
        void *p = op_malloc(total);
        if (p)
            memset(p, 0, total);
        return p;
    }
    int zero;
    void *p = large_alloc(total, 1, &zero);
    if (p && !zero)
        memset(p, 0, total);
    return p;
}

/* Resize a large object in place: shrink by freeing its tail pages, grow
 * into a free neighbour or past the top. Returns 1 if done. */
static int large_resize(void *p, const struct lookup *L, size_t size)
{
    uint32_t want = (uint32_t)((size + HEAP_PAGE - 1) >> HEAP_PAGE_SHIFT);
    int done = 1;
    pthread_mutex_lock(&heap_proc.page_lock);
    if (want < L->npages) {
        HEAP_ANN_NOACCESS((char *)p + (size_t)want * HEAP_PAGE, (size_t)(L->npages - want) * HEAP_PAGE);
        pages_set_large(L->page, want);
        pages_free(L->page + want, L->npages - want);
    } else if (want > L->npages) {
        done = pages_grow_inplace(L->page, L->npages, want);
        if (done)
            HEAP_ANN_OPEN((char *)p + L->usable, (size_t)want * HEAP_PAGE - L->usable);
    }
    pthread_mutex_unlock(&heap_proc.page_lock);
    return done;
}

static void *op_realloc(void *p, size_t size, int *err)
{
    struct lookup L;
    if (!p)
        return op_malloc(size);
    if (lookup(p, &L, "crrealloc", 1)) {
        *err = EINVAL;
        return NULL;
    }
    if (size == 0) {
        op_free(p, "crrealloc");
        *err = 0;
        return NULL;
    }
    if (L.slab && size <= L.usable && (size > L.usable / 2 || L.usable <= 16))
        return p;
    if (!L.slab && size > HEAP_SMALL_MAX / 2 && size <= (size_t)heap_proc.root->max_pages * HEAP_PAGE &&
        large_resize(p, &L, size))
        return p;
    void *q = op_malloc(size);
    if (!q)
        return NULL;
    memcpy(q, p, CR_MIN(size, L.usable));
    op_free(p, "crrealloc");
    return q;
}

static int op_memalign(void **out, size_t align, size_t size)
{
    if (align <= HEAP_ALIGN) {
        *out = op_malloc(size);
    } else if (align <= HEAP_PAGE && CR_MAX(size, align) <= HEAP_SMALL_MAX) {
        /* power-of-two classes are aligned to min(size, page) */
        size_t need = CR_MAX(size, align);
        size_t pow = (size_t)1 << (64 - __builtin_clzl(need - 1));
        *out = op_malloc(pow);
    } else {
        int zero;
        size_t pages = align / HEAP_PAGE ? align / HEAP_PAGE : 1;
        if (pages > heap_proc.root->max_pages)
            return ENOMEM;
        *out = large_alloc(size ? size : 1, (uint32_t)pages, &zero);
    }
    return *out ? 0 : ENOMEM;
}

static size_t op_usable(void *p)
{
    struct lookup L;
    if (!p || lookup(p, &L, "cr_malloc_usable_size", 1))
        return 0;
    return L.usable;
}

/* ---- public API: readiness, checking mode, errno ------------------------- */

static void check_enter(void)
{
    pthread_mutex_lock(&heap_proc.check_lock);
    (void)heap_check_locked();
}

static void check_leave(void)
{
    (void)heap_check_locked();
    pthread_mutex_unlock(&heap_proc.check_lock);
}

#define CHECKED(stmt) do { if (cr_unlikely(heap_proc.check)) { check_enter(); stmt; \
        check_leave(); } else { stmt; } } while (0)

CR_EXPORT void *crmalloc(size_t size)
{
    void *p = NULL;
    if (heap_ready())
        CHECKED(p = op_malloc(size));
    if (cr_unlikely(!p))
        errno = ENOMEM;
    return p;
}

CR_EXPORT void *crcalloc(size_t nmemb, size_t size)
{
    void *p = NULL;
    if (heap_ready())
        CHECKED(p = op_calloc(nmemb, size));
    if (!p)
        errno = ENOMEM;
    return p;
}

CR_EXPORT void *crrealloc(void *ptr, size_t size)
{
    void *p = NULL;
    int err = ENOMEM;
    if (heap_ready())
        CHECKED(p = op_realloc(ptr, size, &err));
    if (!p && err)
        errno = err;
    return p;
}

CR_EXPORT void crfree(void *ptr)
{
    if (!ptr)
        return;
    if (cr_unlikely(!heap_proc.root)) {
        cr_err("crfree(%p): the persistent heap is not initialised; ignored", ptr);
        return;
    }
    CHECKED(op_free(ptr, "crfree"));
}

CR_EXPORT int cr_posix_memalign(void **memptr, size_t alignment, size_t size)
{
    if (!memptr || !cr_is_pow2(alignment) || alignment % sizeof(void *))
        return EINVAL;
    int rc = ENOMEM;
    if (heap_ready())
        CHECKED(rc = op_memalign(memptr, alignment, size));
    return rc;
}

CR_EXPORT void *cr_aligned_alloc(size_t alignment, size_t size)
{
    void *p = NULL;
    if (!cr_is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    int rc = ENOMEM;
    if (heap_ready())
        CHECKED(rc = op_memalign(&p, CR_MAX(alignment, sizeof(void *)), size));
    if (rc)
        errno = rc;
    return rc ? NULL : p;
}

CR_EXPORT size_t cr_malloc_usable_size(void *ptr)
{
    size_t n = 0;
    if (ptr && heap_proc.root)
        CHECKED(n = op_usable(ptr));
    return n;
}

int cr_heap_check(void)
{
    if (!heap_proc.root)
        return -ENODEV;
    pthread_mutex_lock(&heap_proc.check_lock);
    int rc = heap_check_locked();
    pthread_mutex_unlock(&heap_proc.check_lock);
    return rc;
}
