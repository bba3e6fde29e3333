/*
 * pages.c - the page heap: extents of whole pages, for slabs and large
 * objects, with boundary-tag coalescing and size-segregated free bins.
 *
 * Bins 0..63 hold free extents of exactly 1..64 pages; above that, four bins
 * per doubling. A request takes the head of its exact bin, or the first fit
 * among a bounded number of entries of its own bin, or the head of the next
 * non-empty bin (found with the bin bitmap), and splits off the rest. When
 * no free extent fits, the heap's top advances (extending a free extent that
 * ends at the top rather than leaving it behind), growing the region in
 * CR_REGION_CHUNK steps up to its maximum.
 *
 * Freed extents are merged with free neighbours at once, so no two free
 * extents are ever adjacent (cr_heap_check verifies it). Their contents are
 * released with cr_region_discard: immediately when an object of 64 pages
 * or more is freed; otherwise all at once when the dirty free pages exceed
 * max(8 MiB, top/8), at most every 100 ms; and always on cr_heap_trim, which
 * the checkpoint engine calls - so a checkpoint's size follows live data
 * while a program recycling a working set does not fault it in again and
 * again.
 *
 * Every function here runs under heap_proc.page_lock.
 */
#include "heap/heap_internal.h"
#include "heap/annotate.h"
#include "common/errors.h"
#include "common/log.h"

#include <time.h>

#define BIN_FIRST_FIT_SCAN 16
#define RELEASE_AT_ONCE    64u     /* pages */
#define DIRTY_MIN_BOUND    2048u   /* pages (8 MiB) */
#define PURGE_INTERVAL_NS  100000000u

unsigned heap_bin_of(uint32_t n)
{
    if (n <= 64)
        return n - 1;
    unsigned b = 31 - (unsigned)__builtin_clz(n);
    return 64 + (b - 6) * 4 + ((n >> (b - 2)) & 3);
}

static void bin_insert(uint32_t s, uint32_t n, uint32_t flags)
{
    struct heap_root *r = heap_proc.root;
    struct hpage *m = r->map;
    unsigned b = heap_bin_of(n);
    m[s].next = r->bins[b];
    m[s].prev = HEAP_NIL;
    m[s].flags = flags;
    if (r->bins[b] != HEAP_NIL)
        m[r->bins[b]].prev = s;
    r->bins[b] = s;
    r->binmap[b / 64] |= 1ULL << (b % 64);
    if (n > 1)
        __atomic_store_n(&m[s + n - 1].info, pk_make(PK_FREE_TAIL, n), __ATOMIC_RELEASE);
    __atomic_store_n(&m[s].info, pk_make(PK_FREE_HEAD, n), __ATOMIC_RELEASE);
    if (flags & PF_DIRTY)
        r->dirty_pages += n;
}

/* Take the free extent headed at s out of its bin and clear its entries. */
static void bin_remove(uint32_t s)
{
    struct heap_root *r = heap_proc.root;
    struct hpage *m = r->map;
    uint32_t n = pk_n(m[s].info);
    unsigned b = heap_bin_of(n);
    if (m[s].prev != HEAP_NIL)
        m[m[s].prev].next = m[s].next;
    else
        r->bins[b] = m[s].next;
    if (m[s].next != HEAP_NIL)
        m[m[s].next].prev = m[s].prev;
    if (r->bins[b] == HEAP_NIL)
        r->binmap[b / 64] &= ~(1ULL << (b % 64));
    if (m[s].flags & PF_DIRTY)
        r->dirty_pages -= n;
    __atomic_store_n(&m[s].info, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&m[s + n - 1].info, 0, __ATOMIC_RELEASE);
    m[s].next = m[s].prev = m[s].flags = 0;
}

/* Head of the free extent whose last page is i, or HEAP_NIL. */
static uint32_t free_ending_at(uint32_t i)
{
    uint32_t info = heap_map()[i].info;
    if (pk_kind(info) == PK_FREE_TAIL)
        return i + 1 - pk_n(info);
    if (pk_kind(info) == PK_FREE_HEAD && pk_n(info) == 1)
        return i;
    return HEAP_NIL;
}

