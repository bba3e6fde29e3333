/*
 * store_helpers.c - see store_helpers.h.
 */
#include "store_helpers.h"
#include "common/crc32c.h"
#include "common/errors.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 0: not in the epoch, 1: written, 2: zeroed. Full epochs take every page,
 * in runs of at most 16 pages so there are several extents. */
static int kind(int full, const uint8_t *dirty, const uint8_t *zeroed, size_t p)
{
    if (full)
        return 1;
    if (zeroed && zeroed[p])
        return 2;
    return dirty && dirty[p] ? 1 : 0;
}

static size_t collect(const struct th_mem *m, int full, const uint8_t *dirty,
                      const uint8_t *zeroed, struct cr_extent *x)
{
    size_t n = 0;
    for (size_t p = 0; p < m->npages;) {
        int k = kind(full, dirty, zeroed, p);
        size_t q = p + 1;
        while (k && q < m->npages && q - p < 16 && kind(full, dirty, zeroed, q) == k)
            q++;
        if (k)
            x[n++] = (struct cr_extent){ TH_BASE + p * CR_PAGE_SIZE, (q - p) * CR_PAGE_SIZE,
                                         k == 2 ? CR_EXTENT_ZERO : 0 };
        p = q;
    }
    return n;
}

void th_thread_record(size_t i, uint64_t epoch, struct cr_thread_record *t)
{
    memset(t, 0, sizeof *t);
    t->tid = (uint32_t)i;
    t->state = i % 2 ? CR_THREAD_FINISHED : CR_THREAD_RUNNING;
    t->stack_lo = 0x7000000 + i * 0x10000;
    t->stack_hi = t->stack_lo + 0x10000;
    t->retval = epoch * 1000 + i;
    for (size_t k = 0; k < CR_CTX_BLOB; k++)
        t->ctx[k] = (uint8_t)(k + i + epoch);
}

int th_batched_puts;

/* The background writer's way: non-zero extents copied back to back. */
static int put_staged(struct cr_epoch *ep, const struct th_mem *m, const struct cr_extent *x,
                      size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += x[i].flags & CR_EXTENT_ZERO ? 0 : x[i].len;
    uint8_t *staged = malloc(bytes + 1), *p = staged;
    if (!staged)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(x[i].flags & CR_EXTENT_ZERO)) {
            memcpy(p, m->buf + (x[i].addr - TH_BASE), x[i].len);
            p += x[i].len;
        }
    const uint8_t *src = staged;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;)
        rc = cr_epoch_put_batch(ep, &i, &src);
    if (rc == 0 && src != staged + bytes)
        rc = -EIO;                       /* not every staged byte was consumed */
    free(staged);
    return rc;
}

int th_write_epoch(struct cr_store *st, const struct th_mem *m, int full,
                   const uint8_t *dirty, const uint8_t *zeroed, size_t nthreads,
                   uint64_t *epoch)
{
    struct cr_extent *x = calloc(m->npages + 1, sizeof *x);
    struct cr_thread_record *t = calloc(nthreads + 1, sizeof *t);
    size_t n = collect(m, full, dirty, zeroed, x);
    struct cr_epoch *ep;
    struct cr_epoch_desc d = { .full = full, .region_base = TH_BASE,
        .region_size = m->npages * CR_PAGE_SIZE, .nextents = n, .extents = x,
        .nthreads = nthreads, .threads = t };
    uint64_t next = 0;
    for (uint32_t i = 0; i < st->ix.n; i++)
        next = CR_MAX(next, st->ix.e[i].epoch);
    for (size_t i = 0; i < nthreads; i++)
        th_thread_record(i, next + 1, &t[i]);
    int rc = cr_epoch_begin(st, &d, &ep);
    if (rc < 0)
        goto out;
    if (epoch)
        *epoch = cr_epoch_number(ep);
    int local = th_batched_puts ? put_staged(ep, m, x, n) : 0;
    for (size_t i = 0; i < n && !local && !th_batched_puts; i++)
        local = cr_epoch_put(ep, i, x[i].flags & CR_EXTENT_ZERO ? NULL :
                             m->buf + (x[i].addr - TH_BASE));
    if (!local)
        local = cr_epoch_finish(ep);
    rc = cr_epoch_commit(st, ep, local);
out:
    free(x);
    free(t);
    return rc;
}

struct target { uint8_t *out; size_t npages; };

