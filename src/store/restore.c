/*
 * restore.c - choosing the epoch to restart from and delivering this
 * rank's pages and thread records.
 *
 * cr_restore_open walks the committed epochs newest first. For each
 * candidate every rank checks, for its own part, the whole chain from the
 * newest full epoch up to the candidate: each file exists, is ours (job
 * UUID of the index), has this format version, this number of ranks,
 * agrees with the index about epoch, parent and kind, has an intact rank
 * row, index rows and thread rows, and recorded for this rank the same
 * executable and libraries at the same addresses as this process has. The ranks then agree (cr_coll_agree): the first
 * candidate valid on every rank is chosen, and each one passed over is
 * logged with the reason. Page data is checked extent by extent while it is
 * copied (cr_restore_pages): reading it twice would halve restart speed.
 * A data checksum failure marks the epoch bad in this store handle, so the
 * caller agrees on the failure and calls cr_restore_open again, which then
 * falls back to an older epoch.
 */
#include "store/internal.h"
#include "common/config.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/log.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct chain_link {
    struct cr_epfile f;
    struct cr_rank_row row;
    struct cr_index_row *rows;
    struct cr_thread_row *threads;
};

struct cr_restore {
    struct cr_store *st;
    size_t n;                      /* links, oldest (full) first */
    struct chain_link *link;
    struct cr_restore_info info;
};

static void restore_free(struct cr_restore *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        cr_epfile_close(&r->link[i].f);
        free(r->link[i].rows);
        free(r->link[i].threads);
    }
    free(r->link);
    free(r);
}

void cr_restore_close(struct cr_restore *r)
{
    restore_free(r);
}

/* A file someone else could have written is not restored from: it must be
 * ours and writable by nobody else (the tool may still inspect it). */
static int check_trust(const struct cr_epfile *f)
{
    struct stat sb;
    if (fstat(f->fd, &sb) < 0) {
        cr_perr("fstat(%s)", f->path);
        return cr_neg_errno();
    }
    if (sb.st_uid != geteuid() || (sb.st_mode & (S_IWGRP | S_IWOTH))) {
        cr_err("%s: owned by uid %u with mode %03o: not trusted (must be ours and not "
               "writable by group or others)", f->path, (unsigned)sb.st_uid,
               (unsigned)(sb.st_mode & 0777));
        return CR_EPERM_TRUST;
    }
    return 0;
}

/* Header of one epoch file against the index and this job. */
static int check_link(struct cr_store *st, const struct cr_index_entry *e, struct cr_epfile *f)
{
    const struct cr_epoch_header *h = &f->h;
    int rc = check_trust(f);
    if (rc < 0)
        return rc;
    if (memcmp(h->job_uuid, st->ix.job_uuid, CR_UUID_BYTES)) {
        cr_err("%s: belongs to another job (its job UUID differs from the index's)", f->path);
        return CR_EFOREIGN;
    }
    if (h->epoch != e->epoch || h->parent != e->parent ||
        h->full != !!(e->flags & CR_ENTRY_FULL)) {
        cr_err("%s: the file says epoch %llu (parent %llu, %s), the index says epoch %llu "
               "(parent %llu)", f->path, (unsigned long long)h->epoch,
               (unsigned long long)h->parent, h->full ? "full" : "incremental",
               (unsigned long long)e->epoch, (unsigned long long)e->parent);
        return CR_ECORRUPT;
    }
    if (h->nranks != (uint32_t)st->coll->size) {
        cr_err("%s: written by %u ranks, this job has %d", f->path, h->nranks, st->coll->size);
        return CR_ERANKS;
    }
    return 0;
}

/* This rank's recorded identity against this process. */
static int check_identity(struct chain_link *l)
{
    char *text;
    int rc = cr_epfile_identity(&l->f, &l->row, &text);
    if (rc < 0)
        return rc;
    rc = cr_identity_check(text, l->row.identity_len, l->f.path);
    free(text);
    return rc;
}

