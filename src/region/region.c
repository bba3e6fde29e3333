/*
 * region.c - the persistent region: reservation at a fixed address, growth,
 * discard, the header page, and collections merged from the tracker's
 * written extents and our own record of discarded pages.
 *
 * Layout: [base, base+max) is reserved at open with PROT_NONE,
 * MAP_NORESERVE and MAP_FIXED_NOREPLACE (address space only: no memory, no
 * commit charge; a collision with an existing mapping fails instead of
 * replacing it). cr_region_grow() makes whole CR_REGION_CHUNKs readable and
 * writable from the base up and hands them to the tracker.
 *
 * Transparent huge pages are disabled on the region (MADV_NOHUGEPAGE on the
 * whole reservation; split VMAs inherit it). Reason: dirty tracking works on
 * ptes; a THP would make one written byte cost a 2 MiB page in every
 * incremental checkpoint, and khugepaged collapsing pages would change what
 * is reported behind our back. A checkpoint's size must follow the data
 * written, so we pay the TLB cost of 4 KiB pages instead.
 *
 * Discard: MADV_DONTNEED frees the pages; the tracker forgets that they were
 * written; we remember them in the `zero` bitmap so the next collection
 * reports them once with CR_EXTENT_ZERO (unless written again after the
 * discard, in which case they are reported as written, which they are).
 *
 * Concurrency: one mutex serialises open/close/grow/discard/collect. The
 * trackers cope with application threads writing concurrently.
 */
#include "region.h"
#include "page_bitmap.h"
#include "tracker.h"
#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define REGION_MAGIC   "CRMPIRGN"
#define REGION_VERSION 1u

/* The header page (first page of the region). Format version 1. */
struct cr_region_header {
    char     magic[8];          /* "CRMPIRGN" */
    uint32_t version;           /* REGION_VERSION */
    uint32_t header_len;        /* sizeof(struct cr_region_header) */
    uint64_t page_size;
    uint64_t base;
    uint64_t max_size;
    uint64_t size;              /* usable bytes, updated by grow */
    uint64_t roots[CR_ROOT_MAX];
};
_Static_assert(sizeof(struct cr_region_header) <= CR_PAGE_SIZE, "header fits a page");

static struct {
    pthread_mutex_t lock;
    int       open;             /* read without the lock: atomic */
    uintptr_t base;
    size_t    max;
    size_t    size;
    int       zero_pending;     /* some zero bit may be set */
    struct cr_page_bitmap zero; /* discarded since the last collection */
    struct cr_tracker trk;
    size_t    missing_len;      /* [base, base+missing_len) in missing mode */
    uintptr_t fence_lo, fence_hi; /* cr_region_fence (empty: equal) */
    void    (*discard_hook)(void *arg, uintptr_t addr, size_t len);
    void     *discard_arg;
} R = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct cr_region_header *header(void) { return (struct cr_region_header *)R.base; }

/* ---- collision diagnostics ------------------------------------------------ */

/* Log every existing mapping overlapping [lo, hi), from /proc/self/maps. */
static void describe_collision(uintptr_t lo, uintptr_t hi)
{
    FILE *f = fopen("/proc/self/maps", "re");
    int found = 0;
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long s, e;
        char perms[8] = "", path[400] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %399[^\n]", &s, &e, perms, path) < 3)
            continue;
        if (e <= lo || s >= hi)
            continue;
        cr_err("persistent region [%#lx, %#lx) collides with existing mapping "
               "[%#lx, %#lx) %s %s; choose another CRMPI_REGION_BASE or CRMPI_REGION_MAX",
               (unsigned long)lo, (unsigned long)hi, s, e, perms, *path ? path : "[anonymous]");
        found++;
    }
    if (f)
        fclose(f);
    if (!found)
        cr_err("persistent region [%#lx, %#lx) could not be mapped at its fixed address "
               "(something is mapped there)", (unsigned long)lo, (unsigned long)hi);
}