static uint32_t bin_find(uint32_t n)
{
    struct heap_root *r = heap_proc.root;
    unsigned b = heap_bin_of(n);
    if (b < 64) {
        if (r->bins[b] != HEAP_NIL)
            return r->bins[b];
    } else {
        uint32_t s = r->bins[b];
        for (int k = 0; s != HEAP_NIL && k < BIN_FIRST_FIT_SCAN; k++, s = r->map[s].next)
            if (pk_n(r->map[s].info) >= n)
                return s;
    }
    for (unsigned w = (b + 1) / 64, first = (b + 1) % 64; w < CR_ARRAY_SIZE(r->binmap); w++, first = 0) {
        uint64_t bits = first < 64 ? r->binmap[w] & (~0ULL << first) : 0;
        if (bits)
            return r->bins[w * 64 + (unsigned)__builtin_ctzll(bits)];
    }
    return HEAP_NIL;
}

/* Make sure the region covers pages [0, end). */
static int cover(uint32_t end)
{
    struct heap_root *r = heap_proc.root;
    if (end > r->max_pages)
        return -ENOMEM;
    int rc = heap_map_fence(end);
    if (rc)
        return rc;
    size_t need = heap_page_addr(end) - (uintptr_t)cr_region_base();
    if (need <= cr_region_size())
        return 0;
    return cr_region_grow(need);
}

static int known_zero(uint32_t flags)
{
    return !(flags & PF_DIRTY) && (flags >> 1) == heap_proc.zero_gen;
}

/* Move the top to new_top. Map entries above the top are zero except where
 * this process had pages before an in-place restore rolled the top back
 * (below hwm): clear those, as interiors of extents must be empty. */
static void advance_top(uint32_t new_top)
{
    struct heap_root *r = heap_proc.root;
    if (r->top < heap_proc.hwm)
        memset(&r->map[r->top], 0, (CR_MIN(new_top, heap_proc.hwm) - r->top) * sizeof(struct hpage));
    __atomic_store_n(&r->top, new_top, __ATOMIC_RELEASE);
    heap_proc.hwm = CR_MAX(heap_proc.hwm, new_top);
}

/* An extent of at least n pages at the top: the free extent that ends at
 * the top, extended by advancing the top if it is too short (or alone if it
 * is long enough: the bounded bin scan may have passed it). Returns its first
 * page, its length in *len and its flags in *flags. Pages above the top read
 * as zeros unless this process had a higher top before an in-place restore
 * (heap_proc.hwm): the restore may have left them dirty. */
static uint32_t take_top(uint32_t n, uint32_t *len, uint32_t *flags)
{
    struct heap_root *r = heap_proc.root;
    uint32_t s = r->top ? free_ending_at(r->top - 1) : HEAP_NIL;
    uint32_t have = s != HEAP_NIL ? r->top - s : 0;
    if (s == HEAP_NIL)
        s = r->top;
    *len = CR_MAX(n, have);
    if ((uint64_t)s + *len > r->max_pages || cover(s + *len))
        return HEAP_NIL;
    *flags = r->top >= heap_proc.hwm ? heap_proc.zero_gen << 1 : PF_DIRTY;
    if (have) {
        if (have >= n)
            *flags = r->map[s].flags;
        else if (!known_zero(r->map[s].flags))
            *flags = PF_DIRTY;
        bin_remove(s);
    }
    if (s + *len > r->top)
        advance_top(s + *len);
    return s;
}

uint32_t pages_alloc(uint32_t n, uint32_t align, int *zero)
{
    struct heap_root *r = heap_proc.root;
    uint64_t want = (uint64_t)n + align - 1;
    if (!n || want > r->max_pages)
        return HEAP_NIL;
    uint32_t flags, sn, s = bin_find((uint32_t)want);
    if (s != HEAP_NIL) {
        sn = pk_n(r->map[s].info);
        flags = r->map[s].flags;
        bin_remove(s);
    } else {
        s = take_top((uint32_t)want, &sn, &flags);
        if (s == HEAP_NIL)
            return HEAP_NIL;
    }
    uintptr_t addr = heap_page_addr(s);
    uint32_t a = s + (uint32_t)((cr_align_up(addr, (uintptr_t)align * HEAP_PAGE) - addr) / HEAP_PAGE);
    if (a > s)
        bin_insert(s, a - s, flags);
    if (s + sn > a + n)
        bin_insert(a + n, s + sn - (a + n), flags);
    *zero = known_zero(flags);
    return a;
}