/* Entries of the chain ending at epoch, oldest first. */
static int find_chain(struct cr_store *st, uint64_t epoch, const struct cr_index_entry ***out,
                      size_t *n)
{
    const struct cr_index *ix = &st->ix;
    const struct cr_index_entry **c = calloc(ix->n + 1, sizeof *c);
    if (!c)
        return -ENOMEM;
    size_t k = 0;
    uint64_t ep = epoch;
    for (;;) {
        const struct cr_index_entry *e = cr_index_find(ix, ep);
        if (!e || k >= ix->n) {
            cr_err("%s: epoch %llu needs epoch %llu, which the index does not name", st->dir,
                   (unsigned long long)epoch, (unsigned long long)ep);
            free(c);
            return CR_ECORRUPT;
        }
        if (cr_store_is_bad(st, ep)) {
            cr_err("%s: epoch %llu needs epoch %llu, whose data failed a checksum", st->dir,
                   (unsigned long long)epoch, (unsigned long long)ep);
            free(c);
            return CR_ECORRUPT;
        }
        c[k++] = e;
        if (e->flags & CR_ENTRY_FULL)
            break;
        ep = e->parent;
    }
    for (size_t i = 0; i < k / 2; i++) {
        const struct cr_index_entry *t = c[i];
        c[i] = c[k - 1 - i];
        c[k - 1 - i] = t;
    }
    *out = c;
    *n = k;
    return 0;
}

/* This rank's view of the chain ending at epoch; fills *out on success. */
static int try_epoch(struct cr_store *st, uint64_t epoch, struct cr_restore **out)
{
    const struct cr_index_entry **chain;
    size_t n;
    int rc = find_chain(st, epoch, &chain, &n);
    if (rc < 0)
        return rc;
    struct cr_restore *r = calloc(1, sizeof *r);
    if (r)
        r->link = calloc(n, sizeof *r->link);
    if (!r || !r->link) {
        rc = -ENOMEM;
        goto free_r;
    }
    r->st = st;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct chain_link *l = &r->link[i];
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", st->dir, chain[i]->name) >= (int)sizeof path) {
            rc = -ENAMETOOLONG;
            break;
        }
        rc = cr_epfile_open(path, &l->f);
        if (rc == -ENOENT) {
            cr_err("%s: the index names epoch %llu, whose file is missing", path,
                   (unsigned long long)chain[i]->epoch);
            rc = CR_ECORRUPT;
        }
        if (rc < 0)
            break;
        r->n = i + 1;
        rc = cr_trust_fd(l->f.fd, path);
        if (rc == 0)
            rc = check_link(st, chain[i], &l->f);
        if (rc == 0)
            rc = cr_epfile_rank(&l->f, (uint32_t)st->coll->rank, &l->row, &l->rows, &l->threads);
        if (rc == 0)
            rc = check_identity(l);
    }
    if (rc < 0)
        goto free_r;
    const struct chain_link *top = &r->link[n - 1];
    for (size_t i = 0; i < n; i++)
        if (r->link[i].row.region_base != top->row.region_base) {
            cr_err("%s: epoch %llu: the region moved from 0x%llx to 0x%llx within the chain",
                   st->dir, (unsigned long long)epoch,
                   (unsigned long long)r->link[i].row.region_base,
                   (unsigned long long)top->row.region_base);
            rc = CR_ECORRUPT;
            goto free_r;
        }
    r->info = (struct cr_restore_info){ .epoch = epoch, .region_base = top->row.region_base,
        .region_size = top->row.region_size, .nthreads = top->row.nthreads, .nlinks = n };
    for (size_t i = 0; i < n; i++)
        r->info.data_bytes += r->link[i].row.data_bytes;
    free(chain);
    *out = r;
    return 0;
free_r:
    restore_free(r);
    free(chain);
    return rc;
}

