/*
 * heap_internal.h - persistent layout and shared internals of the heap.
 *
 * Layout inside the region (all addresses absolute: the region always maps
 * at the same address):
 *
 *   cr_region_data_start()  struct heap_root (incl. the per-thread caches)
 *   map                     struct hpage[max_pages]: one entry per heap page
 *   pages_base (64 KiB al.) heap pages [0, top) in use, the rest untouched
 *
 * A page belongs to exactly one extent: a free extent, a large object, or a
 * slab of small objects. Free and large extents record their length in the
 * map entries of their first (head) and last (tail) page, which lets a freed
 * extent find and merge its neighbours in O(1); their interior entries are 0.
 * Every entry of a slab holds its page offset from the slab's first page,
 * where the slab header lives. Free extents sit in size-segregated bins
 * (doubly linked through their head entries, so free pages themselves are
 * never written and can be released).
 *
 * Small objects (<= HEAP_SMALL_MAX) come from slabs of one size class each.
 * A slab belongs to one cache; the thread that owns the cache allocates and
 * frees there without atomics. Other threads free into a slab by pushing
 * the object onto the owning cache's remote queue (a lock-free stack) after
 * atomically setting the object's bit in the slab's remote bitmap, which is
 * what makes a double free from any thread detectable. The owner drains the
 * queue when it runs out of free objects.
 */
#ifndef CR_HEAP_INTERNAL_H
#define CR_HEAP_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "common/errors.h"
#include "heap/heap.h"
#include "region/region.h"

#define HEAP_MAGIC      0x3130504145485243ULL   /* "CRHEAP01" little-endian  */
#define HEAP_VERSION    1u
#define SLAB_MAGIC      0x534c4142u             /* "SLAB" */
#define HEAP_PAGE       CR_PAGE_SIZE
#define HEAP_PAGE_SHIFT 12
#define HEAP_NCLASS     36
#define HEAP_SMALL_MAX  16384u
#define HEAP_NCACHE     128                     /* cache 0 is shared, locked */
#define HEAP_NBINS      160
#define HEAP_NIL        UINT32_MAX
#define HEAP_MAX_PAGES  ((1u << 29) - 1)
#define HEAP_ALIGN      16u

/* Page map entry kinds (top 3 bits of hpage.info; low 29 bits: length in
 * pages for heads/tails, offset from the slab's first page for slabs). */
enum { PK_NONE = 0, PK_FREE_HEAD, PK_FREE_TAIL, PK_LARGE_HEAD, PK_LARGE_TAIL, PK_SLAB };
#define PK_SHIFT 29
#define PK_MASK  ((1u << PK_SHIFT) - 1)

/* Free-extent flags (hpage.flags of a free head): DIRTY = may hold old
 * contents; otherwise released, and known to read as zeros only if
 * flags >> 1 equals this process incarnation's zero_gen. */
#define PF_DIRTY 1u

struct hpage {
    uint32_t info;
    uint32_t next, prev;     /* free head: bin list links (page indices)     */
    uint32_t flags;          /* free head: PF_DIRTY | zero_gen << 1          */
};

struct slab {
    uint32_t magic;
    uint16_t cls;
    uint16_t inlist;         /* SLAB_ON_* : which list of its cache          */
    uint32_t owner;          /* cache id                                     */
    uint32_t nobj, used, bump, npages;
    void    *free;           /* owner-local free list through the objects    */
    struct slab *next, *prev;
    uint64_t bits[];         /* alloc bitmap, then remote-free bitmap        */
};

enum { SLAB_ON_NONE = 0, SLAB_ON_PARTIAL, SLAB_ON_EMPTY };
/* Bytes of empty slabs a cache keeps (all classes) before giving them back. */
#define HEAP_EMPTY_KEEP_PAGES 256u
/* Remote frees batched before one push onto the owner's queue. */
#define HEAP_PEND_MAX 32u

struct heap_cache {
    uint32_t id;
    uint32_t state;          /* CACHE_*; atomic                              */
    struct slab *cur[HEAP_NCLASS];
    struct slab *partial[HEAP_NCLASS];   /* some objects free, some live    */
    struct slab *empty[HEAP_NCLASS];     /* all objects free, kept for reuse */
    uint16_t nempty[HEAP_NCLASS];
    uint32_t empty_pages;                /* pages of all empty slabs kept   */
    /* Objects this cache's thread freed into other caches' slabs, chained
     * and handed to their owner (pend_owner) in one push. */
    void    *pend_head, *pend_tail;
    uint32_t pend_owner, pend_n;
    /* Written by other threads: on its own cache line, away from the
     * owner's hot fields. */
    void    *remote __attribute__((aligned(64)));  /* lock-free stack     */
} __attribute__((aligned(64)));
enum { CACHE_NEVER = 0, CACHE_FREE, CACHE_BUSY };

struct heap_root {
    uint64_t magic;
    uint32_t version, root_len;
    uint64_t layout;         /* hash of structure sizes and class table      */
    uintptr_t self, pages_base;
    struct hpage *map;
    uint32_t max_pages, top;
    uint64_t dirty_pages;    /* pages in free extents flagged PF_DIRTY       */
    uint32_t gen_counter;    /* last zero_gen handed out (never reused)      */
    uint32_t pad;
    uint32_t bins[HEAP_NBINS];
    uint64_t binmap[(HEAP_NBINS + 63) / 64];
    struct heap_cache caches[HEAP_NCACHE];
};