static int release(uint32_t s, uint32_t n)
{
    int rc = cr_region_discard((void *)heap_page_addr(s), (size_t)n * HEAP_PAGE);
    if (rc)
        cr_errc(rc, "heap: releasing free pages %#lx+%zu", (unsigned long)heap_page_addr(s),
                (size_t)n * HEAP_PAGE);
    return rc;
}

void pages_free(uint32_t start, uint32_t n)
{
    struct heap_root *r = heap_proc.root;
    struct hpage *m = r->map;
    uint32_t freed = n;
    if (pk_kind(m[start].info) == PK_SLAB)
        for (uint32_t i = 0; i < n; i++)
            __atomic_store_n(&m[start + i].info, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&m[start].info, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&m[start + n - 1].info, 0, __ATOMIC_RELEASE);
    uint32_t p = start ? free_ending_at(start - 1) : HEAP_NIL;
    if (p != HEAP_NIL) {
        n += start - p;
        start = p;
        bin_remove(p);
    }
    if (start + n < r->top && pk_kind(m[start + n].info) == PK_FREE_HEAD) {
        uint32_t nn = pk_n(m[start + n].info);
        bin_remove(start + n);
        n += nn;
    }
    uint32_t flags = PF_DIRTY;
    if (freed >= RELEASE_AT_ONCE && !release(start, n))
        flags = heap_proc.zero_gen << 1;
    bin_insert(start, n, flags);
    if (r->dirty_pages > CR_MAX(DIRTY_MIN_BOUND, r->top / 8)) {
        /* Purging more often than every PURGE_INTERVAL would make a program
         * that frees and reallocates a large working set fault its pages
         * back in every time. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        if (t - heap_proc.last_purge_ns >= PURGE_INTERVAL_NS) {
            heap_proc.last_purge_ns = t;
            (void)pages_purge();
        }
    }
}

int pages_grow_inplace(uint32_t start, uint32_t n, uint32_t want)
{
    struct heap_root *r = heap_proc.root;
    struct hpage *m = r->map;
    uint32_t next = start + n;
    if (next < r->top && pk_kind(m[next].info) == PK_FREE_HEAD) {
        uint32_t nn = pk_n(m[next].info), flags = m[next].flags;
        if ((uint64_t)n + nn < want)
            return 0;
        bin_remove(next);
        if (n > 1)
            __atomic_store_n(&m[start + n - 1].info, 0, __ATOMIC_RELEASE);
        pages_set_large(start, want);
        if (n + nn > want)
            bin_insert(start + want, n + nn - want, flags);
        return 1;
    }
    if (next == r->top && want <= r->max_pages && !cover(want - n + r->top)) {
        advance_top(r->top + (want - n));
        if (n > 1)
            __atomic_store_n(&m[start + n - 1].info, 0, __ATOMIC_RELEASE);
        pages_set_large(start, want);
        return 1;
    }
    return 0;
}

void pages_set_large(uint32_t start, uint32_t n)
{
    struct hpage *m = heap_map();
    if (n > 1)
        __atomic_store_n(&m[start + n - 1].info, pk_make(PK_LARGE_TAIL, n), __ATOMIC_RELEASE);
    __atomic_store_n(&m[start].info, pk_make(PK_LARGE_HEAD, n), __ATOMIC_RELEASE);
}

void pages_set_slab(uint32_t start, uint32_t n)
{
    struct hpage *m = heap_map();
    for (uint32_t i = 0; i < n; i++)
        __atomic_store_n(&m[start + i].info, pk_make(PK_SLAB, i), __ATOMIC_RELEASE);
}

int pages_purge(void)
{
    struct heap_root *r = heap_proc.root;
    int rc = 0;
    for (unsigned b = 0; b < HEAP_NBINS && r->dirty_pages; b++) {
        for (uint32_t s = r->bins[b]; s != HEAP_NIL; s = r->map[s].next) {
            if (!(r->map[s].flags & PF_DIRTY))
                continue;
            uint32_t n = pk_n(r->map[s].info);
            int e = release(s, n);
            if (e) {
                rc = rc ? rc : e;
                continue;
            }
            r->map[s].flags = heap_proc.zero_gen << 1;
            r->dirty_pages -= n;
        }
    }
    return rc;
}
