/*
 * staging.c - the staging buffer of asynchronous checkpoints: where the
 * blocking phase copies the dirty extents so the application can run on
 * while the background writer saves them.
 *
 * One anonymous mapping per process, outside the persistent region (so it
 * is neither tracked nor checkpointed, and restoring never overwrites it),
 * kept from one checkpoint to the next. It is populated when it is mapped
 * (MAP_POPULATE): on these virtual machines the first touch of a page costs
 * far more than copying it (a cold 1 GiB memcpy takes ~1 s, a warm one
 * ~50 ms), so the cost is paid once, when the buffer grows, and never
 * again. Growth at least doubles, so a slowly rising dirty set does not
 * remap at every checkpoint. CRMPI_STAGING_MAX bounds it; a checkpoint
 * whose dirty bytes do not fit (or whose buffer cannot be had) is written
 * synchronously instead. MADV_DONTFORK keeps the buffer out of fork()
 * children: it would only make fork() copy more page tables, and a child
 * has no writer that could use it.
 *
 * The staged copy is also the reference of a deferred re-arm (see
 * cr_region_snapshot): the blocking phase only scans for written pages, and
 * the writer re-arms them afterwards, keeping for the next epoch those whose
 * contents no longer equal their staged copy (written after the snapshot).
 */
#include "exec/exec.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "common/config.h"
#include "common/log.h"
#include "region/region.h"

static struct {
    void *buf;
    size_t cap;
} S;

/* Against the whole reserved range, not only its usable part: the region
 * grows into the rest. */
static int outside_region(const void *p, size_t len)
{
    uintptr_t lo = cr_config()->region_base, hi = lo + cr_config()->region_max;
    uintptr_t a = (uintptr_t)p;
    return a + len <= lo || a >= hi;
}

void *cr_staging_get(size_t bytes)
{
    size_t max = cr_config()->staging_max;
    if (bytes <= S.cap)
        return S.buf;
    if (bytes > max)
        return NULL;
    size_t cap = S.cap * 2 > bytes ? S.cap * 2 : bytes;
    if (cap > max)
        cap = max;
    cap = (cap + CR_PAGE_SIZE - 1) & ~(size_t)(CR_PAGE_SIZE - 1);
    if (S.buf)
        munmap(S.buf, S.cap);
    S.buf = NULL;
    S.cap = 0;
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        cr_warn("cannot map a %zu-byte checkpoint staging buffer (%s): writing this "
                "checkpoint synchronously", cap, strerror(errno));
        return NULL;
    }
    if (!outside_region(p, cap)) {
        /* Impossible while the region reserves its whole range; refuse
         * rather than stage into tracked memory. */
        cr_err("staging buffer %p+%zu lies in the persistent region", p, cap);
        munmap(p, cap);
        return NULL;
    }
    if (madvise(p, cap, MADV_DONTFORK) != 0)
        cr_dbg("madvise(MADV_DONTFORK) on the staging buffer: %s", strerror(errno));
    S.buf = p;
    S.cap = cap;
    cr_dbg("checkpoint staging buffer: %zu bytes", cap);
    return p;
}

size_t cr_staging_size(void)
{
    return S.cap;
}

void cr_staging_forget(void)
{
    /* fork() child: the mapping was not inherited (MADV_DONTFORK). */
    S.buf = NULL;
    S.cap = 0;
}

/* ---- re-arming against what the epoch saves --------------------------------- */

struct staged_ref {
    const struct cr_extent *ext;
    size_t n;
    const uint8_t *data;         /* NULL: membership only */
    size_t i;                    /* cursor: the re-arm visits pages in address order */
    size_t off;                  /* offset of ext[i]'s bytes in data */
};

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
/* This runs on the writer thread while the application runs on, so the
 * sanitizers' view of these pages is not the comparison's:
 * - the application may be writing the page while we read it (any write
 *   after its re-arm is tracked, so the outcome does not matter): a race by
 *   design, which ThreadSanitizer would report through memcmp;
 * - a page of a persistent stack carries AddressSanitizer's redzones of the
 *   frames live on it now (the checkpoint opened them, the running
 *   application poisoned them again), and the comparison is of raw bytes.
 * Hence a plain loop the sanitizers leave alone. */
__attribute__((no_sanitize("address", "thread"))) static int page_equal(const void *a,
                                                                        const void *b)
{
    const volatile uint64_t *x = a, *y = b;
    for (size_t k = 0; k < CR_PAGE_SIZE / sizeof *x; k++)
        if (x[k] != y[k])
            return 0;
    return 1;
}
#else
static int page_equal(const void *a, const void *b) { return memcmp(a, b, CR_PAGE_SIZE) == 0; }
#endif

static int staged_same(uintptr_t page, void *arg)
{
    struct staged_ref *r = arg;
    if (r->i < r->n && page < r->ext[r->i].addr) {   /* not in order: start over */
        r->i = 0;
        r->off = 0;
    }
    while (r->i < r->n && r->ext[r->i].addr + r->ext[r->i].len <= page) {
        if (!(r->ext[r->i].flags & CR_EXTENT_ZERO))
            r->off += r->ext[r->i].len;
        r->i++;
    }
    if (r->i == r->n || page < r->ext[r->i].addr)
        return 0;                /* first written after the snapshot */
    const struct cr_extent *e = &r->ext[r->i];
    if (e->flags & CR_EXTENT_ZERO)
        return 0;                /* discarded before it, written after */
    if (!r->data)
        return 1;
    return page_equal((const void *)page, r->data + r->off + (page - e->addr));
}

int cr_staging_rearm(const struct cr_extent *ext, size_t n, const uint8_t *data)
{
    struct staged_ref r = { ext, n, data, 0, 0 };
    int rc = cr_region_rearm(staged_same, &r);
    if (rc)
        cr_errc(rc, "cannot re-arm dirty-page tracking after a checkpoint");
    return rc;
}