static void *t_map(void *arg, uintptr_t addr, size_t len)
{
    struct target *t = arg;
    if (addr < TH_BASE || addr + len > TH_BASE + t->npages * CR_PAGE_SIZE)
        return NULL;
    return t->out + (addr - TH_BASE);
}

static int t_zero(void *arg, uintptr_t addr, size_t len)
{
    void *p = t_map(arg, addr, len);
    if (!p)
        return -EFAULT;
    memset(p, 0, len);
    return 0;
}

int th_restore(struct cr_store *st, uint64_t epoch, uint8_t *out, size_t npages,
               struct cr_restore_info *info, struct cr_thread_record *threads, size_t nthr)
{
    struct cr_restore *r;
    struct target tg = { out, npages };
    struct cr_restore_target t = { t_map, t_zero, &tg, NULL };
    memset(out, 0xEE, npages * CR_PAGE_SIZE);
    int rc = cr_restore_open(st, epoch, &r);
    if (rc < 0)
        return rc;
    if (info)
        cr_restore_info(r, info);
    /* The region starts out zero-filled: only written pages are in epochs. */
    memset(out, 0, npages * CR_PAGE_SIZE);
    rc = cr_restore_pages_to(r, &t);
    if (rc == 0 && threads)
        rc = cr_restore_threads(r, threads, nthr);
    cr_restore_close(r);
    return rc;
}

int th_restore_retry(struct cr_store *st, uint8_t *out, size_t npages, struct cr_restore_info *info)
{
    int rc = th_restore(st, 0, out, npages, info, NULL, 0);
    if (rc == CR_ECORRUPT)
        rc = th_restore(st, 0, out, npages, info, NULL, 0);
    return rc;
}

int th_flip(const char *path, uint64_t off, uint8_t mask)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    if (fd < 0)
        return -1;
    int rc = pread(fd, &b, 1, (off_t)off) == 1 ? 0 : -1;
    b ^= mask;
    if (rc == 0)
        rc = pwrite(fd, &b, 1, (off_t)off) == 1 ? 0 : -1;
    close(fd);
    return rc;
}

int th_truncate(const char *path, uint64_t size)
{
    return truncate(path, (off_t)size);
}

uint64_t th_file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

int th_edit_header(const char *path, void (*fn)(struct cr_epoch_header *h, char *id, void *arg),
                   void *arg)
{
    struct cr_epoch_header h;
    int fd = open(path, O_RDWR);
    if (fd < 0 || pread(fd, &h, sizeof h, 0) != sizeof h)
        return -1;
    char *id = calloc(1, h.identity_len + 1);
    if (pread(fd, id, h.identity_len, sizeof h) != (ssize_t)h.identity_len)
        return -1;
    fn(&h, id, arg);
    h.crc = 0;
    h.crc = cr_crc32c(cr_crc32c(0, &h, sizeof h), id, h.identity_len);
    int rc = pwrite(fd, &h, sizeof h, 0) == sizeof h &&
             pwrite(fd, id, h.identity_len, sizeof h) == (ssize_t)h.identity_len ? 0 : -1;
    free(id);
    close(fd);
    return rc;
}

uint64_t th_ds_offset(const char *path, enum cr_ds_id ds)
{
    struct cr_epoch_header h;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, &h, sizeof h, 0);
    close(fd);
    return n == sizeof h ? h.ds[ds].offset : 0;
}

int th_edit_identity(const char *path, uint32_t r, void (*fn)(char *id, void *arg), void *arg)
{
    struct cr_epoch_header h;
    struct cr_rank_row row;
    int fd = open(path, O_RDWR);
    if (fd < 0 || pread(fd, &h, sizeof h, 0) != sizeof h)
        return -1;
    uint64_t roff = h.ds[CR_DS_ID_RANKS].offset + r * sizeof row;
    if (pread(fd, &row, sizeof row, (off_t)roff) != sizeof row)
        return -1;
    char *id = calloc(1, row.identity_len + 1);
    uint64_t ioff = h.ds[CR_DS_ID_IDENT].offset + row.identity_offset;
    if (pread(fd, id, row.identity_len, (off_t)ioff) != (ssize_t)row.identity_len)
        return -1;
    fn(id, arg);
    row.identity_crc = cr_crc32c(0, id, row.identity_len);
    row.crc = cr_record_crc(&row, sizeof row);
    int rc = pwrite(fd, id, row.identity_len, (off_t)ioff) == (ssize_t)row.identity_len &&
             pwrite(fd, &row, sizeof row, (off_t)roff) == sizeof row ? 0 : -1;
    free(id);
    close(fd);
    return rc;
}