static int reserve(uintptr_t base, size_t max)
{
    void *p = mmap((void *)base, max, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED) {
        if (errno == EEXIST) {
            describe_collision(base, base + max);
            return CR_ECOLLISION;
        }
        int err = cr_neg_errno();
        cr_perr("mmap(PROT_NONE) reserving the region [%#lx, %#lx) failed",
                (unsigned long)base, (unsigned long)(base + max));
        return err;
    }
    if ((uintptr_t)p != base) {   /* kernel < 4.17 ignores MAP_FIXED_NOREPLACE */
        munmap(p, max);
        describe_collision(base, base + max);
        return CR_ECOLLISION;
    }
    if (madvise(p, max, MADV_NOHUGEPAGE) != 0) {
        int err = cr_neg_errno();
        cr_perr("madvise(MADV_NOHUGEPAGE) on the region [%#lx, %#lx) failed",
                (unsigned long)base, (unsigned long)(base + max));
        munmap(p, max);
        return err;
    }
    return 0;
}

/* ---- open / close / grow ---------------------------------------------------- */

static int check_params(uintptr_t base, size_t max)
{
    if (!base || base % CR_PAGE_SIZE) {
        cr_err("region base %#lx is not a non-zero multiple of the page size",
               (unsigned long)base);
        return -EINVAL;
    }
    if (max < CR_REGION_CHUNK || base + max < base || base + max > (1UL << 47)) {
        cr_err("region [%#lx, +%zu) is empty, smaller than one %lu-byte chunk, or beyond "
               "user address space", (unsigned long)base, max, CR_REGION_CHUNK);
        return -EINVAL;
    }
    return 0;
}

static int grow_locked(size_t new_size)
{
    if (new_size > R.max)
        return -ENOMEM;
    size_t want = cr_align_up(new_size, CR_REGION_CHUNK);
    if (want > R.max)
        want = R.max;
    if (want <= R.size)
        return 0;
    uintptr_t a = R.base + R.size;
    size_t len = want - R.size;
    if (mprotect((void *)a, len, PROT_READ | PROT_WRITE) != 0) {
        int err = cr_neg_errno();
        cr_perr("mprotect(RW) growing the region to %zu bytes at [%#lx, %#lx) failed", want,
                (unsigned long)a, (unsigned long)(a + len));
        return err;
    }
    int rc = R.trk.ops->add_range(&R.trk, a, len);
    if (rc < 0) {
        cr_errc(rc, "tracker %s could not track [%#lx, %#lx)", R.trk.ops->name,
                (unsigned long)a, (unsigned long)(a + len));
        if (mprotect((void *)a, len, PROT_NONE) != 0)
            cr_perr("mprotect(PROT_NONE) undoing growth at %#lx failed", (unsigned long)a);
        return rc;
    }
    __atomic_store_n(&R.size, want, __ATOMIC_RELEASE);
    header()->size = want;
    return 0;
}

static void init_header(void)
{
    struct cr_region_header *h = header();
    memcpy(h->magic, REGION_MAGIC, sizeof h->magic);
    h->version = REGION_VERSION;
    h->header_len = sizeof *h;
    h->page_size = CR_PAGE_SIZE;
    h->base = R.base;
    h->max_size = R.max;
    h->size = R.size;
}

int cr_region_open(const struct cr_region_params *params)
{
    const struct cr_config *cfg = cr_config();
    uintptr_t base = params && params->base ? params->base : cfg->region_base;
    size_t max = params && params->max_size ? params->max_size : cfg->region_max;
    int kind = params && params->tracker != CR_TRACKER_AUTO ? params->tracker : cfg->tracker;
    int rc = check_params(base, max);
    if (rc < 0)
        return rc;
    max = cr_align_up(max, CR_REGION_CHUNK);

    pthread_mutex_lock(&R.lock);
    if (R.open) {
        cr_err("the persistent region is already open at %#lx", (unsigned long)R.base);
        rc = -EBUSY;
        goto unlock;
    }
    const struct cr_tracker_ops *ops = cr_tracker_select(kind, &rc);
    if (!ops)
        goto unlock;
    rc = reserve(base, max);
    if (rc < 0)
        goto unlock;
    R.base = base;
    R.max = max;
    R.size = 0;
    R.zero_pending = 0;
    rc = cr_page_bitmap_init(&R.zero, base, max);
    if (rc < 0)
        goto unmap_region;
    R.trk = (struct cr_tracker){ .ops = ops, .base = base, .max = max };
    rc = ops->init(&R.trk);
    if (rc < 0)
        goto free_zero;
    rc = grow_locked(CR_PAGE_SIZE);
    if (rc < 0)
        goto fini_tracker;
    init_header();
    __atomic_store_n(&R.open, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&R.lock);
    cr_dbg("region open at [%#lx, %#lx), tracker %s", (unsigned long)base,
           (unsigned long)(base + max), ops->name);
    return 0;

fini_tracker:
    ops->fini(&R.trk);
free_zero:
    cr_page_bitmap_fini(&R.zero);
unmap_region:
    munmap((void *)base, max);
    R.base = 0;
    R.max = R.size = 0;
unlock:
    pthread_mutex_unlock(&R.lock);
    return rc;
}

