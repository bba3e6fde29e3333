/*
 * page_bitmap.c - page bitmaps outside the region (see page_bitmap.h).
 */
#include "page_bitmap.h"
#include "common/errors.h"
#include "common/log.h"

#include <sys/mman.h>

int cr_page_bitmap_init(struct cr_page_bitmap *b, uintptr_t base, size_t bytes)
{
    size_t pages = bytes / CR_PAGE_SIZE;
    b->nwords = (pages + 63) / 64;
    b->base = base;
    size_t len = cr_align_up(b->nwords * sizeof(uint64_t), CR_PAGE_SIZE);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        int err = cr_neg_errno();
        cr_perr("mmap of a %zu-byte page bitmap failed", len);
        return err;
    }
    b->words = p;
    return 0;
}

void cr_page_bitmap_fini(struct cr_page_bitmap *b)
{
    if (b->words)
        munmap(b->words, cr_align_up(b->nwords * sizeof(uint64_t), CR_PAGE_SIZE));
    b->words = NULL;
}

static void range_op(struct cr_page_bitmap *b, uintptr_t addr, size_t len, int set)
{
    size_t i = cr_page_bitmap_index(b, addr), n = len / CR_PAGE_SIZE;
    while (n) {
        size_t bit = i % 64, k = CR_MIN(n, 64 - bit);
        uint64_t m = k == 64 ? ~0ULL : ((1ULL << k) - 1) << bit;
        if (set)
            __atomic_fetch_or(&b->words[i / 64], m, __ATOMIC_SEQ_CST);
        else
            __atomic_fetch_and(&b->words[i / 64], ~m, __ATOMIC_SEQ_CST);
        i += k;
        n -= k;
    }
}

void cr_page_bitmap_set_range(struct cr_page_bitmap *b, uintptr_t addr, size_t len)
{
    range_op(b, addr, len, 1);
}

void cr_page_bitmap_clear_range(struct cr_page_bitmap *b, uintptr_t addr, size_t len)
{
    range_op(b, addr, len, 0);
}

static inline uint64_t word_at(const struct cr_page_bitmap *a, const struct cr_page_bitmap *b,
                               size_t w)
{
    uint64_t v = __atomic_load_n(&a->words[w], __ATOMIC_SEQ_CST);
    if (b)
        v |= __atomic_load_n(&b->words[w], __ATOMIC_SEQ_CST);
    return v;
}

/* First index >= i and < n whose bit (in a|b) equals `want`; n if none. */
static size_t find_bit(const struct cr_page_bitmap *a, const struct cr_page_bitmap *b,
                       size_t i, size_t n, int want)
{
    while (i < n) {
        uint64_t w = word_at(a, b, i / 64);
        if (!want)
            w = ~w;
        w &= ~0ULL << (i % 64);
        if (w) {
            size_t j = (i & ~(size_t)63) + (size_t)__builtin_ctzll(w);
            return j < n ? j : n;
        }
        i = (i & ~(size_t)63) + 64;
    }
    return n;
}

int cr_page_bitmap_next_run(const struct cr_page_bitmap *b, uintptr_t addr, uintptr_t end,
                            uintptr_t *rs, uintptr_t *re)
{
    size_t n = cr_page_bitmap_index(b, end);
    size_t i = find_bit(b, NULL, cr_page_bitmap_index(b, addr), n, 1);
    if (i >= n)
        return 0;
    size_t j = find_bit(b, NULL, i, n, 0);
    *rs = b->base + i * CR_PAGE_SIZE;
    *re = b->base + j * CR_PAGE_SIZE;
    return 1;
}

int cr_page_bitmap_report_union(const struct cr_page_bitmap *a, const struct cr_page_bitmap *b,
                                uintptr_t start, uintptr_t end, cr_extent_fn fn, void *arg)
{
    size_t n = cr_page_bitmap_index(a, end);
    size_t i = cr_page_bitmap_index(a, start);
    for (;;) {
        i = find_bit(a, b, i, n, 1);
        if (i >= n)
            return 0;
        size_t j = find_bit(a, b, i, n, 0);
        struct cr_extent e = { a->base + i * CR_PAGE_SIZE, (j - i) * CR_PAGE_SIZE, 0 };
        int rc = fn(&e, arg);
        if (rc)
            return rc;
        i = j;
    }
}

int cr_page_bitmap_collect(struct cr_page_bitmap *dirty, struct cr_page_bitmap *populated,
                           uintptr_t start, uintptr_t end,
                           const struct cr_page_bitmap_rearm *r, cr_extent_fn fn, void *arg)
{
    uintptr_t rs, re, at = start;
    while (cr_page_bitmap_next_run(dirty, at, end, &rs, &re)) {
        if (r->lock)
            r->lock(r->arg);
        /* Clear before re-arming: a write after the re-arm sets the bit
         * again and is reported next time, never lost. */
        cr_page_bitmap_clear_range(dirty, rs, re - rs);
        int rc = r->rearm(r->arg, rs, re - rs);
        if (rc < 0)
            cr_page_bitmap_set_range(dirty, rs, re - rs);   /* report it next time */
        if (r->unlock)
            r->unlock(r->arg);
        if (rc < 0)
            return rc;
        cr_page_bitmap_set_range(populated, rs, re - rs);
        struct cr_extent e = { rs, re - rs, 0 };
        rc = fn(&e, arg);
        if (rc)
            return rc;
        at = re;
    }
    return 0;
}