int cr_restore_open_local(struct cr_store *st, uint64_t epoch, struct cr_restore **out)
{
    if (st->index_bad || !cr_index_find(&st->ix, epoch)) {
        cr_err("%s: epoch %llu is not committed", st->dir, (unsigned long long)epoch);
        return CR_ENOCKPT;
    }
    struct cr_restore *r = NULL;
    int rc = try_epoch(st, epoch, &r);
    if (rc) {
        restore_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int cr_restore_open(struct cr_store *st, uint64_t epoch, struct cr_restore **out)
{
    struct cr_coll *c = st->coll;
    const struct cr_index *ix = &st->ix;
    if (st->index_bad) {
        cr_err("%s: the index is damaged: no committed epoch can be trusted", st->dir);
        return CR_ECORRUPT;
    }
    if (ix->n == 0 || (epoch && !cr_index_find(ix, epoch))) {
        if (epoch)
            cr_err("%s: epoch %llu is not committed", st->dir, (unsigned long long)epoch);
        return CR_ENOCKPT;
    }
    int first_rc = 0;
    uint64_t newest = ix->e[ix->n - 1].epoch;
    for (uint32_t i = ix->n; i-- > 0;) {
        uint64_t cand = ix->e[i].epoch;
        if (epoch && cand != epoch)
            continue;
        struct cr_restore *r = NULL;
        int rc = cr_coll_agree(c, try_epoch(st, cand, &r));
        if (rc == 0) {
            if (!epoch && cand != newest)
                cr_warn("%s: restoring epoch %llu: newer committed epochs were unusable "
                        "(reasons above)", st->dir, (unsigned long long)cand);
            st->last = cand;
            *out = r;
            return 0;
        }
        restore_free(r);
        if (!first_rc || first_rc == CR_EREMOTE)
            first_rc = rc;
        cr_warn("%s: epoch %llu is unusable (%s)%s", st->dir, (unsigned long long)cand,
                cr_strerror(rc), epoch || i == 0 ? "" : "; trying an older one");
    }
    cr_err("%s: no committed epoch can be restored", st->dir);
    return first_rc;
}

void cr_restore_info(const struct cr_restore *r, struct cr_restore_info *out)
{
    *out = r->info;
}

int cr_restore_threads(struct cr_restore *r, struct cr_thread_record *out, size_t n)
{
    const struct chain_link *top = &r->link[r->n - 1];
    if (n < top->row.nthreads)
        return -ERANGE;
    for (size_t i = 0; i < top->row.nthreads; i++) {
        const struct cr_thread_row *t = &top->threads[i];
        out[i] = (struct cr_thread_record){ .tid = t->tid, .state = t->state,
            .stack_lo = t->stack_lo, .stack_hi = t->stack_hi, .retval = t->retval };
        memcpy(out[i].ctx, t->ctx, CR_CTX_BLOB);
    }
    return 0;
}

/* Extents [i, j) that are adjacent both in memory and in the file form one
 * group, read with one pread straight into their destination; an extent
 * longer than a group is read in parts (its CRC chained over them).
 *
 * How the reads and the CRC checks share the time:
 *
 * By default no reader thread: this thread preads 512 KiB groups
 * (cr_restore_read_group_inline) and checks each right after its read,
 * while the bytes are in L2, as the kernel's readahead keeps the disk busy
 * with the next ones. A reader thread pays off only with a core to spare:
 * MPI launchers bind ranks to single cores (Open MPI does for jobs up to 2
 * ranks) and there it only adds wake-ups and delays the reads that drive
 * readahead; with 4 ranks on the 2 cores here it also lost (bench_store,
 * 4 x 64 MiB, 3 interleaved runs: read 0.88 of raw without, 0.76 with).
 * Measured with a stand-alone loop on one pinned core, 64 MiB after
 * drop_caches, medians of 7-9 (two runs): one pread 18.3/19.3 ms; 512 KiB
 * preads each followed by its CRC 16.1/18.6, 1 MiB 17.9/21.1, 4 MiB
 * 19.5/24.9; at 256 MiB (5 reps) 512 KiB + CRC 60.9/71.6 against one pread
 * 53.1/61.2.
 *
 * CRMPI_RESTORE_READER=1, where this thread may run on several CPUs: a
 * reader thread, created and joined inside this call, preads group after
 * group while this thread checks the groups already read. The reader does
 * not wait for the checks (it reads into the destination, so running ahead
 * costs no memory); it stops at its next group once a check failed. Group
 * sizes shrink towards the end of a link: up to half of what is left to
 * read, rounded down to a power of two, between cr_restore_read_group
 * (4 MiB) and cr_restore_read_group_max (32 MiB): a 64 MiB link is read as
 * 32+16+8+4+4 MiB, as large reads stream better (stand-alone loop, no CRC,
 * 64 MiB after drop_caches, medians of 7-9 per run: 4 MiB preads 17.3-21.8
 * ms, 16 MiB 17.3, 32 MiB 15.2-16.5, one pread 15.5-17.6) and the checks
 * left after the last read stay short.
 *
 * A restore that fails leaves the destination partly written either way:
 * the caller discards it (engine.c resets the region).
 * (POSIX AIO was tried first and dropped: glibc's helper thread does not
 * survive fork, and a forked child's aio_suspend then waits forever.) */
size_t cr_restore_read_group = 4u << 20;
size_t cr_restore_read_group_max = 32u << 20;
size_t cr_restore_read_group_inline = 512u << 10;
int cr_restore_pipeline = -1;

/* Read with a reader thread? If CRMPI_RESTORE_READER asks for it and this
 * thread may run on several CPUs (cr_restore_pipeline 0 or 1 forces it,
 * for tests). */
static int use_pipeline(void)
{
    if (cr_restore_pipeline >= 0)
        return cr_restore_pipeline;
    if (!cr_config()->restore_reader)
        return 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return 1;
    return CPU_COUNT(&set) > 1;
}

struct sizes { uint64_t lo, hi; };   /* smallest and largest group */

/* The size of the next group when left bytes of the link remain. */
static uint64_t group_limit(const struct sizes *z, uint64_t left)
{
    uint64_t g = z->lo;
    while (g < z->hi && 4 * g <= left)
        g *= 2;
    return g;
}

struct group {
    uint64_t i, j;           /* extents [i, j) of the link                   */
    uint64_t pos;            /* part of one large extent: bytes before it     */
    uint8_t *dst;
    uint64_t off, len;       /* file range                                    */
};

struct reader {
    const struct chain_link *l;
    const struct cr_restore_target *t;
    struct group *g;
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t read;             /* groups completely read                       */
    int err;                 /* first read error                             */
    int stop;                /* a check failed: read no further              */
    uint32_t part_crc;       /* CRC so far of a large extent read in parts    */
};

static uint64_t group_end(const struct chain_link *l, uint64_t i, uint64_t limit)
{
    const struct cr_index_row *x = l->rows;
    uint64_t bytes = x[i].len, j = i + 1;
    while (j < l->row.nextents && !(x[j].flags & CR_EXTENT_ZERO) &&
           x[j].addr == x[j - 1].addr + x[j - 1].len &&
           x[j].offset == x[j - 1].offset + x[j - 1].len &&
           bytes + x[j].len <= limit) {
        bytes += x[j].len;
        j++;
    }
    return j;
}

/* An extent longer than one group is read in parts (a single 1 GiB extent
 * read with one pread and then checksummed would neither pipeline nor find
 * its bytes in cache: measured 11-22 s for 1 GiB); this bounds their number
 * (parts are at least z->lo long, but the last). */
static uint64_t parts_of(const struct sizes *z, const struct cr_index_row *x)
{
    return x->len > z->lo ? (x->len + z->lo - 1) / z->lo : 1;
}

/* The data groups of a link, destinations mapped (map has no side effect). */
static int plan_groups(const struct chain_link *l, const struct cr_restore_target *t,
                       const struct sizes *z, struct group **out, size_t *n)
{
    const struct cr_index_row *x = l->rows;
    size_t cap = 1;
    uint64_t left = 0;
    for (uint64_t i = 0; i < l->row.nextents; i++)
        if (!(x[i].flags & CR_EXTENT_ZERO)) {
            cap += parts_of(z, &x[i]);
            left += x[i].len;
        }
    struct group *g = calloc(cap, sizeof *g);
    if (!g)
        return -ENOMEM;
    size_t k = 0;
    for (uint64_t i = 0; i < l->row.nextents;) {
        if (x[i].flags & CR_EXTENT_ZERO) {
            i++;
            continue;
        }
        uint64_t limit = group_limit(z, left);
        uint64_t j = x[i].len > limit ? i + 1 : group_end(l, i, limit);
        uint64_t total = x[j - 1].addr + x[j - 1].len - x[i].addr;
        uint8_t *dst = t->map(t->arg, (uintptr_t)x[i].addr, (size_t)total);
        if (!dst) {
            cr_err("%s: no memory to restore [0x%llx, +%llu) into", l->f.path,
                   (unsigned long long)x[i].addr, (unsigned long long)total);
            free(g);
            return -EFAULT;
        }
        for (uint64_t pos = 0, len; pos < total; pos += len) {
            len = j == i + 1 ? CR_MIN(total - pos, group_limit(z, left)) : total;
            g[k++] = (struct group){ .i = i, .j = j, .pos = pos, .dst = dst + pos, .len = len,
                .off = l->f.h.ds[CR_DS_ID_PAGES].offset + x[i].offset + pos };
            left -= len;
        }
        i = j;
    }
    *out = g;
    *n = k;
    return 0;
}

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    for (size_t k = 0; k < rd->n; k++) {
        pthread_mutex_lock(&rd->mu);
        int stop = rd->stop;
        pthread_mutex_unlock(&rd->mu);
        if (stop)
            break;
        const struct group *g = &rd->g[k];
        if (rd->t->populate)
            rd->t->populate(rd->t->arg, g->dst, (size_t)g->len);
        int rc = cr_pread_full(rd->l->f.fd, g->dst, (size_t)g->len, g->off, rd->l->f.path,
                               CR_DS_PAGES);
        pthread_mutex_lock(&rd->mu);
        if (rc < 0)
            rd->err = rc;
        else
            rd->read = k + 1;
        pthread_cond_broadcast(&rd->cv);
        pthread_mutex_unlock(&rd->mu);
        if (rc < 0)
            break;
    }
    return NULL;
}

/* Wait until group k is read (threaded), or read it (not threaded). */
static int group_ready(struct reader *rd, int threaded, size_t k)
{
    if (!threaded) {
        if (rd->t->populate)
            rd->t->populate(rd->t->arg, rd->g[k].dst, (size_t)rd->g[k].len);
        return cr_pread_full(rd->l->f.fd, rd->g[k].dst, (size_t)rd->g[k].len, rd->g[k].off,
                             rd->l->f.path, CR_DS_PAGES);
    }
    pthread_mutex_lock(&rd->mu);
    while (rd->read <= k && !rd->err)
        pthread_cond_wait(&rd->cv, &rd->mu);
    int rc = rd->read > k ? 0 : rd->err;
    pthread_mutex_unlock(&rd->mu);
    return rc;
}

/* A failed check stops the reader at its next group. */
static void reader_stop(struct reader *rd, int threaded)
{
    if (!threaded)
        return;
    pthread_mutex_lock(&rd->mu);
    rd->stop = 1;
    pthread_mutex_unlock(&rd->mu);
}

static int extent_bad(struct cr_restore *r, const struct chain_link *l, uint64_t k)
{
    const struct cr_index_row *x = l->rows;
    cr_err("%s: epoch %llu rank %u: /%s extent at 0x%llx (+%llu bytes, file offset "
           "%llu): data checksum mismatch", l->f.path, (unsigned long long)l->f.h.epoch,
           l->row.rank, CR_DS_PAGES, (unsigned long long)x[k].addr,
           (unsigned long long)x[k].len,
           (unsigned long long)(l->f.h.ds[CR_DS_ID_PAGES].offset + x[k].offset));
    return cr_store_mark_bad(r->st, l->f.h.epoch) < 0 ? -ENOMEM : CR_ECORRUPT;
}

static int group_check(struct cr_restore *r, const struct chain_link *l, struct reader *rd,
                       const struct group *g)
{
    const struct cr_index_row *x = l->rows;
    if (g->j == g->i + 1 && g->len < x[g->i].len) {
        /* one part of a large extent: chain the CRC over the parts */
        rd->part_crc = cr_crc32c(g->pos ? rd->part_crc : 0, g->dst, (size_t)g->len);
        if (g->pos + g->len < x[g->i].len || rd->part_crc == x[g->i].data_crc)
            return 0;
        return extent_bad(r, l, g->i);
    }
    for (uint64_t k = g->i; k < g->j; k++) {
        const uint8_t *p = g->dst + (x[k].addr - x[g->i].addr);
        if (cr_crc32c(0, p, (size_t)x[k].len) != x[k].data_crc)
            return extent_bad(r, l, k);
    }
    return 0;
}

/* Zero extents and data groups in index order. */
static int walk_link(struct cr_restore *r, const struct chain_link *l, struct reader *rd,
                     int threaded, const struct cr_restore_target *t)
{
    size_t k = 0;
    for (uint64_t i = 0; i < l->row.nextents;) {
        const struct cr_index_row *x = &l->rows[i];
        if (x->flags & CR_EXTENT_ZERO) {
            int rc = t->zero(t->arg, (uintptr_t)x->addr, (size_t)x->len);
            if (rc < 0)
                return rc;
            i++;
            continue;
        }
        uint64_t j;
        do {
            int rc = group_ready(rd, threaded, k);
            if (rc == 0)
                rc = group_check(r, l, rd, &rd->g[k]);
            if (rc < 0) {
                reader_stop(rd, threaded);
                return rc;
            }
            cr_store_fault("restore-pages");
            j = rd->g[k++].j;
        } while (k < rd->n && rd->g[k].i == i);   /* the parts of one extent */
        i = j;
    }
    return 0;
}

static int restore_link(struct cr_restore *r, const struct chain_link *l,
                        const struct cr_restore_target *t)
{
    struct reader rd = { .l = l, .t = t, .mu = PTHREAD_MUTEX_INITIALIZER,
                         .cv = PTHREAD_COND_INITIALIZER };
    int pipeline = use_pipeline();
    struct sizes z = { cr_restore_read_group, CR_MAX(cr_restore_read_group_max,
                                                     cr_restore_read_group) };
    if (!pipeline)
        z.lo = z.hi = cr_restore_read_group_inline;
    cr_dbg("restoring %s with %s", l->f.path, pipeline ? "a reader thread" : "inline reads");
    int rc = plan_groups(l, t, &z, &rd.g, &rd.n);
    if (rc < 0)
        return rc;
    pthread_t th;
    int threaded = pipeline && rd.n > 1 && pthread_create(&th, NULL, reader_main, &rd) == 0;
    rc = walk_link(r, l, &rd, threaded, t);
    if (threaded) {
        reader_stop(&rd, threaded);
        pthread_join(th, NULL);
    }
    free(rd.g);
    return rc;
}

int cr_restore_pages_to(struct cr_restore *r, const struct cr_restore_target *t)
{
    if (!r || !t || !t->map || !t->zero)
        return -EINVAL;
    for (size_t i = 0; i < r->n; i++) {
        int rc = restore_link(r, &r->link[i], t);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The persistent region: extents go back to their own addresses, which
 * must lie in the usable part of the region (the caller grew it to
 * info.region_size); zero extents are discarded. */
static void *region_map(void *arg, uintptr_t addr, size_t len)
{
    if (!cr_region_contains((void *)addr, len))
        return NULL;
    return (void *)addr;
}

static int region_zero(void *arg, uintptr_t addr, size_t len)
{
    int rc = cr_region_discard((void *)addr, len);
    if (rc < 0)
        cr_errc(rc, "cr_region_discard(0x%lx, %zu)", (unsigned long)addr, len);
    return rc;
}

/* A failure only means the faults happen one by one while reading. */
static void region_populate(void *arg, void *dst, size_t len)
{
    int rc = cr_region_populate(dst, len);
    if (rc < 0 && rc != -EINVAL)
        cr_dbg("cannot populate [%p, +%zu) before reading into it: %s", dst, len,
               cr_strerror(rc));
}

int cr_restore_pages(struct cr_restore *r)
{
    static const struct cr_restore_target region = { region_map, region_zero, NULL,
                                                     region_populate };
    return cr_restore_pages_to(r, &region);
}

/* ---- lazy restore: pieces and single-extent fetches ----------------------- */

struct span { uintptr_t lo, hi; };

static int push_piece(struct cr_restore_piece **v, size_t *n, size_t *cap,
                      const struct cr_restore_piece *p)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 256;
        struct cr_restore_piece *q = realloc(*v, c * sizeof *q);
        if (!q)
            return -ENOMEM;
        *v = q;
        *cap = c;
    }
    (*v)[(*n)++] = *p;
    return 0;
}

/* Parts of link l's extents not in cov (sorted, disjoint) become pieces. */
static int uncovered(const struct chain_link *l, uint32_t li, const struct span *cov, size_t nc,
                     struct cr_restore_piece **v, size_t *n, size_t *cap)
{
    size_t ci = 0;
    for (uint64_t i = 0; i < l->row.nextents; i++) {
        const struct cr_index_row *x = &l->rows[i];
        uintptr_t a = (uintptr_t)x->addr, b = a + (uintptr_t)x->len, cur = a;
        struct cr_restore_piece p = { .link = li, .ext = i,
                                      .zero = !!(x->flags & CR_EXTENT_ZERO) };
        while (ci < nc && cov[ci].hi <= a)
            ci++;
        for (size_t k = ci; k < nc && cov[k].lo < b; k++) {
            if (cov[k].lo > cur) {
                p.addr = cur;
                p.len = cov[k].lo - cur;
                if (push_piece(v, n, cap, &p))
                    return -ENOMEM;
            }
            cur = CR_MAX(cur, cov[k].hi);
        }
        if (cur < b) {
            p.addr = cur;
            p.len = b - cur;
            if (push_piece(v, n, cap, &p))
                return -ENOMEM;
        }
    }
    return 0;
}

/* cov := cov union the extents of l (both sorted; result sorted, merged). */
static int cover(const struct chain_link *l, struct span **cov, size_t *nc)
{
    struct span *o = malloc((*nc + l->row.nextents + 1) * sizeof *o);
    if (!o)
        return -ENOMEM;
    size_t i = 0, j = 0, k = 0;
    while (i < *nc || j < l->row.nextents) {
        struct span s;
        if (j == l->row.nextents || (i < *nc && (*cov)[i].lo <= l->rows[j].addr))
            s = (*cov)[i++];
        else
            s = (struct span){ (uintptr_t)l->rows[j].addr,
                               (uintptr_t)(l->rows[j].addr + l->rows[j].len) }, j++;
        if (k && s.lo <= o[k - 1].hi)
            o[k - 1].hi = CR_MAX(o[k - 1].hi, s.hi);
        else
            o[k++] = s;
    }
    free(*cov);
    *cov = o;
    *nc = k;
    return 0;
}

static int piece_cmp(const void *a, const void *b)
{
    const struct cr_restore_piece *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

int cr_restore_pieces(struct cr_restore *r, struct cr_restore_piece **out, size_t *n)
{
    struct cr_restore_piece *v = NULL;
    struct span *cov = NULL;
    size_t nv = 0, cap = 0, nc = 0;
    int rc = 0;
    for (size_t li = r->n; li-- > 0 && rc == 0;) {
        rc = uncovered(&r->link[li], (uint32_t)li, cov, nc, &v, &nv, &cap);
        if (rc == 0 && li > 0)
            rc = cover(&r->link[li], &cov, &nc);
    }
    free(cov);
    if (rc) {
        free(v);
        return rc;
    }
    qsort(v, nv, sizeof *v, piece_cmp);
    *out = v;
    *n = nv;
    return 0;
}

void cr_restore_extent(const struct cr_restore *r, uint32_t link, uint64_t ext,
                       uintptr_t *addr, size_t *len)
{
    const struct cr_index_row *x = &r->link[link].rows[ext];
    *addr = (uintptr_t)x->addr;
    *len = (size_t)x->len;
}

uint64_t cr_restore_link_epoch(const struct cr_restore *r, uint32_t link)
{
    return r->link[link].f.h.epoch;
}

int cr_restore_fetch(struct cr_restore *r, uint32_t link, uint64_t ext, void *buf)
{
    if (link >= r->n || ext >= r->link[link].row.nextents)
        return -EINVAL;
    const struct chain_link *l = &r->link[link];
    const struct cr_index_row *x = &l->rows[ext];
    if (x->flags & CR_EXTENT_ZERO) {
        memset(buf, 0, (size_t)x->len);
        return 0;
    }
    int rc = cr_pread_full(l->f.fd, buf, (size_t)x->len,
                           l->f.h.ds[CR_DS_ID_PAGES].offset + x->offset, l->f.path, CR_DS_PAGES);
    if (rc < 0)
        return rc;
    if (cr_crc32c(0, buf, (size_t)x->len) != x->data_crc)
        return extent_bad(r, l, ext);
    return 0;
}
