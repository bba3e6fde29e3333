/*
 * check.c - the heap's invariant checker and its statistics.
 *
 * The checker walks the page map from page 0 to the top, extent by extent,
 * and verifies: every page belongs to exactly one well-formed extent (head
 * and tail agree, interiors are empty, slab pages point at their header);
 * no two free extents are adjacent (coalescing is complete); the dirty-page
 * count is exact; every slab's header matches its class, its allocation
 * bitmap counts its live objects, its remote bitmap is a subset of it, and
 * its free list is acyclic, in range and disjoint from live objects; every
 * free extent is in the bin its length selects and every binned extent is
 * free; every cache's current slab, partial and empty lists belong to it
 * (and hold what their names say); every object queued or batched for a
 * remote free is live and flagged in its slab.
 * The first violation is logged with the page or address involved.
 */
#include "heap/heap_internal.h"
#include "heap/annotate.h"
#include "common/log.h"

#define FAIL(...) do { cr_err("heap check: " __VA_ARGS__); return CR_ECORRUPT; } while (0)

struct walk {
    uint64_t free_ext, free_pages, dirty_pages, remote_bits, live_bytes, live_objects;
    uint64_t small_pages, large_pages;
};

static int check_free_list(struct slab *s)
{
    const struct heap_class *k = &heap_classes[s->cls];
    uint64_t seen[64] = { 0 };
    uint32_t count = 0;
    for (void *p = s->free; p; p = link_read(p)) {
        long idx = slab_index(s, p);
        if (idx < 0 || (uint32_t)idx >= s->bump)
            FAIL("slab %p (%u B): free-list entry %p is not an object below the bump index %u",
                 (void *)s, k->size, p, s->bump);
        if (slab_alloc_bits(s)[idx / 64] & (1ULL << (idx % 64)))
            FAIL("slab %p: free-list entry %p is marked allocated", (void *)s, p);
        if (seen[idx / 64] & (1ULL << (idx % 64)))
            FAIL("slab %p: free list revisits %p (cycle or duplicate)", (void *)s, p);
        seen[idx / 64] |= 1ULL << (idx % 64);
        count++;
    }
    if (count + s->used != s->bump)
        FAIL("slab %p: %u free + %u used != %u objects handed out", (void *)s, count, s->used, s->bump);
    return 0;
}

static int check_slab(uint32_t page, struct walk *w)
{
    const struct heap_root *r = heap_proc.root;
    struct slab *s = (struct slab *)heap_page_addr(page);
    if (s->magic != SLAB_MAGIC || s->cls >= HEAP_NCLASS)
        FAIL("page %u: slab header %p has a bad magic or class", page, (void *)s);
    const struct heap_class *k = &heap_classes[s->cls];
    if (s->npages != k->npages || s->nobj != k->nobj || page + s->npages > r->top)
        FAIL("slab %p: shape (%u pages, %u objects) does not match class %u", (void *)s,
             s->npages, s->nobj, k->size);
    for (uint32_t j = 0; j < s->npages; j++)
        if (r->map[page + j].info != pk_make(PK_SLAB, j))
            FAIL("page %u: entry %#x inside slab %p", page + j, r->map[page + j].info, (void *)s);
    if (s->used > s->nobj || s->bump > s->nobj || s->owner >= HEAP_NCACHE ||
        (s->owner && __atomic_load_n(&r->caches[s->owner].state, __ATOMIC_RELAXED) == CACHE_NEVER))
        FAIL("slab %p: used %u bump %u owner %u out of range", (void *)s, s->used, s->bump, s->owner);
    uint32_t pop = 0;
    for (uint32_t i = 0; i < k->words; i++) {
        uint64_t a = slab_alloc_bits(s)[i], rb = slab_remote_bits(s)[i];
        uint64_t beyond = s->bump >= (i + 1) * 64 ? 0 : s->bump <= i * 64 ? ~0ULL
                        : ~0ULL << (s->bump - i * 64);
        if ((a & beyond) || (rb & ~a))
            FAIL("slab %p: bitmap word %u (alloc %#llx remote %#llx) marks objects never "
                 "handed out or remote-freed but not live", (void *)s, i,
                 (unsigned long long)a, (unsigned long long)rb);
        pop += (uint32_t)__builtin_popcountll(a);
        w->remote_bits += (uint64_t)__builtin_popcountll(rb);
    }
    if (pop != s->used)
        FAIL("slab %p: %u objects marked live, header says %u", (void *)s, pop, s->used);
    w->small_pages += s->npages;
    w->live_bytes += (uint64_t)s->used * k->size;
    w->live_objects += s->used;
    return check_free_list(s);
}

