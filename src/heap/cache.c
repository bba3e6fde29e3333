/*
 * cache.c - small objects: slabs and the per-thread caches that own them.
 *
 * Each thread adopts one cache (struct heap_cache, in the heap root, hence
 * in the region) the first time it allocates or frees, and keeps a pointer
 * to it in a __thread variable tagged with heap_proc.gen. A restore bumps the
 * generation, so every thread re-derives its cache instead of trusting a
 * pointer from before the restore. Caches are never destroyed: when a thread
 * exits (pthread key destructor) or a restore brings back the caches of
 * threads of another process, the cache becomes FREE and the next thread
 * that needs one adopts it with its slabs and pending remote frees, so
 * nothing leaks; cr_heap_trim empties FREE caches' free slabs meanwhile.
 * When all HEAP_NCACHE - 1 private caches are taken, further threads share
 * cache 0 under a mutex.
 *
 * A thread frees into another cache's slab by setting the object's bit in
 * the slab's remote bitmap (the atomic that catches a double free from any
 * thread) and chaining it in its own cache; the chain goes to the owner's
 * queue in one push per HEAP_PEND_MAX objects, when the owner changes, and
 * whenever the thread allocates slowly, adopts a cache or exits.
 *
 * Allocation pops the current slab's free list (or its never-used tail,
 * which is left untouched so fresh pages stay unwritten); free by the owner
 * pushes there. Both keep the slab's allocation bitmap exact, which is what
 * tells a double free or a never-allocated pointer from a live object.
 */
#include "heap/heap_internal.h"
#include "heap/annotate.h"
#include "common/log.h"

/* initial-exec: a plain %fs-relative load, not a __tls_get_addr call, in
 * the shared library too (16 bytes of static TLS). */
#define HEAP_TLS __thread __attribute__((tls_model("initial-exec")))
static HEAP_TLS struct heap_cache *tls_cache;
static HEAP_TLS unsigned tls_gen;
static pthread_key_t cache_key;
static pthread_once_t cache_key_once = PTHREAD_ONCE_INIT;

