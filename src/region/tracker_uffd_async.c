/*
 * tracker_uffd_async.c - dirty tracking by userfaultfd asynchronous
 * write-protection and PAGEMAP_SCAN (Linux >= 6.7). The default tracker.
 *
 * The usable range is registered with a userfaultfd in WP mode, with
 * UFFD_FEATURE_WP_ASYNC (the kernel resolves a write to a protected page by
 * itself, clearing the page's uffd-wp bit: no handler, no thread, no signal)
 * and UFFD_FEATURE_WP_UNPOPULATED (never-touched pages carry a WP marker, so
 * their first write is tracked like any other; reads map the zero page
 * still protected and are not reported). A collection is one ioctl per
 * batch: PAGEMAP_SCAN with category PAGE_IS_WRITTEN returns the extents
 * whose uffd-wp bit is clear, and PM_SCAN_WP_MATCHING write-protects
 * exactly those pages again under the page-table lock, so a concurrent
 * write either happened before (reported now) or faults afterwards (reported
 * next time). PM_SCAN_CHECK_WPASYNC makes the kernel refuse the scan if the
 * range were not async-WP registered, instead of silently reporting nothing.
 *
 * When the output vector fills up, the kernel stops at walk_end (having
 * re-armed only what it returned) and we continue from there; the vector
 * passed is at most the kernel's own walk buffer, or walk_end can point
 * back to where that buffer first filled (cr_pagemap_scan).
 *
 * MADV_DONTNEED on an anonymous range drops the ptes together with their WP
 * markers, so discard() re-protects the range: the dropped pages read as
 * zeros, are not written, and their next write is tracked again.
 *
 * Every pte of an armed range is visited by every scan, written or not:
 * the markers give never-touched pages page tables. Leaving new ranges
 * unarmed does not help: on 6.18 an empty pte, and a range with no page
 * table at all, of a WP_UNPOPULATED registration read as written (checked
 * here). Ranges the caller keeps empty are fenced instead
 * (cr_region_fence): every walk skips [fence_lo, fence_hi).
 *
 * "Populated" (written at some time, not discarded since) cannot be read
 * from the page tables exactly: a WP marker on a never-touched page is
 * reported as PAGE_IS_SWAPPED just like a page that really was swapped out.
 * So we keep a populated bitmap, fed by every collection and by a
 * non-re-arming scan in collect_populated().
 *
 * Deferred re-arming (snapshot/rearm): on paravirtualised VMs re-arming can
 * be the costly part of a collection (PM_SCAN_WP_MATCHING flushes the TLB
 * of every 2 MiB block it changed; where each flush was a hypercall, 2621
 * scattered pages of 1 GiB took 9 ms against 0.3 ms for the scan alone;
 * perf/region/run.sh times both halves on the machine at hand). A snapshot
 * only scans; the re-arm runs later while the
 * application writes again, so it cannot tell a page written before the
 * snapshot from one written after. It re-arms each written page first and
 * then asks the caller whether the contents still equal the snapshot's
 * (the caller kept a copy): a write before the re-arm shows in the
 * contents, a write after it is tracked again. Pages that differ go into
 * the `carry` bitmap, which the next collection reports with what it scans.
 */
#include "tracker.h"
#include "page_bitmap.h"
#include "uffd_sys.h"
#include "common/errors.h"
#include "common/log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define WANT_FEATURES (CR_UFFD_FEATURE_PAGEFAULT_FLAG_WP | CR_UFFD_FEATURE_WP_ASYNC | \
                       CR_UFFD_FEATURE_WP_UNPOPULATED)

/* Output vector length; overridable for tests of the walk_end loop. */
#define DEFAULT_VEC_LEN 4096

struct async_state {
    int uffd;
    int user_mode_only;
    int pagemap;
    struct cr_page_region *vec;
    size_t vec_len;
    struct cr_page_bitmap populated;
    struct cr_page_bitmap carry;   /* written since the last collection but
                                      re-armed by a deferred re-arm      */
    int carry_any;                 /* some carry bit may be set          */
    int owed;                      /* a snapshot's re-arm is still owed  */
    unsigned warned_overlap;       /* repeated regions seen (warned once) */
    uintptr_t fence_lo, fence_hi;  /* skipped by every walk (cr_region_fence) */
};

