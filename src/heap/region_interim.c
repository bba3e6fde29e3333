/*
 * region_interim.c - a minimal stand-in for the persistent region, compiled
 * ONLY while src/region/ has not landed in this tree (see CMakeLists.txt).
 *
 * It implements the contract of region/region.h just far enough for the heap
 * to be built and tested against it: a fixed-address PROT_NONE reservation
 * made usable by mprotect, MADV_DONTNEED discards, root slots in the header
 * page. It has no dirty tracker: "written" is approximated by residency
 * (mincore), which over-reports (a read-faulted page counts) but never
 * misses a written page, and discarded pages are reported once as zeros.
 * The real module (uffd async write-protect) replaces it automatically.
 */
#include "region/region.h"
#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define INTERIM_MAGIC 0x4352524547494f4eULL   /* "CRREGION" */

struct interim_hdr {
    uint64_t magic;
    uint64_t size;
    void    *roots[CR_ROOT_MAX];
};

static struct {
    pthread_mutex_t lock;
    uintptr_t base;
    size_t max, size;
    uint8_t *zeroed;          /* per page: discarded since the last collection */
    int open;
} R = { .lock = PTHREAD_MUTEX_INITIALIZER };

int cr_region_open(const struct cr_region_params *p)
{
    const struct cr_config *cfg = cr_config();
    uintptr_t base = p && p->base ? p->base : cfg->region_base;
    size_t max = p && p->max_size ? p->max_size : cfg->region_max;
    if (R.open)
        return -EBUSY;
    if (!max || base % CR_PAGE_SIZE)
        return -EINVAL;
    max = cr_align_up(max, CR_PAGE_SIZE);
    void *m = mmap((void *)base, max, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        cr_perr("mmap(%#lx, %zu) for the region", (unsigned long)base, max);
        return e == EEXIST ? CR_ECOLLISION : -e;
    }
    if ((uintptr_t)m != base) {
        munmap(m, max);
        cr_err("region: kernel ignored MAP_FIXED_NOREPLACE at %#lx", (unsigned long)base);
        return CR_ECOLLISION;
    }
    R.zeroed = calloc(max / CR_PAGE_SIZE, 1);
    if (!R.zeroed) {
        munmap(m, max);
        return -ENOMEM;
    }
    R.base = base;
    R.max = max;
    R.size = 0;
    R.open = 1;
    int rc = cr_region_grow(CR_PAGE_SIZE);
    if (rc) {
        cr_region_close();
        return rc;
    }
    struct interim_hdr *h = (void *)base;
    if (h->magic != INTERIM_MAGIC) {
        h->magic = INTERIM_MAGIC;
        h->size = R.size;
    }
    return 0;
}

int cr_region_close(void)
{
    if (!R.open)
        return -EBADF;
    munmap((void *)R.base, R.max);
    free(R.zeroed);
    R.zeroed = NULL;
    R.open = 0;
    return 0;
}

int cr_region_is_open(void) { return R.open; }
void *cr_region_base(void) { return (void *)R.base; }
size_t cr_region_size(void) { return R.size; }
size_t cr_region_max(void) { return R.max; }
const char *cr_region_tracker_name(void) { return "interim-mincore"; }

int cr_region_contains(const void *p, size_t len)
{
    uintptr_t a = (uintptr_t)p;
    return R.open && a >= R.base && len <= R.size && a - R.base <= R.size - len;
}

int cr_region_grow(size_t new_size)
{
    int rc = 0;
    pthread_mutex_lock(&R.lock);
    if (new_size > R.max) {
        rc = -ENOMEM;
        goto unlock;
    }
    size_t want = CR_MIN(cr_align_up(new_size, CR_REGION_CHUNK), R.max);
    if (want > R.size) {
        if (mprotect((void *)(R.base + R.size), want - R.size, PROT_READ | PROT_WRITE)) {
            rc = cr_neg_errno();
            cr_perr("mprotect(%#lx, %zu) growing the region",
                    (unsigned long)(R.base + R.size), want - R.size);
            goto unlock;
        }
        R.size = want;
        if (R.size >= CR_PAGE_SIZE)
            ((struct interim_hdr *)R.base)->size = R.size;
    }
unlock:
    pthread_mutex_unlock(&R.lock);
    return rc;
}

int cr_region_discard(void *addr, size_t len)
{
    uintptr_t a = (uintptr_t)addr;
    if (a % CR_PAGE_SIZE || len % CR_PAGE_SIZE || !cr_region_contains(addr, len))
        return -EINVAL;
    if (madvise(addr, len, MADV_DONTNEED)) {
        int rc = cr_neg_errno();
        cr_perr("madvise(%p, %zu, MADV_DONTNEED)", addr, len);
        return rc;
    }
    memset(R.zeroed + (a - R.base) / CR_PAGE_SIZE, 1, len / CR_PAGE_SIZE);
    return 0;
}

/* Walk the usable pages, grouping runs of the same kind (0 none, 1 present,
 * 2 zeroed) into extents. */
static int walk(cr_extent_fn fn, void *arg, int with_zero)
{
    size_t n = R.size / CR_PAGE_SIZE;
    unsigned char *vec = malloc(n ? n : 1);
    if (!vec)
        return -ENOMEM;
    if (mincore((void *)R.base, R.size, vec)) {
        int rc = cr_neg_errno();
        cr_perr("mincore(%#lx, %zu)", (unsigned long)R.base, R.size);
        free(vec);
        return rc;
    }
    int rc = 0;
    size_t i = 0;
    while (i < n && !rc) {
        int kind = (vec[i] & 1) ? 1 : (with_zero && R.zeroed[i]) ? 2 : 0;
        size_t j = i + 1;
        while (j < n && ((vec[j] & 1) ? 1 : (with_zero && R.zeroed[j]) ? 2 : 0) == kind)
            j++;
        if (kind && fn) {
            struct cr_extent e = { R.base + i * CR_PAGE_SIZE, (j - i) * CR_PAGE_SIZE,
                                   kind == 2 ? CR_EXTENT_ZERO : 0 };
            rc = fn(&e, arg);
        }
        i = j;
    }
    free(vec);
    return rc;
}

int cr_region_collect(cr_extent_fn fn, void *arg)
{
    pthread_mutex_lock(&R.lock);
    int rc = walk(fn, arg, 1);
    memset(R.zeroed, 0, R.max / CR_PAGE_SIZE);
    pthread_mutex_unlock(&R.lock);
    return rc;
}

int cr_region_collect_populated(cr_extent_fn fn, void *arg)
{
    pthread_mutex_lock(&R.lock);
    int rc = walk(fn, arg, 0);
    pthread_mutex_unlock(&R.lock);
    return rc;
}

void *cr_region_root(enum cr_root_id id)
{
    if (!R.open || (unsigned)id >= CR_ROOT_MAX)
        return NULL;
    return ((struct interim_hdr *)R.base)->roots[id];
}

void cr_region_set_root(enum cr_root_id id, void *p)
{
    if (R.open && (unsigned)id < CR_ROOT_MAX)
        ((struct interim_hdr *)R.base)->roots[id] = p;
}

uintptr_t cr_region_data_start(void) { return R.base + CR_PAGE_SIZE; }