/* ---- size classes (classes.c): a process-local table computed from
 * constants, identical in every process of the same build. */
struct heap_class {
    uint32_t size, nobj, npages, first, words;
    uint64_t recip;          /* ceil(2^40 / size): offset -> index           */
};
extern struct heap_class heap_classes[HEAP_NCLASS];
void heap_classes_init(void);
uint64_t heap_classes_hash(void);

static inline unsigned heap_class_of(size_t size)
{
    if (size <= 128)
        return size ? (unsigned)((size + 15) >> 4) - 1 : 0;
    size_t s = size - 1;
    unsigned b = 63 - (unsigned)__builtin_clzl(s);
    return 8 + (b - 7) * 4 + (unsigned)((s >> (b - 2)) & 3);
}

/* ---- process-local attachment (heap.c) ---------------------------------- */
struct heap_proc {
    struct heap_root *root;  /* NULL: not attached                          */
    /* [pages_lo, pages_hi): the pages range of the attached root, copied
     * out of the region. cr_heap_owns() runs on every interposed malloc of
     * every thread and must not read region memory: during a lazy restore a
     * read there maps the zero page before the page is filled (and the
     * uffd fault thread itself calls malloc). */
    uintptr_t pages_lo, pages_hi;
    uint32_t zero_gen;       /* this incarnation's "released = zero" tag     */
    uint32_t hwm;            /* highest top this process has seen            */
    uintptr_t map_fence;     /* where the fenced tail of the page map starts
                                (0: not fenced yet; heap_map_fence)          */
    int      check;          /* CRMPI_HEAP_CHECK                             */
    uint64_t last_purge_ns;  /* CLOCK_MONOTONIC_COARSE of the last purge     */
    unsigned gen;            /* bumped to invalidate every thread's cache    */
    pthread_mutex_t page_lock, shared_lock, check_lock;
};
extern struct heap_proc heap_proc;
/* Attach to r (NULL: detach), keeping pages_lo/pages_hi in step. */
void heap_proc_set_root(struct heap_root *r);
extern pthread_mutex_t heap_init_lock;
/* Attach on first use (attach.c): 0, or the error already logged. */
int heap_lazy_init(void);
/* Keep the page map's entries for pages [0, end) outside the fenced,
 * unused tail of the map (attach.c): 0 or the region's error. */
int heap_map_fence(uint32_t end);

static inline struct hpage *heap_map(void) { return heap_proc.root->map; }
static inline uintptr_t heap_page_addr(uint32_t i)
{
    return heap_proc.root->pages_base + ((uintptr_t)i << HEAP_PAGE_SHIFT);
}
static inline unsigned pk_kind(uint32_t info) { return info >> PK_SHIFT; }
static inline uint32_t pk_n(uint32_t info) { return info & PK_MASK; }
static inline uint32_t pk_make(unsigned kind, uint32_t n) { return (uint32_t)kind << PK_SHIFT | n; }
static inline uint32_t map_info(uint32_t i)
{
    return __atomic_load_n(&heap_map()[i].info, __ATOMIC_ACQUIRE);
}

/* Page index of p, or HEAP_NIL when p is outside [pages_base, top). */
static inline uint32_t heap_page_of(const void *p)
{
    const struct heap_root *r = heap_proc.root;
    uintptr_t off = (uintptr_t)p - r->pages_base;
    uint32_t top = __atomic_load_n(&r->top, __ATOMIC_ACQUIRE);
    return (uintptr_t)p >= r->pages_base && (off >> HEAP_PAGE_SHIFT) < top
           ? (uint32_t)(off >> HEAP_PAGE_SHIFT) : HEAP_NIL;
}

/* ---- page heap (pages.c); callers hold heap_proc.page_lock -------------- */
unsigned heap_bin_of(uint32_t n);
/* Allocate n pages whose first page index is a multiple of align (pages,
 * power of two); *zero tells whether they are known to read as zeros.
 * Returns the first page index or HEAP_NIL (region exhausted). */
uint32_t pages_alloc(uint32_t n, uint32_t align, int *zero);
/* Free the extent [start, start+n): coalesce, bin, maybe release. */
void pages_free(uint32_t start, uint32_t n);
/* Try to grow the large extent at start from n to want pages in place. */
int pages_grow_inplace(uint32_t start, uint32_t n, uint32_t want);
void pages_set_large(uint32_t start, uint32_t n);
void pages_set_slab(uint32_t start, uint32_t n);
/* Release the contents of every dirty free extent. */
int pages_purge(void);

/* ---- small objects (cache.c) -------------------------------------------- */
void *small_alloc(unsigned cls);
/* Free a small object; returns 0 or CR_E* after logging misuse. */
int small_free(struct slab *s, void *p, const char *who);
/* 0 if p is a live object of s, else CR_ESTATE after logging why not. */
int small_live(struct slab *s, void *p, const char *who);
/* The slab holding p (page entry kind PK_SLAB), or NULL. */
struct slab *slab_of_page(uint32_t page, uint32_t info);
/* Index of p in s, or -1 if p is not an object start. */
long slab_index(const struct slab *s, const void *p);
void caches_reset_after_restore(void);
int caches_trim(void);
/* Checker and stats (check.c); heap.c serialises them. */
int heap_check_locked(void);

static inline uint64_t *slab_alloc_bits(struct slab *s) { return s->bits; }
static inline uint64_t *slab_remote_bits(struct slab *s)
{
    return s->bits + heap_classes[s->cls].words;
}

#endif