static int async_probe(const char **why)
{
    int fd = cr_uffd_open(WANT_FEATURES, 1, why);
    if (fd < 0)
        return fd;
    close(fd);
    /* PAGEMAP_SCAN appeared with WP_ASYNC, but check it (ENOTTY if absent). */
    int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pm < 0) {
        *why = "cannot open /proc/self/pagemap";
        return -errno;
    }
    void *p = mmap(NULL, CR_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int rc = 0;
    if (p == MAP_FAILED) {
        rc = -errno;
        *why = "mmap of a probe page failed";
    } else {
        struct cr_page_region r;
        struct cr_pm_scan s = { .start = (uintptr_t)p, .end = (uintptr_t)p + CR_PAGE_SIZE,
                                .category_anyof_mask = CR_PAGE_IS_PRESENT,
                                .return_mask = CR_PAGE_IS_PRESENT, .vec = &r, .vec_len = 1 };
        long n = cr_pagemap_scan(pm, &s);
        if (n < 0) {
            rc = (int)n;
            *why = "kernel lacks the PAGEMAP_SCAN ioctl (needs Linux >= 6.7)";
        }
        munmap(p, CR_PAGE_SIZE);
    }
    close(pm);
    return rc;
}

static int async_init(struct cr_tracker *t)
{
    const char *why = NULL;
    struct async_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int rc = cr_uffd_open_ex(WANT_FEATURES, 1, &why, &s->user_mode_only);
    if (rc < 0) {
        cr_errc(rc, "uffd-async: %s", why);
        goto free_state;
    }
    s->uffd = rc;
    rc = cr_pagemap_open();
    if (rc < 0)
        goto close_uffd;
    s->pagemap = rc;
    s->vec_len = DEFAULT_VEC_LEN;
    const char *env = getenv("CRMPI_TEST_SCAN_VEC");   /* tests: exercise walk_end */
    if (env && atoi(env) > 0)
        s->vec_len = (size_t)atoi(env);
    s->vec = calloc(s->vec_len, sizeof *s->vec);
    if (!s->vec) {
        rc = -ENOMEM;
        goto close_pagemap;
    }
    rc = cr_page_bitmap_init(&s->populated, t->base, t->max);
    if (rc < 0)
        goto free_vec;
    rc = cr_page_bitmap_init(&s->carry, t->base, t->max);
    if (rc < 0)
        goto free_populated;
    t->priv = s;
    return 0;

free_populated:
    cr_page_bitmap_fini(&s->populated);
free_vec:
    free(s->vec);
close_pagemap:
    close(s->pagemap);
close_uffd:
    close(s->uffd);
free_state:
    free(s);
    return rc;
}

static int async_add_range(struct cr_tracker *t, uintptr_t addr, size_t len)
{
    struct async_state *s = t->priv;
    int rc = cr_uffd_register_wp(s->uffd, addr, len);
    if (rc < 0)
        return rc;
    /* Arm: with WP_UNPOPULATED this installs markers on the empty ptes. */
    return cr_uffd_wp(s->uffd, addr, len, 1, 0);
}

/* One walk over [start, end): each returned region is handed to fn after
 * marking it populated. rearm selects the collecting (re-protecting) scan. */
static int async_walk(struct async_state *s, uintptr_t start, uintptr_t end, int rearm,
                      cr_extent_fn fn, void *arg)
{
    uintptr_t at = start, reported = start;   /* end of what fn has had */
    while (at < end) {
        if (at >= s->fence_lo && at < s->fence_hi) {   /* nothing there, by contract */
            at = s->fence_hi;
            continue;
        }
        uintptr_t stop = at < s->fence_lo && s->fence_lo < end ? s->fence_lo : end;
        struct cr_pm_scan sc = {
            .flags = rearm ? CR_PM_SCAN_WP_MATCHING | CR_PM_SCAN_CHECK_WPASYNC : 0,
            .start = at, .end = stop,
            .category_mask = CR_PAGE_IS_WRITTEN, .return_mask = CR_PAGE_IS_WRITTEN,
            .vec = s->vec, .vec_len = s->vec_len,
        };
        long n = cr_pagemap_scan(s->pagemap, &sc);
        if (n < 0) {
            cr_errc((int)n, "PAGEMAP_SCAN of [%#lx, %#lx) failed", (unsigned long)at,
                    (unsigned long)end);
            return (int)n;
        }
        /* Regions come in address order, each past the last. A region that
         * starts before what fn already had means walk_end went backwards
         * (cr_pagemap_scan caps the vector so that it does not): its
         * repeated part is cut off, so no page is reported twice, and, as
         * the kernel re-armed it again just now, carried to the next
         * collection, so a write between the two passes is not lost.
         * (test_region reaches this through a wrapped cr_pagemap_scan.) */
        long kept = 0;
        for (long i = 0; i < n; i++) {
            struct cr_page_region v = s->vec[i];
            if (v.start < reported) {
                uintptr_t cut = v.end < reported ? v.end : reported;
                if (!s->warned_overlap++)
                    cr_warn("PAGEMAP_SCAN returned [%#lx, %#lx) again; %s",
                            (unsigned long)v.start, (unsigned long)cut,
                            rearm ? "carried to the next collection" : "reported once");
                if (rearm) {
                    cr_page_bitmap_set_range(&s->carry, v.start, cut - v.start);
                    s->carry_any = 1;
                }
                v.start = cut;
            }
            if (v.start >= v.end)
                continue;
            reported = v.end;
            cr_page_bitmap_set_range(&s->populated, v.start, v.end - v.start);
            s->vec[kept++] = v;
        }
        n = kept;
        for (long i = 0; fn && i < n; i++) {
            struct cr_extent e = { s->vec[i].start, s->vec[i].end - s->vec[i].start, 0 };
            int rc = fn(&e, arg);
            if (rc)
                return rc;
        }
        if (sc.walk_end <= at) {
            cr_err("PAGEMAP_SCAN made no progress at %#lx", (unsigned long)at);
            return -EIO;
        }
        at = sc.walk_end;
    }
    return 0;
}