static int check_extent(uint32_t i, unsigned kind, uint32_t n)
{
    const struct heap_root *r = heap_proc.root;
    unsigned tail = kind == PK_FREE_HEAD ? PK_FREE_TAIL : PK_LARGE_TAIL;
    if (n == 0 || (uint64_t)i + n > r->top)
        FAIL("page %u: extent of %u pages crosses the top (%u)", i, n, r->top);
    if (n > 1 && r->map[i + n - 1].info != pk_make(tail, n))
        FAIL("page %u: extent of %u pages has tail entry %#x", i, n, r->map[i + n - 1].info);
    for (uint32_t j = i + 1; j + 1 < i + n; j++)
        if (r->map[j].info)
            FAIL("page %u: entry %#x inside the extent starting at page %u", j, r->map[j].info, i);
    return 0;
}

static int walk_pages(struct walk *w)
{
    const struct heap_root *r = heap_proc.root;
    int prev_free = 0, rc;
    for (uint32_t i = 0; i < r->top;) {
        uint32_t info = r->map[i].info, n = pk_n(info);
        switch (pk_kind(info)) {
        case PK_FREE_HEAD:
            if (prev_free)
                FAIL("page %u: free extent follows another free extent (not coalesced)", i);
            if ((rc = check_extent(i, PK_FREE_HEAD, n)))
                return rc;
            w->free_ext++;
            w->free_pages += n;
            if (r->map[i].flags & PF_DIRTY)
                w->dirty_pages += n;
            prev_free = 1;
            break;
        case PK_LARGE_HEAD:
            if ((rc = check_extent(i, PK_LARGE_HEAD, n)))
                return rc;
            w->large_pages += n;
            w->live_bytes += (uint64_t)n * HEAP_PAGE;
            w->live_objects++;
            prev_free = 0;
            break;
        case PK_SLAB:
            if (n != 0)
                FAIL("page %u: slab entry %#x without its header", i, info);
            if ((rc = check_slab(i, w)))
                return rc;
            n = ((struct slab *)heap_page_addr(i))->npages;
            prev_free = 0;
            break;
        default:
            FAIL("page %u: entry %#x where an extent should start", i, info);
        }
        i += n;
    }
    if (w->dirty_pages != r->dirty_pages)
        FAIL("%llu dirty free pages counted, root says %llu", (unsigned long long)w->dirty_pages,
             (unsigned long long)r->dirty_pages);
    return 0;
}

static int check_bins(const struct walk *w)
{
    const struct heap_root *r = heap_proc.root;
    uint64_t count = 0;
    for (unsigned b = 0; b < HEAP_NBINS; b++) {
        int bit = !!(r->binmap[b / 64] & (1ULL << (b % 64)));
        if (bit != (r->bins[b] != HEAP_NIL))
            FAIL("bin %u: bitmap bit %d disagrees with its list", b, bit);
        uint32_t prev = HEAP_NIL;
        for (uint32_t s = r->bins[b]; s != HEAP_NIL; prev = s, s = r->map[s].next) {
            if (s >= r->top || pk_kind(r->map[s].info) != PK_FREE_HEAD ||
                heap_bin_of(pk_n(r->map[s].info)) != b || r->map[s].prev != prev)
                FAIL("bin %u: entry page %u is not a free extent of this bin or is mislinked", b, s);
            if (++count > w->free_ext)
                FAIL("bins hold more entries than the %llu free extents (cycle?)",
                     (unsigned long long)w->free_ext);
        }
    }
    if (count != w->free_ext)
        FAIL("bins hold %llu extents, the page map has %llu", (unsigned long long)count,
             (unsigned long long)w->free_ext);
    return 0;
}