/* Hand the chain of remote frees batched in c to their owner's queue. */
static void pend_flush(struct heap_cache *c)
{
    if (!c->pend_n)
        return;
    struct heap_cache *oc = &heap_proc.root->caches[c->pend_owner];
    void *head = __atomic_load_n(&oc->remote, __ATOMIC_RELAXED);
    do
        link_write(c->pend_tail, head);
    while (!__atomic_compare_exchange_n(&oc->remote, &head, c->pend_head, 1,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    c->pend_head = c->pend_tail = NULL;
    c->pend_n = 0;
}

static void cache_release(void *arg)
{
    struct heap_cache *c = arg;
    /* A restore since adoption has already made every cache FREE (and
     * another thread may own this one now). */
    if (c && heap_proc.root && tls_gen == heap_proc.gen && c->id != 0) {
        int check = heap_proc.check;    /* the checker reads the batch */
        if (check)
            pthread_mutex_lock(&heap_proc.check_lock);
        pend_flush(c);
        __atomic_store_n(&c->state, CACHE_FREE, __ATOMIC_RELEASE);
        if (check)
            pthread_mutex_unlock(&heap_proc.check_lock);
    }
    tls_cache = NULL;
}

static void cache_key_make(void)
{
    if (pthread_key_create(&cache_key, cache_release))
        cr_err("heap: pthread_key_create failed: caches of exiting threads stay owned");
}

static struct heap_cache *cache_adopt(void)
{
    struct heap_root *r = heap_proc.root;
    pthread_once(&cache_key_once, cache_key_make);
    struct heap_cache *c = &r->caches[0];
    for (unsigned i = 1; i < HEAP_NCACHE; i++) {
        uint32_t st = __atomic_load_n(&r->caches[i].state, __ATOMIC_RELAXED);
        if (st == CACHE_BUSY || !__atomic_compare_exchange_n(&r->caches[i].state, &st,
                CACHE_BUSY, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            continue;
        c = &r->caches[i];
        if (st == CACHE_NEVER) {
            memset(c->cur, 0, sizeof c->cur);
            memset(c->partial, 0, sizeof c->partial);
            memset(c->empty, 0, sizeof c->empty);
            memset(c->nempty, 0, sizeof c->nempty);
            c->empty_pages = 0;
            c->pend_head = c->pend_tail = NULL;
            c->pend_n = c->pend_owner = 0;
            c->remote = NULL;
            c->id = i;
        }
        pend_flush(c);          /* left by a thread that is gone */
        pthread_setspecific(cache_key, c);
        break;
    }
    tls_cache = c;
    tls_gen = heap_proc.gen;
    return c;
}

static inline struct heap_cache *cache_get(void)
{
    struct heap_cache *c = tls_cache;
    if (cr_likely(c && tls_gen == heap_proc.gen))
        return c;
    return cache_adopt();
}

struct slab *slab_of_page(uint32_t page, uint32_t info)
{
    struct slab *s = (struct slab *)heap_page_addr(page - pk_n(info));
    return s->magic == SLAB_MAGIC && s->cls < HEAP_NCLASS ? s : NULL;
}

long slab_index(const struct slab *s, const void *p)
{
    const struct heap_class *k = &heap_classes[s->cls];
    uintptr_t first = (uintptr_t)s + k->first;
    if ((uintptr_t)p < first)
        return -1;
    uint64_t off = (uintptr_t)p - first;
    uint64_t idx = (off * k->recip) >> 40;
    return idx < s->nobj && idx * k->size == off ? (long)idx : -1;
}

static inline void *slab_obj(const struct slab *s, uint32_t idx)
{
    const struct heap_class *k = &heap_classes[s->cls];
    return (char *)s + k->first + (size_t)idx * k->size;
}

static void partial_push(struct heap_cache *c, struct slab *s)
{
    s->prev = NULL;
    s->next = c->partial[s->cls];
    if (s->next)
        s->next->prev = s;
    c->partial[s->cls] = s;
    s->inlist = SLAB_ON_PARTIAL;
}

static void partial_unlink(struct heap_cache *c, struct slab *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->partial[s->cls] = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->inlist = SLAB_ON_NONE;
}

static void slab_release(struct slab *s)
{
    uint32_t page = (uint32_t)(((uintptr_t)s - heap_proc.root->pages_base) >> HEAP_PAGE_SHIFT);
    uint32_t n = s->npages;
    s->magic = 0;                       /* stale pointers into it are refused */
    HEAP_ANN_NOACCESS(s, (size_t)n * HEAP_PAGE);
    pthread_mutex_lock(&heap_proc.page_lock);
    pages_free(page, n);
    pthread_mutex_unlock(&heap_proc.page_lock);
}

/* Keep an empty slab for reuse by its class (no page lock to get it back),
 * up to HEAP_EMPTY_KEEP_PAGES per cache; beyond, give it back. */
static void empty_put(struct heap_cache *c, struct slab *s)
{
    unsigned k = s->cls;
    if (c->empty_pages + s->npages > HEAP_EMPTY_KEEP_PAGES) {
        slab_release(s);
        return;
    }
    c->empty_pages += s->npages;
    s->next = c->empty[k];
    s->prev = NULL;
    s->inlist = SLAB_ON_EMPTY;
    c->empty[k] = s;
    c->nempty[k]++;
}

static struct slab *empty_take(struct heap_cache *c, unsigned k)
{
    struct slab *s = c->empty[k];
    if (s) {
        c->empty[k] = s->next;
        c->nempty[k]--;
        c->empty_pages -= s->npages;
        s->next = NULL;
        s->inlist = SLAB_ON_NONE;
    }
    return s;
}

/* The owner's half of freeing object idx (validated, alloc bit set). */
static void local_put(struct heap_cache *c, struct slab *s, uint32_t idx, void *p)
{
    uint64_t *w = &slab_alloc_bits(s)[idx / 64];
    __atomic_store_n(w, *w & ~(1ULL << (idx % 64)), __ATOMIC_RELAXED);
    link_write(p, s->free);
    s->free = p;
    s->used--;
    if (s == c->cur[s->cls])
        return;
    if (s->used == 0) {
        if (s->inlist)
            partial_unlink(c, s);
        empty_put(c, s);
    } else if (!s->inlist) {
        partial_push(c, s);
    }
}

static void drain_remote(struct heap_cache *c)
{
    void *p = __atomic_exchange_n(&c->remote, NULL, __ATOMIC_ACQUIRE);
    while (p) {
        void *next = link_read(p);
        uint32_t page = heap_page_of(p);
        struct slab *s = slab_of_page(page, map_info(page));
        long idx = slab_index(s, p);
        __atomic_fetch_and(&slab_remote_bits(s)[idx / 64], ~(1ULL << (idx % 64)), __ATOMIC_RELAXED);
        local_put(c, s, (uint32_t)idx, p);
        p = next;
    }
}

static struct slab *slab_new(struct heap_cache *c, unsigned cls)
{
    const struct heap_class *k = &heap_classes[cls];
    int zero;
    pthread_mutex_lock(&heap_proc.page_lock);
    uint32_t page = pages_alloc(k->npages, 1, &zero);
    if (page == HEAP_NIL) {
        pthread_mutex_unlock(&heap_proc.page_lock);
        return NULL;
    }
    struct slab *s = (struct slab *)heap_page_addr(page);
    HEAP_ANN_OPEN(s, k->first);
    if (!zero)
        memset(s, 0, k->first);
    s->cls = (uint16_t)cls;
    s->owner = c->id;
    s->nobj = k->nobj;
    s->npages = k->npages;
    s->magic = SLAB_MAGIC;
    HEAP_ANN_NOACCESS((char *)s + k->first, (size_t)k->npages * HEAP_PAGE - k->first);
    pages_set_slab(page, k->npages);
    pthread_mutex_unlock(&heap_proc.page_lock);
    return s;
}

static inline void *slab_pop(struct slab *s)
{
    void *p = s->free;
    if (p) {
        HEAP_ANN_OPEN(p, sizeof(void *));
        s->free = *(void **)p;
        return p;
    }
    if (s->bump < s->nobj)
        return slab_obj(s, s->bump++);
    return NULL;
}

/* Index of an object known to be in s (no validation: allocation path). */
static inline uint32_t slab_index_fast(const struct slab *s, const void *p)
{
    const struct heap_class *k = &heap_classes[s->cls];
    return (uint32_t)((((uintptr_t)p - (uintptr_t)s - k->first) * k->recip) >> 40);
}

static void *refill(struct heap_cache *c, unsigned cls, struct slab **out)
{
    pend_flush(c);
    if (__atomic_load_n(&c->remote, __ATOMIC_RELAXED))
        drain_remote(c);
    struct slab *s = c->cur[cls];
    void *p = s ? slab_pop(s) : NULL;
    if (!p && (s = c->partial[cls]) != NULL) {
        partial_unlink(c, s);
        c->cur[cls] = s;
        p = slab_pop(s);
    }
    if (!p && ((s = empty_take(c, cls)) != NULL || (s = slab_new(c, cls)) != NULL)) {
        c->cur[cls] = s;
        p = slab_pop(s);
    }
    *out = s;
    return p;
}

void *small_alloc(unsigned cls)
{
    struct heap_cache *c = cache_get();
    if (cr_unlikely(c->id == 0))
        pthread_mutex_lock(&heap_proc.shared_lock);
    struct slab *s = c->cur[cls];
    void *p = s ? slab_pop(s) : NULL;
    if (cr_unlikely(!p))
        p = refill(c, cls, &s);
    if (cr_likely(p != NULL)) {
        uint32_t idx = slab_index_fast(s, p);
        uint64_t *w = &slab_alloc_bits(s)[idx / 64];
        __atomic_store_n(w, *w | 1ULL << (idx % 64), __ATOMIC_RELAXED);
        s->used++;
    }
    if (cr_unlikely(c->id == 0))
        pthread_mutex_unlock(&heap_proc.shared_lock);
    return p;
}

static int not_live(const void *p, const char *who)
{
    cr_err("%s(%p): double free, or a pointer never returned by the persistent heap "
           "(object is not allocated); ignored", who, p);
    return CR_ESTATE;
}

static int interior(struct slab *s, void *p, const char *who)
{
    cr_err("%s(%p): not the start of an allocation (interior pointer into a "
           "%u-byte object slab at %p); ignored", who, p, heap_classes[s->cls].size, (void *)s);
    return CR_ESTATE;
}

int small_live(struct slab *s, void *p, const char *who)
{
    long idx = slab_index(s, p);
    if (idx < 0)
        return interior(s, p, who);
    uint64_t bit = 1ULL << (idx % 64);
    if (!(__atomic_load_n(&slab_alloc_bits(s)[idx / 64], __ATOMIC_RELAXED) & bit) ||
        (__atomic_load_n(&slab_remote_bits(s)[idx / 64], __ATOMIC_RELAXED) & bit))
        return not_live(p, who);
    return 0;
}

int small_free(struct slab *s, void *p, const char *who)
{
    long idx = slab_index(s, p);
    if (idx < 0)
        return interior(s, p, who);
    uint64_t bit = 1ULL << (idx % 64);
    uint64_t *aw = &slab_alloc_bits(s)[idx / 64], *rw = &slab_remote_bits(s)[idx / 64];
    struct heap_cache *c = cache_get();
    if (s->owner == c->id) {
        if (cr_unlikely(c->id == 0))
            pthread_mutex_lock(&heap_proc.shared_lock);
        int rc = 0;
        if (!(*aw & bit) || (__atomic_load_n(rw, __ATOMIC_RELAXED) & bit)) {
            rc = not_live(p, who);
        } else {
            HEAP_ANN_FREE(p, heap_classes[s->cls].size);
            local_put(c, s, (uint32_t)idx, p);
        }
        if (cr_unlikely(c->id == 0))
            pthread_mutex_unlock(&heap_proc.shared_lock);
        return rc;
    }
    if (!(__atomic_load_n(aw, __ATOMIC_RELAXED) & bit) ||
        (__atomic_fetch_or(rw, bit, __ATOMIC_RELAXED) & bit))
        return not_live(p, who);
    HEAP_ANN_FREE(p, heap_classes[s->cls].size);
    /* Batch: one contended push per HEAP_PEND_MAX frees to the same owner.
     * The shared cache 0 batches nothing (its users would hold the lock). */
    if (cr_unlikely(c->id == 0))
        pthread_mutex_lock(&heap_proc.shared_lock);
    if (c->pend_n && c->pend_owner != s->owner)
        pend_flush(c);
    link_write(p, c->pend_head);
    if (!c->pend_n)
        c->pend_tail = p;
    c->pend_head = p;
    c->pend_owner = s->owner;
    if (++c->pend_n >= HEAP_PEND_MAX || c->id == 0)
        pend_flush(c);
    if (cr_unlikely(c->id == 0))
        pthread_mutex_unlock(&heap_proc.shared_lock);
    return 0;
}

void caches_reset_after_restore(void)
{
    struct heap_root *r = heap_proc.root;
    for (unsigned i = 1; i < HEAP_NCACHE; i++)
        if (r->caches[i].state != CACHE_NEVER)
            r->caches[i].state = CACHE_FREE;
    tls_cache = NULL;
}

/* Drain one cache we own and give its empty slabs back to the page heap. */
static void cache_shrink(struct heap_cache *c)
{
    pend_flush(c);
    drain_remote(c);
    for (unsigned k = 0; k < HEAP_NCLASS; k++) {
        struct slab *s = c->cur[k];
        if (s && s->used == 0) {
            c->cur[k] = NULL;
            slab_release(s);
        }
        while ((s = empty_take(c, k)) != NULL)
            slab_release(s);
        for (s = c->partial[k]; s;) {
            struct slab *next = s->next;
            if (s->used == 0) {
                partial_unlink(c, s);
                slab_release(s);
            }
            s = next;
        }
    }
}

int caches_trim(void)
{
    struct heap_root *r = heap_proc.root;
    struct heap_cache *mine = cache_get();
    for (unsigned i = 1; i < HEAP_NCACHE; i++) {
        struct heap_cache *c = &r->caches[i];
        uint32_t st = CACHE_FREE;
        if (c == mine)
            cache_shrink(c);
        else if (__atomic_compare_exchange_n(&c->state, &st, CACHE_BUSY, 0,
                                             __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            cache_shrink(c);
            __atomic_store_n(&c->state, CACHE_FREE, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_lock(&heap_proc.shared_lock);
    cache_shrink(&r->caches[0]);
    pthread_mutex_unlock(&heap_proc.shared_lock);
    return 0;
}