/* ---- deferred re-arming ------------------------------------------------------- */

static int fold_carry(const struct cr_extent *e, void *arg)
{
    struct async_state *s = arg;
    cr_page_bitmap_set_range(&s->carry, e->addr, e->len);
    s->carry_any = 1;
    return 0;
}

struct rearm_ctx {
    struct async_state *s;
    int (*same)(uintptr_t page, void *arg);
    void *arg;
};

/* A page just re-armed: carried unless its contents equal the snapshot's. */
static int rearm_extent(const struct cr_extent *e, void *arg)
{
    struct rearm_ctx *c = arg;
    for (uintptr_t p = e->addr; p < e->addr + e->len; p += CR_PAGE_SIZE)
        if (!c->same || !c->same(p, c->arg)) {
            cr_page_bitmap_set(&c->s->carry, p);
            c->s->carry_any = 1;
        }
    return 0;
}

static int async_rearm(struct cr_tracker *t, uintptr_t start, uintptr_t end, int last,
                       int (*same)(uintptr_t page, void *arg), void *arg)
{
    struct async_state *s = t->priv;
    if (!s->owed)
        return 0;
    struct rearm_ctx c = { s, same, arg };
    /* On failure the re-arm stays owed: the pages not re-armed yet still
     * read as written, and the next collection re-arms and reports them. */
    int rc = async_walk(s, start, end, 1, rearm_extent, &c);
    if (rc == 0 && last)
        s->owed = 0;
    return rc;
}

/* A whole re-arm, in one piece (nothing runs meanwhile). */
static int rearm_all(struct cr_tracker *t, uintptr_t start, uintptr_t end)
{
    return async_rearm(t, start, end, 1, NULL, NULL);
}

/* Report the carried pages with the scanned ones, in address order. */
static int report_carry(struct async_state *s, uintptr_t start, uintptr_t end, int clear,
                        cr_extent_fn fn, void *arg)
{
    int rc = fn ? cr_page_bitmap_report_union(&s->carry, NULL, start, end, fn, arg) : 0;
    if (rc == 0 && clear) {
        cr_page_bitmap_clear_range(&s->carry, start, end - start);
        s->carry_any = 0;
    }
    return rc;
}

static int async_collect(struct cr_tracker *t, uintptr_t start, uintptr_t end,
                         cr_extent_fn fn, void *arg)
{
    struct async_state *s = t->priv;
    int rc = rearm_all(t, start, end);
    if (rc)
        return rc;
    if (!s->carry_any)
        return async_walk(s, start, end, 1, fn, arg);
    rc = async_walk(s, start, end, 1, fold_carry, s);
    return rc ? rc : report_carry(s, start, end, 1, fn, arg);
}

static int async_peek(struct cr_tracker *t, uintptr_t start, uintptr_t end,
                      cr_extent_fn fn, void *arg)
{
    struct async_state *s = t->priv;
    if (!s->carry_any)
        return async_walk(s, start, end, 0, fn, arg);
    /* Folding written pages into carry changes nothing: they are reported
     * by the next collection either way. */
    int rc = async_walk(s, start, end, 0, fold_carry, s);
    return rc ? rc : report_carry(s, start, end, 0, fn, arg);
}