/* s must be the header of a slab of class k owned by cache id. */
static int check_owned(const struct slab *s, unsigned id, unsigned k)
{
    uint32_t page = heap_page_of(s);
    if (page == HEAP_NIL || (uintptr_t)s != heap_page_addr(page) ||
        heap_map()[page].info != pk_make(PK_SLAB, 0) || s->cls != k || s->owner != id)
        FAIL("cache %u class %u: %p is not a slab of that class owned by the cache", id, k, (void *)s);
    return 0;
}

/* Every object of a chain of remote frees is live, flagged as remote-freed
 * and in a slab of cache owner. */
static int check_chain(void *head, unsigned owner, const char *what, uint64_t *queued)
{
    if (owner >= HEAP_NCACHE)
        FAIL("%s for cache %u: no such cache", what, owner);
    for (void *p = head; p; p = link_read(p)) {
        uint32_t page = heap_page_of(p);
        struct slab *s = page == HEAP_NIL || pk_kind(heap_map()[page].info) != PK_SLAB ? NULL
                       : slab_of_page(page, heap_map()[page].info);
        long idx = s ? slab_index(s, p) : -1;
        if (idx < 0 || s->owner != owner ||
            !(slab_remote_bits(s)[idx / 64] & slab_alloc_bits(s)[idx / 64] & (1ULL << (idx % 64))))
            FAIL("%s for cache %u holds %p, not a live remote-freed object of that cache",
                 what, owner, p);
        if (++*queued > (uint64_t)heap_proc.root->top * (HEAP_PAGE / 16))
            FAIL("%s for cache %u does not end (cycle)", what, owner);
    }
    return 0;
}

static int check_cache(const struct heap_cache *c, unsigned id, uint64_t *queued)
{
    uint32_t empty_pages = 0;
    int rc;
    if (c->id != id)
        FAIL("cache %u: records id %u", id, c->id);
    for (unsigned k = 0; k < HEAP_NCLASS; k++) {
        if (c->cur[k] && (rc = check_owned(c->cur[k], id, k)))
            return rc;
        if (c->cur[k] && c->cur[k]->inlist)
            FAIL("cache %u: current slab %p is on a list", id, (void *)c->cur[k]);
        const struct slab *prev = NULL;
        for (const struct slab *s = c->partial[k]; s; prev = s, s = s->next) {
            if ((rc = check_owned(s, id, k)))
                return rc;
            if (s->inlist != SLAB_ON_PARTIAL || s->prev != prev || s == c->cur[k] ||
                s->used >= s->nobj || s->used == 0)
                FAIL("cache %u class %u: partial slab %p mislinked, full or empty", id, k, (void *)s);
        }
        unsigned nempty = 0;
        for (const struct slab *s = c->empty[k]; s; s = s->next) {
            if ((rc = check_owned(s, id, k)))
                return rc;
            if (s->inlist != SLAB_ON_EMPTY || s->used || s == c->cur[k] || ++nempty > c->nempty[k])
                FAIL("cache %u class %u: empty slab %p mislinked, live or miscounted", id, k, (void *)s);
        }
        if (nempty != c->nempty[k])
            FAIL("cache %u class %u: %u empty slabs listed, %u counted", id, k, nempty, c->nempty[k]);
        empty_pages += nempty * heap_classes[k].npages;
    }
    if (empty_pages != c->empty_pages)
        FAIL("cache %u: %u pages of empty slabs listed, %u counted", id, empty_pages, c->empty_pages);
    if ((rc = check_chain(c->remote, id, "remote-free queue", queued)))
        return rc;
    uint64_t before = *queued;
    if (c->pend_n && (rc = check_chain(c->pend_head, c->pend_owner, "batch of remote frees", queued)))
        return rc;
    if (*queued - before != c->pend_n || (c->pend_n && c->pend_owner >= HEAP_NCACHE))
        FAIL("cache %u: batch of remote frees holds %llu objects, counted %u", id,
             (unsigned long long)(*queued - before), c->pend_n);
    return 0;
}