int cr_region_close(void)
{
    pthread_mutex_lock(&R.lock);
    if (!R.open) {
        pthread_mutex_unlock(&R.lock);
        return -EBADF;
    }
    __atomic_store_n(&R.open, 0, __ATOMIC_RELEASE);
    R.trk.ops->fini(&R.trk);
    R.missing_len = 0;
    R.fence_lo = R.fence_hi = 0;
    int rc = 0;
    if (munmap((void *)R.base, R.max) != 0) {
        rc = cr_neg_errno();
        cr_perr("munmap of the region [%#lx, %#lx) failed", (unsigned long)R.base,
                (unsigned long)(R.base + R.max));
    }
    cr_page_bitmap_fini(&R.zero);
    R.base = 0;
    R.max = 0;
    __atomic_store_n(&R.size, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&R.lock);
    return rc;
}

int cr_region_is_open(void) { return __atomic_load_n(&R.open, __ATOMIC_ACQUIRE); }
void *cr_region_base(void)  { return cr_region_is_open() ? (void *)R.base : NULL; }
size_t cr_region_size(void) { return cr_region_is_open() ? __atomic_load_n(&R.size, __ATOMIC_ACQUIRE) : 0; }
size_t cr_region_max(void)  { return cr_region_is_open() ? R.max : 0; }

const char *cr_region_tracker_name(void)
{
    return cr_region_is_open() ? R.trk.ops->name : "none";
}

int cr_region_contains(const void *p, size_t len)
{
    if (!cr_region_is_open())
        return 0;
    uintptr_t a = (uintptr_t)p, lo = R.base, hi = lo + cr_region_size();
    return a >= lo && a <= hi && len <= hi - a;
}

int cr_region_grow(size_t new_size)
{
    pthread_mutex_lock(&R.lock);
    int rc = R.open ? grow_locked(new_size) : -EBADF;
    pthread_mutex_unlock(&R.lock);
    return rc;
}

/* ---- fence --------------------------------------------------------------------- */

/* mprotect the parts of [lo, hi) outside [out_lo, out_hi) (zero, one or two
 * pieces). */
static int protect_outside(uintptr_t lo, uintptr_t hi, uintptr_t out_lo, uintptr_t out_hi,
                           int prot)
{
    uintptr_t piece[2][2] = { { lo, CR_MIN(hi, out_lo) }, { CR_MAX(lo, out_hi), hi } };
    if (out_lo >= out_hi) {              /* nothing to leave out: all of it, once */
        piece[0][1] = hi;
        piece[1][0] = piece[1][1] = 0;
    }
    for (int i = 0; i < 2; i++) {
        if (piece[i][0] >= piece[i][1])
            continue;
        if (mprotect((void *)piece[i][0], piece[i][1] - piece[i][0], prot) != 0) {
            int err = cr_neg_errno();
            cr_perr("mprotect(%s) of [%#lx, %#lx) for the region's fence failed",
                    prot == PROT_NONE ? "PROT_NONE" : "RW", (unsigned long)piece[i][0],
                    (unsigned long)piece[i][1]);
            return err;
        }
    }
    return 0;
}

int cr_region_fence(uintptr_t lo, uintptr_t hi)
{
    if (!cr_region_is_open())
        return -EBADF;
    if (lo % CR_PAGE_SIZE || hi % CR_PAGE_SIZE || lo > hi)
        return -EINVAL;
    pthread_mutex_lock(&R.lock);
    int rc = -EBADF;
    if (!R.open)
        goto unlock;
    rc = -EINVAL;
    if (lo < hi && (lo < R.base + CR_PAGE_SIZE || hi > R.base + R.size)) {
        cr_err("fence [%#lx, %#lx) is outside the region's data [%#lx, %#lx)",
               (unsigned long)lo, (unsigned long)hi, (unsigned long)(R.base + CR_PAGE_SIZE),
               (unsigned long)(R.base + R.size));
        goto unlock;
    }
    rc = 0;
    if (!R.trk.ops->fence)   /* nothing to gain, and mprotect would fight the tracker */
        goto unlock;
    if (lo == hi)
        lo = hi = 0;
    /* Close the new part before the tracker stops looking at it, open the
     * released part after (it is tracked again from then on). */
    rc = lo < hi ? protect_outside(lo, hi, R.fence_lo, R.fence_hi, PROT_NONE) : 0;
    if (rc)
        goto unlock;
    R.trk.ops->fence(&R.trk, lo, hi);
    if (lo < hi)
        cr_page_bitmap_clear_range(&R.zero, lo, hi - lo);
    rc = R.fence_lo < R.fence_hi
             ? protect_outside(R.fence_lo, R.fence_hi, lo, hi, PROT_READ | PROT_WRITE) : 0;
    /* Even if re-opening failed the tracker skips only [lo, hi) now: what
     * stayed closed is not written behind its back. */
    R.fence_lo = lo;
    R.fence_hi = hi;
unlock:
    pthread_mutex_unlock(&R.lock);
    return rc;
}