static int async_snapshot(struct cr_tracker *t, uintptr_t start, uintptr_t end, int full,
                          cr_extent_fn fn, void *arg)
{
    struct async_state *s = t->priv;
    int rc = rearm_all(t, start, end);
    if (rc == 0)
        rc = async_walk(s, start, end, 0, fold_carry, s);
    if (rc)
        return rc;
    /* A full snapshot saves every populated page, the carried ones with
     * them (written pages are populated; discard clears both bits). */
    if (full)
        rc = fn ? cr_page_bitmap_report_union(&s->populated, NULL, start, end, fn, arg) : 0;
    else
        rc = report_carry(s, start, end, 0, fn, arg);
    if (rc)
        return rc;
    cr_page_bitmap_clear_range(&s->carry, start, end - start);
    s->carry_any = 0;
    s->owed = 1;
    return 0;
}

static int async_collect_populated(struct cr_tracker *t, uintptr_t start, uintptr_t end,
                                   cr_extent_fn fn, void *arg)
{
    struct async_state *s = t->priv;
    /* Pages written since the last collection are populated too: fold them
     * into the bitmap without re-arming, then report the bitmap. */
    int rc = async_walk(s, start, end, 0, NULL, NULL);
    if (rc)
        return rc;
    return cr_page_bitmap_report_union(&s->populated, NULL, start, end, fn, arg);
}

static int async_discard(struct cr_tracker *t, uintptr_t addr, size_t len)
{
    struct async_state *s = t->priv;
    cr_page_bitmap_clear_range(&s->populated, addr, len);
    cr_page_bitmap_clear_range(&s->carry, addr, len);
    return cr_uffd_wp(s->uffd, addr, len, 1, 0);
}

/* Missing mode for a lazy restore, on our own fd (a range can be
 * registered with one userfaultfd only). Async WP keeps working meanwhile:
 * only missing faults reach the fd. A user-mode-only fd cannot serve
 * faults the kernel takes on our behalf (read(2) into a missing page). */
static int async_missing_begin(struct cr_tracker *t, uintptr_t start, uintptr_t end, int *uffd)
{
    struct async_state *s = t->priv;
    if (s->user_mode_only)
        return -ENOTSUP;
    int rc = cr_uffd_register_missing_wp(s->uffd, start, end - start);
    if (rc == 0)
        *uffd = s->uffd;
    return rc;
}

/* Pages filled by UFFDIO_COPY carry no uffd-wp bit, i.e. read as written:
 * fold them into the populated bitmap first (nothing runs, so nothing is
 * missed), then re-register in WP mode only (unregistering clears every
 * uffd-wp bit) and arm the whole range again, as after a collection. */
static int async_missing_end(struct cr_tracker *t, uintptr_t start, uintptr_t end)
{
    struct async_state *s = t->priv;
    int rc = async_walk(s, start, end, 0, NULL, NULL);
    if (rc == 0)
        rc = cr_uffd_unregister(s->uffd, start, end - start);
    if (rc == 0)
        rc = async_add_range(t, start, end - start);
    return rc;
}

static void async_fence(struct cr_tracker *t, uintptr_t lo, uintptr_t hi)
{
    struct async_state *s = t->priv;
    if (lo < hi) {
        cr_page_bitmap_clear_range(&s->populated, lo, hi - lo);
        cr_page_bitmap_clear_range(&s->carry, lo, hi - lo);
    }
    s->fence_lo = lo;
    s->fence_hi = hi;
}

static void async_fini(struct cr_tracker *t)
{
    struct async_state *s = t->priv;
    if (!s)
        return;
    close(s->uffd);          /* drops the registration */
    close(s->pagemap);
    free(s->vec);
    cr_page_bitmap_fini(&s->populated);
    cr_page_bitmap_fini(&s->carry);
    free(s);
    t->priv = NULL;
}

const struct cr_tracker_ops cr_tracker_uffd_async = {
    .name = "uffd-async",
    .kind = CR_TRACKER_UFFD_ASYNC,
    .probe = async_probe,
    .init = async_init,
    .add_range = async_add_range,
    .collect = async_collect,
    .peek = async_peek,
    .snapshot = async_snapshot,
    .rearm = async_rearm,
    .collect_populated = async_collect_populated,
    .discard = async_discard,
    .missing_begin = async_missing_begin,
    .missing_end = async_missing_end,
    .fence = async_fence,
    .fini = async_fini,
};
