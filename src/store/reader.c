/*
 * reader.c - reading epoch files as hostile input, with pread only.
 *
 * Nothing read from disk is trusted: the header in the user block must
 * carry our magic, version and a matching CRC before any field is used;
 * every dataset location must lie inside the file as it is now (a
 * truncated file is caught here, before any read past its end); every
 * record's CRC is checked before its fields are; every count, row number
 * and offset is checked against the dataset it indexes, with overflow in
 * mind. Each failure is logged naming the file, epoch, rank, dataset and
 * offset, and returns CR_EFORMAT (not ours / another version) or
 * CR_ECORRUPT. HDF5 is never used to read: it is not built to survive
 * malicious bytes, and the restart path must not depend on it.
 */
#include "store/internal.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const ds_names[CR_DS_COUNT] = { CR_DS_PAGES, CR_DS_INDEX, CR_DS_THREADS,
                                                   CR_DS_RANKS, CR_DS_IDENT };
static const size_t ds_row[CR_DS_COUNT] = { 1, sizeof(struct cr_index_row),
    sizeof(struct cr_thread_row), sizeof(struct cr_rank_row), 1 };

int cr_pread_full(int fd, void *buf, size_t n, uint64_t off, const char *path, const char *what)
{
    char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, CR_MIN(n, (size_t)1 << 30), (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int rc = cr_neg_errno();
            cr_errc(rc, "pread(%s, %s, %zu bytes at offset %llu)", path, what, n,
                    (unsigned long long)off);
            return rc;
        }
        if (r == 0) {
            cr_err("%s: truncated: %s ends at offset %llu, %zu bytes short", path, what,
                   (unsigned long long)off, n);
            return CR_ECORRUPT;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

void cr_epfile_close(struct cr_epfile *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    free(f->identity);
    f->identity = NULL;
}

static int check_header_fields(struct cr_epfile *f)
{
    const struct cr_epoch_header *h = &f->h;
    const char *p = f->path;
    if (h->nranks == 0 || h->nranks > (1u << 24) || h->page_size != CR_PAGE_SIZE ||
        h->full > 1 || (h->full != (h->parent == 0)) || h->epoch == 0 ||
        (!h->full && h->parent >= h->epoch) || !cr_is_pow2(h->slice_align)) {
        cr_err("%s: epoch header fields are inconsistent (epoch %llu parent %llu full %u "
               "ranks %u page %u)", p, (unsigned long long)h->epoch,
               (unsigned long long)h->parent, h->full, h->nranks, h->page_size);
        return CR_ECORRUPT;
    }
    for (int i = 0; i < CR_DS_COUNT; i++) {
        const struct cr_ds_loc *d = &h->ds[i];
        uint64_t end = d->offset + d->bytes;
        if (d->count > (UINT64_MAX / 2) / ds_row[i] || d->bytes != d->count * ds_row[i] ||
            (d->bytes && d->offset < h->userblock) || end < d->offset) {
            cr_err("%s: epoch %llu: dataset /%s has an impossible location (offset %llu, "
                   "%llu bytes)", p, (unsigned long long)h->epoch, ds_names[i],
                   (unsigned long long)d->offset, (unsigned long long)d->bytes);
            return CR_ECORRUPT;
        }
        if (end > f->size) {
            cr_err("%s: epoch %llu: truncated: dataset /%s needs bytes up to %llu but the "
                   "file has %llu", p, (unsigned long long)h->epoch, ds_names[i],
                   (unsigned long long)end, (unsigned long long)f->size);
            return CR_ECORRUPT;
        }
    }
    if (h->ds[CR_DS_ID_RANKS].count != h->nranks) {
        cr_err("%s: epoch %llu: /%s has %llu rows for %u ranks", p, (unsigned long long)h->epoch,
               CR_DS_RANKS, (unsigned long long)h->ds[CR_DS_ID_RANKS].count, h->nranks);
        return CR_ECORRUPT;
    }
    return 0;
}

static int read_header(struct cr_epfile *f)
{
    struct cr_epoch_header *h = &f->h;
    if (f->size < sizeof *h) {
        cr_err("%s: truncated: %llu bytes, shorter than the epoch header", f->path,
               (unsigned long long)f->size);
        return CR_ECORRUPT;
    }
    int rc = cr_pread_full(f->fd, h, sizeof *h, 0, f->path, "epoch header");
    if (rc < 0)
        return rc;
    if (memcmp(h->magic, CR_EPOCH_MAGIC, 7)) {
        cr_err("%s: not a crmpi epoch file (bad magic)", f->path);
        return CR_EFORMAT;
    }
    if (h->magic[7] != CR_EPOCH_MAGIC[7] || h->version != CR_FMT_VERSION) {
        cr_err("%s: epoch file format version %u, this library reads version %u", f->path,
               h->version, CR_FMT_VERSION);
        return CR_EFORMAT;
    }
    if (h->header_len != sizeof *h || h->identity_len > CR_IDENTITY_MAX ||
        !cr_is_pow2(h->userblock) || h->userblock < CR_USERBLOCK_MIN ||
        sizeof *h + h->identity_len > h->userblock) {
        cr_err("%s: epoch header lengths are inconsistent (header %u, identity %u, user "
               "block %u)", f->path, h->header_len, h->identity_len, h->userblock);
        return CR_ECORRUPT;
    }
    f->identity = malloc(h->identity_len + 1);
    if (!f->identity)
        return -ENOMEM;
    rc = cr_pread_full(f->fd, f->identity, h->identity_len, sizeof *h, f->path, "identity");
    if (rc < 0)
        return rc;
    f->identity[h->identity_len] = 0;
    struct cr_epoch_header z = *h;
    z.crc = 0;
    uint32_t crc = cr_crc32c(cr_crc32c(0, &z, sizeof z), f->identity, h->identity_len);
    if (crc != h->crc) {
        cr_err("%s: epoch header checksum mismatch (stored 0x%08x, computed 0x%08x): the "
               "header was damaged or never completely written", f->path, h->crc, crc);
        return CR_ECORRUPT;
    }
    return check_header_fields(f);
}

int cr_epfile_open(const char *path, struct cr_epfile *f)
{
    struct stat sb;
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        int rc = cr_neg_errno();
        cr_errc(rc, "open(%s)", path);
        return rc;
    }
    if (fstat(f->fd, &sb) < 0) {
        int rc = cr_neg_errno();
        cr_perr("fstat(%s)", path);
        cr_epfile_close(f);
        return rc;
    }
    f->size = (uint64_t)sb.st_size;
    int rc = read_header(f);
    if (rc < 0)
        cr_epfile_close(f);
    return rc;
}

static int check_rank_row(const struct cr_epfile *f, uint32_t r, const struct cr_rank_row *w)
{
    const struct cr_epoch_header *h = &f->h;
    unsigned long long ep = (unsigned long long)h->epoch;
    uint64_t off = h->ds[CR_DS_ID_RANKS].offset + (uint64_t)r * sizeof *w;
    if (cr_record_crc(w, sizeof *w) != w->crc) {
        cr_err("%s: epoch %llu rank %u: /%s row checksum mismatch at offset %llu (the rank "
               "never finished writing, or the row is damaged)", f->path, ep, r, CR_DS_RANKS,
               (unsigned long long)off);
        return CR_ECORRUPT;
    }
    const struct cr_ds_loc *ds = h->ds;
    int bad = w->rank != r ||
        w->nextents > ds[CR_DS_ID_INDEX].count ||
        w->first_extent > ds[CR_DS_ID_INDEX].count - w->nextents ||
        w->nthreads > ds[CR_DS_ID_THREADS].count ||
        w->first_thread > ds[CR_DS_ID_THREADS].count - w->nthreads ||
        w->slice_bytes > ds[CR_DS_ID_PAGES].count ||
        w->data_offset > ds[CR_DS_ID_PAGES].count - w->slice_bytes ||
        w->data_bytes > w->slice_bytes ||
        w->identity_len > CR_IDENTITY_MAX || w->identity_len > ds[CR_DS_ID_IDENT].count ||
        w->identity_offset > ds[CR_DS_ID_IDENT].count - w->identity_len ||
        w->region_base + w->region_size < w->region_base;
    if (bad) {
        cr_err("%s: epoch %llu rank %u: /%s row at offset %llu points outside the datasets",
               f->path, ep, r, CR_DS_RANKS, (unsigned long long)off);
        return CR_ECORRUPT;
    }
    return 0;
}

static int check_index_rows(const struct cr_epfile *f, const struct cr_rank_row *w,
                            const struct cr_index_row *rows)
{
    unsigned long long ep = (unsigned long long)f->h.epoch;
    uint64_t next_data = w->data_offset, prev_end = w->region_base;
    uint64_t region_end = w->region_base + w->region_size;
    for (uint64_t i = 0; i < w->nextents; i++) {
        const struct cr_index_row *x = &rows[i];
        uint64_t off = f->h.ds[CR_DS_ID_INDEX].offset + (w->first_extent + i) * sizeof *x;
        const char *why = NULL;
        if (cr_record_crc(x, sizeof *x) != x->crc)
            why = "row checksum mismatch";
        else if (x->rank != w->rank)
            why = "row belongs to another rank";
        else if ((x->addr | x->len) % CR_PAGE_SIZE || !x->len || x->addr < prev_end ||
                 x->addr + x->len < x->addr || x->addr + x->len > region_end)
            why = "extent misaligned, out of order or outside the region";
        else if (!(x->flags & CR_EXTENT_ZERO) &&
                 (x->offset != next_data || x->len > w->data_bytes - (next_data - w->data_offset)))
            why = "extent data outside the rank's slice of /pages";
        if (why) {
            cr_err("%s: epoch %llu rank %u: /%s row %llu at offset %llu: %s", f->path, ep,
                   w->rank, CR_DS_INDEX, (unsigned long long)(w->first_extent + i),
                   (unsigned long long)off, why);
            return CR_ECORRUPT;
        }
        prev_end = x->addr + x->len;
        if (!(x->flags & CR_EXTENT_ZERO))
            next_data += x->len;
    }
    if (next_data - w->data_offset != w->data_bytes) {
        cr_err("%s: epoch %llu rank %u: extents hold %llu bytes, the rank row says %llu",
               f->path, ep, w->rank, (unsigned long long)(next_data - w->data_offset),
               (unsigned long long)w->data_bytes);
        return CR_ECORRUPT;
    }
    return 0;
}

static int check_thread_rows(const struct cr_epfile *f, const struct cr_rank_row *w,
                             const struct cr_thread_row *t)
{
    for (uint64_t i = 0; i < w->nthreads; i++) {
        const char *why = cr_record_crc(&t[i], sizeof t[i]) != t[i].crc ? "checksum mismatch"
            : t[i].rank != w->rank ? "row belongs to another rank"
            : (t[i].state != CR_THREAD_RUNNING && t[i].state != CR_THREAD_FINISHED) ||
              t[i].stack_lo > t[i].stack_hi ? "impossible thread state or stack" : NULL;
        if (!why)
            continue;
        cr_err("%s: epoch %llu rank %u: /%s row %llu at offset %llu: %s",
               f->path, (unsigned long long)f->h.epoch, w->rank, CR_DS_THREADS,
               (unsigned long long)(w->first_thread + i),
               (unsigned long long)(f->h.ds[CR_DS_ID_THREADS].offset +
                                    (w->first_thread + i) * sizeof *t), why);
        return CR_ECORRUPT;
    }
    return 0;
}

int cr_epfile_rank(struct cr_epfile *f, uint32_t r, struct cr_rank_row *row,
                   struct cr_index_row **rows_out, struct cr_thread_row **threads_out)
{
    const struct cr_epoch_header *h = &f->h;
    struct cr_index_row *rows = NULL;
    struct cr_thread_row *threads = NULL;
    if (r >= h->nranks)
        return CR_ERANKS;
    int rc = cr_pread_full(f->fd, row, sizeof *row,
                           h->ds[CR_DS_ID_RANKS].offset + (uint64_t)r * sizeof *row, f->path,
                           CR_DS_RANKS);
    if (rc == 0)
        rc = check_rank_row(f, r, row);
    if (rc < 0)
        return rc;
    rows = malloc(row->nextents ? row->nextents * sizeof *rows : 1);
    threads = malloc(row->nthreads ? row->nthreads * sizeof *threads : 1);
    if (!rows || !threads) {
        rc = -ENOMEM;
        goto free_rows;
    }
    rc = cr_pread_full(f->fd, rows, row->nextents * sizeof *rows,
                       h->ds[CR_DS_ID_INDEX].offset + row->first_extent * sizeof *rows,
                       f->path, CR_DS_INDEX);
    if (rc == 0)
        rc = check_index_rows(f, row, rows);
    if (rc == 0)
        rc = cr_pread_full(f->fd, threads, row->nthreads * sizeof *threads,
                           h->ds[CR_DS_ID_THREADS].offset + row->first_thread * sizeof *threads,
                           f->path, CR_DS_THREADS);
    if (rc == 0)
        rc = check_thread_rows(f, row, threads);
    if (rc < 0)
        goto free_rows;
    if (rows_out) *rows_out = rows; else free(rows);
    if (threads_out) *threads_out = threads; else free(threads);
    return 0;
free_rows:
    free(rows);
    free(threads);
    return rc;
}

int cr_epfile_verify_data(struct cr_epfile *f, const struct cr_rank_row *row,
                          const struct cr_index_row *rows)
{
    size_t bufsz = 8u << 20;
    char *buf = malloc(bufsz);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < row->nextents; i++) {
        const struct cr_index_row *x = &rows[i];
        if (x->flags & CR_EXTENT_ZERO)
            continue;
        uint64_t base = f->h.ds[CR_DS_ID_PAGES].offset + x->offset;
        uint32_t crc = 0;
        for (uint64_t done = 0; rc == 0 && done < x->len; done += bufsz) {
            size_t n = (size_t)CR_MIN(bufsz, x->len - done);
            rc = cr_pread_full(f->fd, buf, n, base + done, f->path, CR_DS_PAGES);
            crc = cr_crc32c(crc, buf, n);
        }
        if (rc == 0 && crc != x->data_crc) {
            cr_err("%s: epoch %llu rank %u: /%s extent at 0x%llx (+%llu bytes, file offset "
                   "%llu): data checksum mismatch", f->path, (unsigned long long)f->h.epoch,
                   row->rank, CR_DS_PAGES, (unsigned long long)x->addr,
                   (unsigned long long)x->len, (unsigned long long)base);
            rc = CR_ECORRUPT;
        }
    }
    free(buf);
    return rc;
}

int cr_epfile_identity(struct cr_epfile *f, const struct cr_rank_row *row, char **text)
{
    char *t = malloc((size_t)row->identity_len + 1);
    if (!t)
        return -ENOMEM;
    int rc = cr_pread_full(f->fd, t, row->identity_len,
                           f->h.ds[CR_DS_ID_IDENT].offset + row->identity_offset, f->path,
                           CR_DS_IDENT);
    if (rc == 0 && cr_crc32c(0, t, row->identity_len) != row->identity_crc) {
        cr_err("%s: epoch %llu rank %u: /%s text at offset %llu: checksum mismatch", f->path,
               (unsigned long long)f->h.epoch, row->rank, CR_DS_IDENT,
               (unsigned long long)(f->h.ds[CR_DS_ID_IDENT].offset + row->identity_offset));
        rc = CR_ECORRUPT;
    }
    if (rc < 0) {
        free(t);
        return rc;
    }
    t[row->identity_len] = 0;
    *text = t;
    return 0;
}
