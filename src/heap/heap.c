/*
 * heap.c - the public malloc family on the persistent region, and misuse
 * detection. (Attaching the heap to the region is attach.c.)
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

static inline int heap_ready(void)
{
    return cr_likely(heap_proc.root != NULL) || heap_lazy_init() == 0;
}

void heap_proc_set_root(struct heap_root *r)
{
    /* Empty range first, so a concurrent cr_heap_owns never sees the old
     * bounds with the new root or a half-updated pair as a wider range. */
    __atomic_store_n(&heap_proc.pages_hi, 0, __ATOMIC_RELEASE);
    heap_proc.root = r;
    if (!r)
        return;
    __atomic_store_n(&heap_proc.pages_lo, r->pages_base, __ATOMIC_RELEASE);
    __atomic_store_n(&heap_proc.pages_hi,
                     r->pages_base + ((uintptr_t)r->max_pages << HEAP_PAGE_SHIFT),
                     __ATOMIC_RELEASE);
}

int cr_heap_owns(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return a < __atomic_load_n(&heap_proc.pages_hi, __ATOMIC_ACQUIRE) &&
           a >= __atomic_load_n(&heap_proc.pages_lo, __ATOMIC_ACQUIRE);
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