int cr_region_thread_prepare(void)
{
    if (!cr_region_is_open())
        return -EBADF;
    /* The ops do not change while the region is open. */
    return R.trk.ops->thread_prepare ? R.trk.ops->thread_prepare(&R.trk) : 0;
}

/* ---- discard ------------------------------------------------------------------ */

int cr_region_discard(void *addr, size_t len)
{
    uintptr_t a = (uintptr_t)addr;
    if (!cr_region_is_open())
        return -EBADF;
    if (a % CR_PAGE_SIZE || len % CR_PAGE_SIZE)
        return -EINVAL;
    if (len == 0)
        return 0;
    pthread_mutex_lock(&R.lock);
    int rc = -EBADF;
    if (!R.open)
        goto unlock;
    rc = -EINVAL;
    if (a < R.base + CR_PAGE_SIZE || a > R.base + R.size || len > R.base + R.size - a) {
        cr_err("discard of [%#lx, %#lx) is outside the region's data [%#lx, %#lx)",
               (unsigned long)a, (unsigned long)(a + len),
               (unsigned long)(R.base + CR_PAGE_SIZE), (unsigned long)(R.base + R.size));
        goto unlock;
    }
    if (R.discard_hook)
        R.discard_hook(R.discard_arg, a, len);
    if (madvise(addr, len, MADV_DONTNEED) != 0) {
        rc = cr_neg_errno();
        cr_perr("madvise(MADV_DONTNEED) of [%#lx, %#lx) failed", (unsigned long)a,
                (unsigned long)(a + len));
        goto unlock;
    }
    rc = R.trk.ops->discard(&R.trk, a, len);
    if (rc < 0)
        goto unlock;
    cr_page_bitmap_set_range(&R.zero, a, len);
    R.zero_pending = 1;
unlock:
    pthread_mutex_unlock(&R.lock);
    return rc;
}

int cr_region_missing_begin(size_t len, int *uffd)
{
    if (!cr_region_is_open())
        return -EBADF;
    pthread_mutex_lock(&R.lock);
    int rc = -EINVAL;
    len = cr_align_up(len, CR_PAGE_SIZE);
    if (R.missing_len || len == 0 || len > R.size)
        goto unlock;
    rc = -ENOTSUP;
    if (!R.trk.ops->missing_begin)
        goto unlock;
    rc = R.trk.ops->missing_begin(&R.trk, R.base, R.base + len, uffd);
    if (rc == 0)
        R.missing_len = len;
unlock:
    pthread_mutex_unlock(&R.lock);
    return rc;
}

int cr_region_missing_end(void)
{
    if (!cr_region_is_open())
        return -EBADF;
    pthread_mutex_lock(&R.lock);
    int rc = 0;
    if (R.missing_len) {
        rc = R.trk.ops->missing_end(&R.trk, R.base, R.base + R.missing_len);
        if (rc == 0)
            R.missing_len = 0;
    }
    pthread_mutex_unlock(&R.lock);
    return rc;
}

