/*
 * page_bitmap.h - one bit per page of the region, kept outside the region.
 *
 * Used by the trackers for "written since the last collection" and
 * "populated" sets, and by the region core for "discarded since the last
 * collection". Storage is an anonymous MAP_NORESERVE mapping sized for the
 * whole reservation: untouched words cost no memory, so a 64 GiB region
 * whose first 100 MiB are used costs 4 KiB of bitmap. Set/clear are atomic,
 * so a fault handler (another thread, or a signal handler) may set bits
 * while the collector clears others; mmap'd storage also means a signal
 * handler never depends on malloc.
 */
#ifndef CR_PAGE_BITMAP_H
#define CR_PAGE_BITMAP_H

#include <stddef.h>
#include <stdint.h>

#include "region.h"

struct cr_page_bitmap {
    uint64_t *words;
    size_t    nwords;
    uintptr_t base;      /* address of the page of bit 0 */
};

int  cr_page_bitmap_init(struct cr_page_bitmap *b, uintptr_t base, size_t bytes);
void cr_page_bitmap_fini(struct cr_page_bitmap *b);

static inline size_t cr_page_bitmap_index(const struct cr_page_bitmap *b, uintptr_t addr)
{
    return (addr - b->base) >> 12;
}

/* Atomic, async-signal-safe. */
static inline void cr_page_bitmap_set(struct cr_page_bitmap *b, uintptr_t addr)
{
    size_t i = cr_page_bitmap_index(b, addr);
    __atomic_fetch_or(&b->words[i / 64], 1ULL << (i % 64), __ATOMIC_SEQ_CST);
}
static inline int cr_page_bitmap_test(const struct cr_page_bitmap *b, uintptr_t addr)
{
    size_t i = cr_page_bitmap_index(b, addr);
    return (__atomic_load_n(&b->words[i / 64], __ATOMIC_SEQ_CST) >> (i % 64)) & 1;
}
/* Set / clear every bit of the pages in [addr, addr+len) (atomic per word). */
void cr_page_bitmap_set_range(struct cr_page_bitmap *b, uintptr_t addr, size_t len);
void cr_page_bitmap_clear_range(struct cr_page_bitmap *b, uintptr_t addr, size_t len);

/* Find the next run of set bits at or after addr, before end. Returns 1 and
 * the run [*rs, *re) or 0 if none. Reads atomically; bits may change
 * concurrently (the caller decides what that means). */
int cr_page_bitmap_next_run(const struct cr_page_bitmap *b, uintptr_t addr, uintptr_t end,
                            uintptr_t *rs, uintptr_t *re);

/* OR of two bitmaps' runs: calls fn for each maximal run in [start, end)
 * where a or b (b may be NULL) has a bit set. */
int cr_page_bitmap_report_union(const struct cr_page_bitmap *a, const struct cr_page_bitmap *b,
                                uintptr_t start, uintptr_t end, cr_extent_fn fn, void *arg);

/* The collection loop of the bitmap-based trackers: for each run of set bits
 * of `dirty` in [start, end), clear it and re-arm its pages with
 * rearm(rearm_arg, addr, len) (which makes the next write to them set the
 * bits again); then add the run to `populated` and report it to fn. When
 * rearm fails the run's bits are set again (the pages are reported at the
 * next collection) and its status is returned. `lock`/`unlock` (may be
 * NULL) bracket clear + re-arm, for trackers whose fault handler thread sets
 * bits and re-protects concurrently. */
struct cr_page_bitmap_rearm {
    int  (*rearm)(void *arg, uintptr_t addr, size_t len);
    void (*lock)(void *arg);
    void (*unlock)(void *arg);
    void *arg;
};
int cr_page_bitmap_collect(struct cr_page_bitmap *dirty, struct cr_page_bitmap *populated,
                           uintptr_t start, uintptr_t end,
                           const struct cr_page_bitmap_rearm *r, cr_extent_fn fn, void *arg);

#endif