int heap_check_locked(void)
{
    const struct heap_root *r = heap_proc.root;
    struct walk w = { 0 };
    uint64_t queued = 0;
    int rc;
    if (!r)
        return -ENODEV;
    if (r->magic != HEAP_MAGIC || r->top > r->max_pages)
        FAIL("root %p: bad magic or top %u beyond %u pages", (void *)r, r->top, r->max_pages);
    pthread_mutex_lock(&heap_proc.page_lock);
    rc = walk_pages(&w);
    if (!rc)
        rc = check_bins(&w);
    for (unsigned i = 0; !rc && i < HEAP_NCACHE; i++)
        if (i == 0 || __atomic_load_n(&r->caches[i].state, __ATOMIC_RELAXED) != CACHE_NEVER)
            rc = check_cache(&r->caches[i], i, &queued);
    if (!rc && queued != w.remote_bits) {
        cr_err("heap check: %llu objects queued for remote free, %llu flagged in slabs",
               (unsigned long long)queued, (unsigned long long)w.remote_bits);
        rc = CR_ECORRUPT;
    }
    pthread_mutex_unlock(&heap_proc.page_lock);
    return rc;
}

int cr_heap_stats(struct cr_heap_stats *st)
{
    const struct heap_root *r = heap_proc.root;
    memset(st, 0, sizeof *st);
    if (!r)
        return -ENODEV;
    pthread_mutex_lock(&heap_proc.page_lock);
    for (uint32_t i = 0; i < r->top;) {
        uint32_t info = r->map[i].info, n = pk_n(info);
        if (pk_kind(info) == PK_SLAB && n == 0) {
            const struct slab *s = (const struct slab *)heap_page_addr(i);
            const struct heap_class *k = &heap_classes[s->cls];
            uint32_t queued = 0;     /* freed by other threads, not yet drained */
            for (uint32_t w = 0; w < k->words; w++)
                queued += (uint32_t)__builtin_popcountll(s->bits[k->words + w]);
            n = s->npages;
            st->small_bytes += (size_t)n * HEAP_PAGE;
            st->live_bytes += (size_t)(s->used - queued) * k->size;
            st->live_objects += s->used - queued;
        } else if (pk_kind(info) == PK_LARGE_HEAD) {
            st->large_bytes += (size_t)n * HEAP_PAGE;
            st->live_bytes += (size_t)n * HEAP_PAGE;
            st->live_objects++;
        } else if (pk_kind(info) == PK_FREE_HEAD) {
            st->free_bytes += (size_t)n * HEAP_PAGE;
            if (r->map[i].flags & PF_DIRTY)
                st->free_dirty_bytes += (size_t)n * HEAP_PAGE;
        }
        i += n ? n : 1;
    }
    st->heap_bytes = (size_t)r->top * HEAP_PAGE;
    pthread_mutex_unlock(&heap_proc.page_lock);
    st->meta_bytes = sizeof *r + (size_t)r->top * sizeof(struct hpage);
    st->used_bytes = st->heap_bytes - (st->free_bytes - st->free_dirty_bytes) + st->meta_bytes;
    size_t data = st->used_bytes - st->meta_bytes;
    st->fragmentation = data ? 1.0 - (double)st->live_bytes / (double)data : 0.0;
    for (unsigned i = 1; i < HEAP_NCACHE; i++) {
        uint32_t s = __atomic_load_n(&r->caches[i].state, __ATOMIC_RELAXED);
        st->caches_in_use += s == CACHE_BUSY;
        st->caches_total += s != CACHE_NEVER;
    }
    return 0;
}