void cr_region_set_discard_hook(void (*fn)(void *arg, uintptr_t addr, size_t len), void *arg)
{
    pthread_mutex_lock(&R.lock);
    R.discard_hook = fn;
    R.discard_arg = arg;
    pthread_mutex_unlock(&R.lock);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23    /* Linux 5.14; Debian 12's headers have it, older may not */
#endif

int cr_region_populate(void *addr, size_t len)
{
    if (!cr_region_contains(addr, len))
        return -EFAULT;
    if (R.trk.ops->open_write) {     /* the caller's pread would fail with EFAULT */
        pthread_mutex_lock(&R.lock);
        int rc = R.open ? R.trk.ops->open_write(&R.trk, (uintptr_t)addr, len) : -EBADF;
        pthread_mutex_unlock(&R.lock);
        if (rc)
            return rc;
    }
    if (madvise(addr, len, MADV_POPULATE_WRITE) != 0)
        return cr_neg_errno();
    return 0;
}

/* ---- collections ------------------------------------------------------------- */

/* Merges extents into maximal runs of equal flags and interleaves the
 * discarded (zero) pages, all in address order. */
struct merger {
    cr_extent_fn fn;
    void *arg;
    struct cr_extent pend;      /* pend.len == 0: nothing pending */
    uintptr_t cursor;           /* zero pages below this were emitted */
    int with_zeros;
};

static int emit(struct merger *m, uintptr_t addr, size_t len, uint32_t flags)
{
    if (!m->fn)
        return 0;
    /* Zero extents carry no data: no limit. Data extents are cut at
     * CR_EXTENT_MAX so a lazy restore verifies a faulting page's extent
     * without reading much more than the page. */
    size_t cap = flags & CR_EXTENT_ZERO ? SIZE_MAX : CR_EXTENT_MAX;
    if (m->pend.len && m->pend.flags == flags && m->pend.addr + m->pend.len == addr) {
        size_t take = CR_MIN(cap - m->pend.len, len);
        m->pend.len += take;
        addr += take;
        len -= take;
        if (len == 0)
            return 0;
    }
    while (len) {
        int rc = m->pend.len ? m->fn(&m->pend, m->arg) : 0;
        size_t take = CR_MIN(cap, len);
        m->pend = (struct cr_extent){ addr, take, flags };
        if (rc)
            return rc;
        addr += take;
        len -= take;
    }
    return 0;
}

static int emit_zeros_until(struct merger *m, uintptr_t limit)
{
    uintptr_t rs, re;
    while (m->with_zeros && m->cursor < limit &&
           cr_page_bitmap_next_run(&R.zero, m->cursor, limit, &rs, &re)) {
        int rc = emit(m, rs, re - rs, CR_EXTENT_ZERO);
        if (rc)
            return rc;
        m->cursor = re;
    }
    if (m->cursor < limit)
        m->cursor = limit;
    return 0;
}

static int on_extent(const struct cr_extent *e, void *arg)
{
    struct merger *m = arg;
    int rc = emit_zeros_until(m, e->addr);
    if (rc)
        return rc;
    if (m->with_zeros)   /* written after the discard: its contents are not zero */
        cr_page_bitmap_clear_range(&R.zero, e->addr, e->len);
    if (e->addr + e->len > m->cursor)
        m->cursor = e->addr + e->len;
    return emit(m, e->addr, e->len, 0);
}

static int finish(struct merger *m, uintptr_t end)
{
    int rc = emit_zeros_until(m, end);
    if (!rc && m->fn && m->pend.len)
        rc = m->fn(&m->pend, m->arg);
    return rc;
}

/* After a tracker pass that started a new epoch (status rc): flush the
 * merger and forget the discards reported. Lock held. */
static int end_epoch(struct merger *m, int rc, uintptr_t end)
{
    if (!rc)
        rc = finish(m, end);
    if (!rc && R.zero_pending) {
        cr_page_bitmap_clear_range(&R.zero, R.base, R.size);
        R.zero_pending = 0;
    }
    return rc;
}

int cr_region_collect(cr_extent_fn fn, void *arg)
{
    pthread_mutex_lock(&R.lock);
    int rc = -EBADF;
    if (!R.open)
        goto unlock;
    uintptr_t end = R.base + R.size;
    struct merger m = { .fn = fn, .arg = arg, .cursor = R.base, .with_zeros = R.zero_pending };
    rc = end_epoch(&m, R.trk.ops->collect(&R.trk, R.base, end, on_extent, &m), end);
unlock:
    pthread_mutex_unlock(&R.lock);
    return rc;
}

int cr_region_peek(cr_extent_fn fn, void *arg)
{
    pthread_mutex_lock(&R.lock);
    int rc = -EBADF;
    if (!R.open)
        goto unlock;
    rc = -ENOTSUP;
    if (!R.trk.ops->peek)
        goto unlock;
    uintptr_t end = R.base + R.size;
    /* Like a collection, but nothing is re-armed and the discarded pages
     * stay recorded (clearing the zero bit of a page written after its
     * discard is what the collection would do as well). */
    struct merger m = { .fn = fn, .arg = arg, .cursor = R.base, .with_zeros = R.zero_pending };
    rc = R.trk.ops->peek(&R.trk, R.base, end, on_extent, &m);
    if (!rc)
        rc = finish(&m, end);
unlock:
    pthread_mutex_unlock(&R.lock);
    return rc;
}

int cr_region_collect_populated(cr_extent_fn fn, void *arg)
{
    pthread_mutex_lock(&R.lock);
    int rc = -EBADF;
    if (!R.open)
        goto unlock;
    uintptr_t end = R.base + R.size;
    struct merger m = { .fn = fn, .arg = arg, .cursor = R.base, .with_zeros = 0 };
    rc = R.trk.ops->collect_populated(&R.trk, R.base, end, on_extent, &m);
    if (!rc)
        rc = finish(&m, end);
unlock:
    pthread_mutex_unlock(&R.lock);
    return rc;
}

int cr_region_snapshot(int full, cr_extent_fn fn, void *arg)
{
    pthread_mutex_lock(&R.lock);
    int rc = -EBADF;
    if (!R.open)
        goto unlock;
    if (!R.trk.ops->snapshot) {          /* cannot defer: re-arm now */
        pthread_mutex_unlock(&R.lock);
        if (!full)
            return cr_region_collect(fn, arg);
        /* Re-base first: every page written before it is then populated,
         * and every page written after it is tracked for the next epoch
         * (in the other order a page first written in between would be
         * in neither). */
        rc = cr_region_collect(NULL, NULL);
        return rc ? rc : cr_region_collect_populated(fn, arg);
    }
    uintptr_t end = R.base + R.size;
    int zeros = !full && R.zero_pending;
    struct merger m = { .fn = fn, .arg = arg, .cursor = R.base, .with_zeros = zeros };
    /* A full snapshot saves every page with contents: the discarded ones
     * read as zeros and need no record either way. */
    rc = end_epoch(&m, R.trk.ops->snapshot(&R.trk, R.base, end, full, on_extent, &m), end);
unlock:
    pthread_mutex_unlock(&R.lock);
    return rc;
}

/* Bytes re-armed per lock hold and per ioctl: the re-arm runs beside the
 * application, often on its core, and takes tens of ms on a VM (1 GiB, 1%
 * written: 38 ms): in pieces, the application's discards and growth wait
 * for one piece at most, and a kernel without preemption gets the core
 * back between system calls. Discards and growth in between are safe: a
 * discarded page is re-protected, so the re-arm does not find it, and a
 * grown range starts armed. */
#define REARM_PIECE (8UL << 20)

int cr_region_rearm(int (*same)(uintptr_t page, void *arg), void *arg)
{
    int rc = 0;
    for (uintptr_t off = 0;; off += REARM_PIECE) {
        pthread_mutex_lock(&R.lock);
        if (!R.open) {
            pthread_mutex_unlock(&R.lock);
            return -EBADF;
        }
        int last = off + REARM_PIECE >= R.size;
        uintptr_t lo = R.base + off, hi = last ? R.base + R.size : lo + REARM_PIECE;
        rc = R.trk.ops->rearm && lo < hi ? R.trk.ops->rearm(&R.trk, lo, hi, last, same, arg) : 0;
        pthread_mutex_unlock(&R.lock);
        if (rc || last)
            return rc;
    }
}

/* ---- header and roots ---------------------------------------------------------- */

void *cr_region_root(enum cr_root_id id)
{
    if (!cr_region_is_open() || (unsigned)id >= CR_ROOT_MAX)
        return NULL;
    return (void *)(uintptr_t)__atomic_load_n(&header()->roots[id], __ATOMIC_ACQUIRE);
}

void cr_region_set_root(enum cr_root_id id, void *p)
{
    if (!cr_region_is_open() || (unsigned)id >= CR_ROOT_MAX) {
        cr_err("cr_region_set_root(%d): region not open or bad root id", (int)id);
        return;
    }
    __atomic_store_n(&header()->roots[id], (uint64_t)(uintptr_t)p, __ATOMIC_RELEASE);
}

uintptr_t cr_region_data_start(void)
{
    return cr_region_is_open() ? R.base + CR_PAGE_SIZE : 0;
}
