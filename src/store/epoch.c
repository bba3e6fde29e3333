/*
 * epoch.c - writing one epoch: begin (collective: agree on sizes, create the
 * file), put (pwrite extents), finish (pwrite the tables, fsync), commit
 * (collective: agree, publish in the index, collect garbage).
 *
 * Layout of the shared datasets (FORMAT.md): rank r owns the slice of
 * /pages starting at the exclusive prefix sum of the padded slice sizes of
 * ranks < r, and the rows of /page_index and /threads starting at the
 * prefix sums of the row counts. Every rank computes the same table from
 * one allgather, so no further communication is needed to know where
 * anything goes. Slices are padded to the page size, or to the alignment
 * (CRMPI_ALIGN) when any slice is at least that large, so that ranks never
 * share a stripe of a parallel filesystem.
 * After begin, nothing here calls HDF5: put and finish may run on a
 * background writer thread while the application continues. Begin does not
 * call HDF5 either when rank 0 has a layout helper process
 * (layout_helper.c): the first put or finish waits for the layout
 * (layout_ready). On rank 0 that asks the helper; in a job of several
 * ranks rank 0 then publishes the offsets HDF5 chose in a small file beside
 * the epoch file (the layout record, below), which the other ranks wait
 * for. So begin is one allgather and one agreement, where the collective
 * H5Fcreate through MPI-IO was a dozen rounds more.
 */
#include "store/internal.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/fault.h"
#include "common/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct cr_epoch {
    struct cr_store *st;
    char path[PATH_MAX];
    int fd;
    struct cr_epoch_header hdr;
    struct cr_rank_row me;
    struct cr_index_row *rows;
    uint8_t *done;
    struct cr_thread_row *threads;
    uint64_t data_base;            /* absolute offset of this rank's slice */
    uint64_t topo_off, topo_len;   /* this node's XML, if this rank writes it */
    int write_identity;            /* first rank with this identity text      */
    size_t nneed;
    atomic_size_t nput;
    _Atomic uint64_t kicked;       /* slice bytes handed to writeback      */
    atomic_int reserved;           /* reserve_slice ran (first put)        */
    atomic_int failed;
    int finished;
    atomic_int layout_pending;     /* the helper lays the file out, later   */
    pthread_mutex_t layout_lock;   /* puts may come from several threads    */
    int remote_layout;             /* rank > 0: rank 0 publishes the layout  */
    int published;                 /* rank 0 of several: the record is out   */
    uint64_t nonce;                /* rank 0's, of this attempt              */
    int topo_mine;                 /* which node's topology is ours, or -1  */
    size_t ntopo;                  /* for a deferred layout: every node's    */
    char (*topo_hosts)[CR_HOST_MAX];   /* name and topology length, then    */
    uint64_t *topo_lens;               /* the offsets (2 x ntopo)           */
};

static int check_desc(const struct cr_store *st, const struct cr_epoch_desc *d,
                      uint64_t *data_bytes)
{
    uint64_t sum = 0, end = 0;
    if (!d || (d->nextents && !d->extents) || (d->nthreads && !d->threads))
        return -EINVAL;
    if (d->status)
        return d->status < 0 ? d->status : -EINVAL;
    if (!d->full && !st->last) {
        cr_err("%s: an incremental epoch needs a committed parent; take a full one",
               st->dir);
        return CR_ESTATE;
    }
    for (size_t i = 0; i < d->nextents; i++) {
        const struct cr_extent *x = &d->extents[i];
        if ((x->addr | x->len) & (CR_PAGE_SIZE - 1) || !x->len || x->addr < end ||
            x->addr + x->len < x->addr) {
            cr_err("extent %zu [0x%lx, +%zu) is misaligned, empty or out of order", i,
                   (unsigned long)x->addr, x->len);
            return -EINVAL;
        }
        end = x->addr + x->len;
        if (!(x->flags & CR_EXTENT_ZERO))
            sum += x->len;
    }
    *data_bytes = sum;
    return 0;
}

static uint64_t pow2_at_least(uint64_t v)
{
    uint64_t p = CR_USERBLOCK_MIN;
    while (p < v)
        p <<= 1;
    return p;
}

/* Sizes of every rank -> dataset sizes and this rank's positions. */
static void plan_layout(struct cr_epoch *ep, const struct cr_begin_info *all, int nranks,
                        int me, size_t align)
{
    struct cr_epoch_header *h = &ep->hdr;
    uint64_t slice_align = CR_PAGE_SIZE;
    for (int r = 0; r < nranks; r++)
        if (all[r].data_bytes >= align)
            slice_align = align;
    uint64_t data = 0, rows = 0, threads = 0;
    for (int r = 0; r < nranks; r++) {
        uint64_t slice = cr_align_up(all[r].data_bytes, slice_align);
        if (r == me) {
            ep->me.data_offset = data;
            ep->me.slice_bytes = slice;
            ep->me.first_extent = rows;
            ep->me.first_thread = threads;
        }
        data += slice;
        rows += all[r].nextents;
        threads += all[r].nthreads;
    }
    /* Identical identity texts (same builds at the same addresses, the
     * normal case) are stored once; the first rank with each writes it. */
    uint64_t idbytes = 0;
    for (int r = 0; r < nranks; r++) {
        int first = 0;
        while (all[first].id_len != all[r].id_len || all[first].id_crc != all[r].id_crc)
            first++;
        if (first == r) {
            if (r == me)
                ep->write_identity = 1;
            for (int q = r; q < nranks; q++)
                if (q == me && all[q].id_len == all[r].id_len && all[q].id_crc == all[r].id_crc)
                    ep->me.identity_offset = idbytes;
            idbytes += all[r].id_len;
        }
    }
    ep->me.identity_len = all[me].id_len;
    ep->me.identity_crc = all[me].id_crc;
    h->ds[CR_DS_ID_IDENT] = (struct cr_ds_loc){ .count = idbytes, .bytes = idbytes };
    h->slice_align = slice_align;
    h->ds[CR_DS_ID_PAGES] = (struct cr_ds_loc){ .count = data, .bytes = data };
    h->ds[CR_DS_ID_INDEX] = (struct cr_ds_loc){ .count = rows,
        .bytes = rows * sizeof(struct cr_index_row) };
    h->ds[CR_DS_ID_THREADS] = (struct cr_ds_loc){ .count = threads,
        .bytes = threads * sizeof(struct cr_thread_row) };
    h->ds[CR_DS_ID_RANKS] = (struct cr_ds_loc){ .count = (uint64_t)nranks,
        .bytes = (uint64_t)nranks * sizeof(struct cr_rank_row) };
}

/* Rows of this rank, ready except for the data CRCs put() fills in. */
static int prepare_rows(struct cr_epoch *ep, const struct cr_epoch_desc *d, int rank)
{
    ep->rows = calloc(d->nextents ? d->nextents : 1, sizeof *ep->rows);
    ep->done = calloc(d->nextents ? d->nextents : 1, 1);
    ep->threads = calloc(d->nthreads ? d->nthreads : 1, sizeof *ep->threads);
    if (!ep->rows || !ep->done || !ep->threads)
        return -ENOMEM;
    uint64_t off = ep->me.data_offset;
    for (size_t i = 0; i < d->nextents; i++) {
        const struct cr_extent *x = &d->extents[i];
        struct cr_index_row *r = &ep->rows[i];
        r->rank = (uint32_t)rank;
        r->flags = x->flags;
        r->addr = x->addr;
        r->len = x->len;
        r->offset = off;
        if (!(x->flags & CR_EXTENT_ZERO)) {
            off += x->len;
            ep->nneed++;
        } else {
            ep->done[i] = 1;
        }
    }
    for (size_t i = 0; i < d->nthreads; i++) {
        const struct cr_thread_record *t = &d->threads[i];
        struct cr_thread_row *r = &ep->threads[i];
        r->rank = (uint32_t)rank;
        r->tid = t->tid;
        r->state = t->state;
        r->stack_lo = t->stack_lo;
        r->stack_hi = t->stack_hi;
        r->retval = t->retval;
        memcpy(r->ctx, t->ctx, CR_CTX_BLOB);
        r->crc = cr_record_crc(r, sizeof *r);
    }
    return 0;
}

/* The epoch every rank expects next: the index and the last committed
 * epoch are identical on all ranks (store.c), so this needs no message;
 * the allgather of begin checks it anyway. */
static uint64_t next_epoch(const struct cr_store *st)
{
    uint64_t next = st->last;
    for (uint32_t i = 0; i < st->ix.n; i++)
        next = CR_MAX(next, st->ix.e[i].epoch);
    return next + 1;
}

/* The header every rank builds alike: rank 0's clock and identity text. */
static void make_header(struct cr_epoch *ep, const struct cr_epoch_desc *d,
                        const struct cr_begin_info *rank0)
{
    struct cr_store *st = ep->st;
    struct cr_epoch_header *h = &ep->hdr;
    memcpy(h->magic, CR_EPOCH_MAGIC, 8);
    h->version = CR_FMT_VERSION;
    h->header_len = sizeof *h;
    h->epoch = rank0->epoch;
    h->parent = d->full ? 0 : st->last;
    h->full = d->full ? 1 : 0;
    h->nranks = (uint32_t)st->coll->size;
    h->page_size = CR_PAGE_SIZE;
    h->ctime = rank0->ctime;
    h->identity_len = (uint32_t)st->id0_len;
    memcpy(h->job_uuid, st->ix.job_uuid, CR_UUID_BYTES);
    snprintf(h->lib_version, sizeof h->lib_version, "%s", CRMPI_VERSION_STRING);
    uint64_t need = sizeof *h + h->identity_len;
    h->userblock = (uint32_t)pow2_at_least(CR_MAX(need, st->opts.align <= (64u << 20) ?
                                                  st->opts.align : 0));
}

static int gather_topology(struct cr_epoch *ep, const struct cr_begin_info *all, int n,
                           char (*hosts)[CR_HOST_MAX], uint64_t *lens, size_t *ntopo)
{
    size_t k = 0;
    for (int r = 0; r < n; r++) {
        size_t j = 0;
        while (j < k && strncmp(hosts[j], all[r].host, CR_HOST_MAX))
            j++;
        if (j < k)
            continue;
        memcpy(hosts[k], all[r].host, CR_HOST_MAX);
        lens[k++] = all[r].topo_len;
    }
    *ntopo = k;
    return 0;
}

/* Rank 0's layout helper, started on first use and again after it died
 * (layout_helper.c). NULL: the file is laid out in begin, collectively. */
static struct cr_layout_helper *helper(struct cr_store *st)
{
    if (st->coll->rank != 0 || st->helper_off)
        return NULL;
    if (st->helper && !cr_layout_helper_usable(st->helper)) {
        cr_layout_helper_stop(st->helper);
        st->helper = NULL;
    }
    if (!st->helper && cr_layout_helper_start(&st->helper) < 0)
        st->helper_off = 1;
    return st->helper;
}

/* Names this attempt at an epoch: a layout record of an earlier attempt
 * with the same epoch number (a killed job's, or an abandoned epoch's whose
 * record outlived it) never passes for this one's. */
static uint64_t attempt_nonce(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
        return v;
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return ((uint64_t)t.tv_sec << 32) ^ (uint64_t)t.tv_nsec ^ ((uint64_t)getpid() << 20);
}

/* The allgather of begin: every rank's sizes into st->peers, and the
 * agreement on whether to go on (the most negative local status; like
 * cr_coll_agree, CR_EREMOTE on ranks that only learn of another's failure). */
static int share_sizes(struct cr_store *st, const struct cr_epoch_desc *d, uint64_t data_bytes,
                       int status)
{
    struct cr_coll *c = st->coll;
    int use_helper = c->rank == 0 && helper(st);
    if (c->rank == 0 && !use_helper && status == 0 && c->before_create) {
        char path[PATH_MAX];
        cr_epoch_path(st, next_epoch(st), path, sizeof path);
        c->before_create(c, path);
    }
    struct cr_begin_info mine = { status, next_epoch(st), (uint64_t)time(NULL),
        c->rank == 0 ? attempt_nonce() : 0, (uint32_t)use_helper, 0, data_bytes,
        status == 0 ? d->nextents : 0, status == 0 ? d->nthreads : 0,
        st->topo_xml ? st->topo_len : 0, status == 0 && d->full, (uint32_t)st->identity_len,
        cr_crc32c(0, st->identity, st->identity_len), "" };
    memcpy(mine.host, st->host, CR_HOST_MAX);
    int rc = c->allgather(c, &mine, st->peers, sizeof mine);
    if (rc < 0)
        return rc;    /* MPI failed the collective (logged): no round can agree now */
    const struct cr_begin_info *all = st->peers;
    int64_t worst = 0;
    for (int r = 0; r < c->size; r++)
        worst = CR_MIN(worst, all[r].status);
    if (worst < 0)
        return status < 0 ? status : CR_EREMOTE;
    for (int r = 0; r < c->size; r++) {
        if (all[r].full != all[0].full || all[r].epoch != all[0].epoch) {
            /* Every rank sees the same table: all fail alike. */
            cr_err("%s: ranks disagree on epoch %llu: rank %d expects epoch %llu (%s)",
                   st->dir, (unsigned long long)all[0].epoch, r,
                   (unsigned long long)all[r].epoch, all[r].full ? "full" : "incremental");
            return -EPROTO;
        }
    }
    return 0;
}

/* The file exists and has its layout: open it for the pwrites. */
static int open_created(struct cr_epoch *ep)
{
    ep->fd = open(ep->path, O_RDWR | O_CLOEXEC);
    if (ep->fd < 0) {
        int rc = cr_neg_errno();
        cr_perr("open(%s) after creating it", ep->path);
        return rc;
    }
    if (ep->st->coll->rank == 0 && fchmod(ep->fd, 0600) < 0) {
        /* HDF5 creates files 0666 & ~umask; ours are private. */
        int rc = cr_neg_errno();
        cr_perr("fchmod(%s, 0600)", ep->path);
        return rc;
    }
    ep->data_base = ep->hdr.ds[CR_DS_ID_PAGES].offset + ep->me.data_offset;
    return 0;
}

/* ---- the layout record ------------------------------------------------------
 * In a job of several ranks with a deferred layout, rank 0 publishes what
 * its helper answered - the datasets' offsets and every node's topology
 * offset, or the failure - as "<epoch file>.layout": written under another
 * name and renamed, so a reader sees all of it or nothing, and named by the
 * attempt's nonce (every rank has rank 0's from the allgather), so a record
 * left by an earlier attempt at the same epoch is not taken for this one.
 * The other ranks' writers poll for it (a shared filesystem has no other
 * way to say "ready" across nodes without MPI, which the writer thread may
 * not call). It is transient: rank 0 deletes it at commit, whatever the
 * outcome, and garbage collection deletes a killed job's.
 * When the record cannot be written (a full or failing filesystem), rank 0
 * still creates an empty "<epoch file>.layout.failed.<nonce>": no data
 * block, so it usually succeeds where the record's write did not, and the
 * other ranks fail the epoch at once instead of waiting out their timeout. */
#define LAYOUT_MAGIC "CRLAYOUT"
/* A rank gives up on a record that never comes (rank 0 hung without dying,
 * or could not write the record): its epoch fails, like a failed write. */
#define LAYOUT_WAIT_SEC 300

struct layout_rec {
    char     magic[8];
    uint64_t epoch, nonce;
    int64_t  rc;
    uint64_t ds_off[CR_DS_COUNT];
    uint64_t ntopo;               /* followed by ntopo topology offsets      */
    uint32_t reserved, crc;       /* of the record and the offsets, crc = 0 */
} __attribute__((packed));

static void layout_rec_path(const struct cr_epoch *ep, char *out, size_t n, const char *tail)
{
    snprintf(out, n, "%s.layout%s", ep->path, tail);
}

static void layout_fail_path(const struct cr_epoch *ep, char *out, size_t n)
{
    snprintf(out, n, "%s.layout.failed.%016llx", ep->path, (unsigned long long)ep->nonce);
}

static uint32_t layout_rec_crc(const struct layout_rec *r, const uint64_t *offs)
{
    struct layout_rec c = *r;
    c.crc = 0;
    return cr_crc32c(cr_crc32c(0, &c, sizeof c), offs, r->ntopo * sizeof *offs);
}

/* Rank 0: publish the outcome of the layout (rc) once. A record that cannot
 * be written leaves the others to their timeout; the epoch fails here. */
static int layout_publish(struct cr_epoch *ep, int rc)
{
    if (ep->published || !ep->hdr.nranks || ep->hdr.nranks == 1)
        return rc;
    ep->published = 1;
    int fault = cr_fault("layout-publishing");     /* :eio fails the record's write */
    struct layout_rec r = { .epoch = ep->hdr.epoch, .nonce = ep->nonce, .rc = rc,
        .ntopo = rc == 0 ? ep->ntopo : 0 };
    memcpy(r.magic, LAYOUT_MAGIC, 8);
    for (int i = 0; i < CR_DS_COUNT; i++)
        r.ds_off[i] = ep->hdr.ds[i].offset;
    const uint64_t *offs = ep->topo_lens ? ep->topo_lens + ep->ntopo : NULL;
    r.crc = layout_rec_crc(&r, offs);
    char tmp[PATH_MAX + 16], path[PATH_MAX + 16];
    layout_rec_path(ep, tmp, sizeof tmp, ".tmp");
    layout_rec_path(ep, path, sizeof path, "");
    /* Small: one write each (a short one is an error, not retried). */
    int fd = fault ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int w = fault ? fault : fd >= 0 ? 0 : cr_neg_errno();
    if (w == 0 && pwrite(fd, &r, sizeof r, 0) != (ssize_t)sizeof r)
        w = errno ? cr_neg_errno() : -EIO;
    if (w == 0 && r.ntopo && pwrite(fd, offs, r.ntopo * sizeof *offs, sizeof r) !=
                                 (ssize_t)(r.ntopo * sizeof *offs))
        w = errno ? cr_neg_errno() : -EIO;
    if (fd >= 0 && close(fd) < 0 && w == 0)
        w = cr_neg_errno();
    if (w == 0 && rename(tmp, path) < 0)
        w = cr_neg_errno();
    if (w < 0) {
        unlink(tmp);
        char failed[PATH_MAX + 40];
        layout_fail_path(ep, failed, sizeof failed);
        int ffd = open(failed, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (ffd >= 0 && close(ffd) == 0)
            cr_errc(w, "%s: cannot publish the layout to the other ranks (told them so)", path);
        else
            cr_errc(w, "%s: cannot publish the layout to the other ranks, nor that it failed "
                    "(%s): they give up after %d s", path, strerror(errno), LAYOUT_WAIT_SEC);
    }
    return rc < 0 ? rc : w;
}

/* Rank 0, at commit: the record's work is done (every rank has voted, so
 * none reads it any more). */
static void layout_unpublish(struct cr_epoch *ep)
{
    if (!ep || !ep->published)
        return;
    char path[PATH_MAX + 40];
    layout_rec_path(ep, path, sizeof path, "");
    if (unlink(path) < 0 && errno != ENOENT)
        cr_perr("unlink(%s)", path);
    layout_fail_path(ep, path, sizeof path);
    if (unlink(path) < 0 && errno != ENOENT)
        cr_perr("unlink(%s)", path);
}

/* One look at the record: 1 = this attempt's (ep's offsets set, or its
 * failure in *rc), 0 = not there yet (or an earlier attempt's, or being
 * replaced), negative = unreadable. */
static int layout_rec_read(struct cr_epoch *ep, const char *path, int *rc)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : cr_neg_errno();
    struct layout_rec r;
    uint64_t *offs = ep->topo_lens ? ep->topo_lens + ep->ntopo : NULL;
    ssize_t k = pread(fd, &r, sizeof r, 0);
    int got = 0;
    if (k == (ssize_t)sizeof r && !memcmp(r.magic, LAYOUT_MAGIC, 8) &&
        r.epoch == ep->hdr.epoch && r.nonce == ep->nonce) {
        size_t want = r.rc == 0 ? ep->ntopo : 0;
        if (r.ntopo == want &&
            (!want || pread(fd, offs, want * sizeof *offs, sizeof r) ==
                          (ssize_t)(want * sizeof *offs)) &&
            layout_rec_crc(&r, offs) == r.crc)
            got = 1;
        else
            got = -EBADMSG;       /* this attempt's, but damaged */
    }
    close(fd);
    if (got == 1) {
        *rc = (int)r.rc;
        for (int i = 0; i < CR_DS_COUNT; i++)
            ep->hdr.ds[i].offset = r.ds_off[i];
    }
    return got;
}

/* Rank > 0: wait for rank 0's record. Polls from 50 us up to every 2 ms:
 * the layout takes rank 0's helper 1-2 ms once rank 0's writer asks. */
static int layout_wait_remote(struct cr_epoch *ep)
{
    char path[PATH_MAX + 16], failed[PATH_MAX + 40];
    layout_rec_path(ep, path, sizeof path, "");
    layout_fail_path(ep, failed, sizeof failed);
    cr_store_fault("layout-waiting");
    struct timespec t0, now, nap = { 0, 50000 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int rc = 0, got = layout_rec_read(ep, path, &rc);
        if (got < 0) {
            cr_errc(got, "%s: the layout record of epoch %llu", path,
                    (unsigned long long)ep->hdr.epoch);
            return got;
        }
        if (got)
            return rc < 0 ? CR_EREMOTE : 0;   /* rank 0 logged why */
        if (access(failed, F_OK) == 0) {
            cr_err("%s: rank 0 could not publish the layout of epoch %llu; the epoch fails",
                   path, (unsigned long long)ep->hdr.epoch);
            return CR_EREMOTE;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= LAYOUT_WAIT_SEC) {
            cr_err("%s: no layout from rank 0 in %d s; epoch %llu fails", path,
                   LAYOUT_WAIT_SEC, (unsigned long long)ep->hdr.epoch);
            return -ETIMEDOUT;
        }
        nanosleep(&nap, NULL);
        if (nap.tv_nsec < 2000000)
            nap.tv_nsec *= 2;
    }
}

/* Rank 0: ask the helper. One that is gone is replaced once. */
static int layout_ask_helper(struct cr_epoch *ep)
{
    struct cr_store *st = ep->st;
    struct cr_layout_in in = { .path = ep->path, .hdr = &ep->hdr, .identity = st->id0,
        .ntopo = ep->ntopo, .topo_host = (const char (*)[CR_HOST_MAX])ep->topo_hosts,
        .topo_len = ep->topo_lens, .align = st->opts.align };
    int rc = -EPIPE;
    for (int attempt = 0; attempt < 2 && rc == -EPIPE; attempt++) {
        if (!cr_layout_helper_usable(st->helper)) {
            cr_layout_helper_stop(st->helper);
            st->helper = NULL;
            if ((rc = cr_layout_helper_start(&st->helper)) < 0)
                break;
        }
        rc = cr_layout_helper_send(st->helper, &in);
        if (rc == 0)
            rc = cr_layout_helper_receive(st->helper, &ep->hdr, ep->topo_lens + ep->ntopo,
                                          in.ntopo, ep->path);
        if (rc < 0 && !cr_layout_helper_usable(st->helper))
            rc = -EPIPE;      /* it died: once more with a new one */
    }
    if (rc == -EPIPE) {
        /* A new helper died on the same request as the old one: one that
         * dies on every request (a broken installation, a helper of
         * another build) would fail every epoch from now on. */
        cr_layout_helper_stop(st->helper);
        st->helper = NULL;
        atomic_store(&st->helper_off, 1);
        cr_warn("%s: the layout helper died on this epoch's request twice: this epoch fails, "
                "and the following ones are laid out in the checkpoint call", ep->path);
    }
    return layout_publish(ep, rc);
}

/* layout_ready's work, under the epoch's layout lock. */
static int layout_wait(struct cr_epoch *ep)
{
    int rc = ep->remote_layout ? layout_wait_remote(ep) : layout_ask_helper(ep);
    if (rc == 0 && ep->topo_mine >= 0)
        ep->topo_off = ep->topo_lens[ep->ntopo + (size_t)ep->topo_mine];
    if (rc == 0)
        rc = open_created(ep);
    if (rc < 0)
        atomic_store(&ep->failed, rc);
    atomic_store(&ep->layout_pending, 0);   /* last: puts of other threads go on */
    return rc;
}

/* The helper's layout of ep, asked for by whoever first needs the file:
 * the first put or finish - the writer's, in an asynchronous checkpoint,
 * so the helper starts only once the checkpoint call has returned (asked
 * for in the call, it took the core from the call's end). An epoch
 * abandoned before either never has its file made. Not HDF5 on this
 * thread: a helper that is gone is replaced once. A failure fails the
 * epoch like a failed write. */
static int layout_ready(struct cr_epoch *ep)
{
    if (!atomic_load(&ep->layout_pending))
        return atomic_load(&ep->failed);
    pthread_mutex_lock(&ep->layout_lock);
    int rc = atomic_load(&ep->layout_pending) ? layout_wait(ep) : atomic_load(&ep->failed);
    pthread_mutex_unlock(&ep->layout_lock);
    return rc;
}

/* Create the HDF5 file (collective, once the sizes are shared), or - when
 * rank 0 has a layout helper - keep what laying it out needs for
 * layout_ready; returns the local status, which the caller agrees on. */
static int create_file(struct cr_epoch *ep, const struct cr_epoch_desc *d,
                       char (*hosts)[CR_HOST_MAX], uint64_t *lens, uint64_t *offs)
{
    struct cr_store *st = ep->st;
    struct cr_coll *c = st->coll;
    int n = c->size;
    const struct cr_begin_info *all = st->peers;
    size_t ntopo = 0;
    make_header(ep, d, &all[0]);
    cr_epoch_path(st, ep->hdr.epoch, ep->path, sizeof ep->path);
    plan_layout(ep, all, n, c->rank, st->opts.align);
    gather_topology(ep, all, n, hosts, lens, &ntopo);
    ep->hdr.ntopo = (uint32_t)ntopo;
    /* The first rank of each node writes that node's topology. */
    ep->topo_mine = -1;
    for (size_t j = 0; j < ntopo; j++) {
        int first = 0;
        while (first < n && strncmp(all[first].host, hosts[j], CR_HOST_MAX))
            first++;
        if (first == c->rank && lens[j]) {
            ep->topo_mine = (int)j;
            ep->topo_len = lens[j];
        }
    }
    if (all[0].helper) {
        /* A file of this name is an uncommitted leftover (begin numbers
         * epochs past the committed ones). It may still be open in the
         * layout helper of a process that died (the helper finishes the
         * request it was serving): HDF5's lock on that file made H5Fcreate
         * fail (test_store_crash, about one run in 18). A new inode has no
         * lock, and the old helper's late writes go to the old one. */
        if (c->rank == 0 && unlink(ep->path) == 0)
            cr_dbg("%s: removed a leftover file of an uncommitted epoch", ep->path);
        if (cr_fault_errno("epoch-create")) {
            /* As when the fault fires in h5layout.c: HDF5 reports no errno. */
            cr_err("%s: H5Fcreate failed (rank %d of %d)", ep->path, c->rank, n);
            return -EIO;
        }
        size_t k = ntopo ? ntopo : 1;
        ep->topo_hosts = malloc(k * CR_HOST_MAX);
        ep->topo_lens = calloc(2 * k, sizeof *ep->topo_lens);
        if (!ep->topo_hosts || !ep->topo_lens)
            return -ENOMEM;
        memcpy(ep->topo_hosts, hosts, ntopo * CR_HOST_MAX);
        memcpy(ep->topo_lens, lens, ntopo * sizeof *lens);
        ep->ntopo = ntopo;
        ep->nonce = all[0].nonce;
        ep->remote_layout = c->rank != 0;
        ep->layout_pending = 1;
        return 0;
    }
    struct cr_layout_in in = { .path = ep->path, .coll = c, .fapl = &st->fapl,
        .hdr = &ep->hdr, .identity = st->id0, .ntopo = ntopo, .topo_host = hosts,
        .topo_len = lens, .align = st->opts.align };
    int rc = cr_layout_create(&in, &ep->hdr, offs);
    if (rc < 0)
        return rc;
    if (ep->topo_mine >= 0)
        ep->topo_off = offs[ep->topo_mine];
    return open_created(ep);
}

static void epoch_free(struct cr_epoch *ep)
{
    if (!ep)
        return;
    if (ep->fd >= 0)
        close(ep->fd);
    pthread_mutex_destroy(&ep->layout_lock);
    free(ep->topo_hosts);
    free(ep->topo_lens);
    free(ep->rows);
    free(ep->done);
    free(ep->threads);
    free(ep);
}

/* Allocate this rank's slice of /pages before any data arrives. The file
 * is sparse after creation (fill time never), so without this the blocks
 * are allocated at writeback, where the delayed allocation of several
 * ranks writing one file interleaves their extents and serialises them on
 * the inode's allocation lock; one call per rank gives each slice one
 * contiguous run (unwritten until put fills it; a reader of a slice never
 * put sees zeros, which the page index never points at). Best effort: a
 * filesystem without fallocate (or a full one, which the pwrites then
 * report) loses only the speed-up.
 *
 * Called by the first put, on the thread that writes the data (the
 * background writer of an asynchronous checkpoint), not by begin: inside
 * begin it was part of the application's blocking phase, where it took
 * 0.02-0.95 ms on ext4 (1 rank, 1 GiB, 1% written: 10 MiB reserved).
 * Not at all in a file of one rank: with no other writer to interleave
 * with, delayed allocation lays the slice out in one run by itself. */
static void reserve_slice(struct cr_epoch *ep)
{
    if (atomic_exchange(&ep->reserved, 1))
        return;
    if (!ep->me.data_bytes || !ep->st->prealloc || ep->hdr.nranks == 1)
        return;
    int rc = fallocate(ep->fd, FALLOC_FL_KEEP_SIZE, (off_t)ep->data_base,
                       (off_t)ep->me.data_bytes);
    if (rc < 0)
        cr_dbg("%s: fallocate of %llu bytes at %llu: %s (writing without it)", ep->path,
               (unsigned long long)ep->me.data_bytes, (unsigned long long)ep->data_base,
               strerror(errno));
}

/* Two collectives besides HDF5's: the allgather of the sizes (which also
 * agrees on going on) before the file is created, and one agreement after
 * it (creation, the rows, opening the file). On these oversubscribed or
 * busy nodes every extra round costs a scheduling delay. */
int cr_epoch_begin(struct cr_store *st, const struct cr_epoch_desc *d, struct cr_epoch **out)
{
    struct cr_coll *c = st->coll;
    size_t n = (size_t)c->size;
    uint64_t data_bytes = 0;
    /* Until commit succeeds, the pages the caller collected for this epoch
     * (their dirty bits already cleared) are in no committed epoch: a
     * failure anywhere from here on makes the next epoch full. */
    st->force_full = 1;
    /* The previous sweep may be deleting a leftover with this epoch's name. */
    cr_gc_wait(st);
    struct cr_epoch *ep = calloc(1, sizeof *ep);
    char (*hosts)[CR_HOST_MAX] = calloc(n, CR_HOST_MAX);
    uint64_t *lens = calloc(n, 2 * sizeof *lens);    /* lens, then offsets */
    int rc = ep && hosts && lens ? check_desc(st, d, &data_bytes) : -ENOMEM;
    if (rc == 0 && !st->topo_xml && cr_topology_xml(&st->topo_xml, &st->topo_len) < 0)
        cr_warn("%s: node topology unavailable; the epoch records none for %s", st->dir,
                st->host);
    rc = share_sizes(st, d, data_bytes, rc);
    if (rc < 0) {
        free(ep);
        free(hosts);
        free(lens);
        return rc;
    }
    ep->st = st;
    ep->fd = -1;
    pthread_mutex_init(&ep->layout_lock, NULL);
    rc = create_file(ep, d, hosts, lens, lens + n);
    free(hosts);
    free(lens);
    if (rc == 0)
        rc = prepare_rows(ep, d, c->rank);
    rc = cr_coll_agree(c, rc);
    if (rc < 0) {
        /* Making the list is collective (it duplicates the communicator):
         * after a failure every rank makes a new one next time, so a rank
         * that failed to make it stays in step with the others. */
        if (st->fapl >= 0)
            H5Pclose(st->fapl);
        st->fapl = H5I_INVALID_HID;
        goto free_ep;
    }
    ep->me.rank = (uint32_t)c->rank;
    ep->me.pid = (uint32_t)getpid();
    ep->me.region_base = d->region_base;
    ep->me.region_size = d->region_size;
    ep->me.nextents = d->nextents;
    ep->me.data_bytes = data_bytes;
    ep->me.nthreads = d->nthreads;
    memcpy(ep->me.hostname, st->host, CR_HOST_MAX);
    cr_store_fault("epoch-begun");
    *out = ep;
    return 0;
free_ep:
    epoch_free(ep);
    return rc;
}

int cr_epoch_prepare(struct cr_epoch *ep)
{
    if (!ep)
        return -EINVAL;
    return ep->remote_layout ? atomic_load(&ep->failed) : layout_ready(ep);
}

uint64_t cr_epoch_number(const struct cr_epoch *ep)
{
    return ep->hdr.epoch;
}

static int pwrite_full(int fd, const void *buf, size_t n, uint64_t off, const char *path,
                       const char *what)
{
    const char *p = buf;
    while (n) {
        ssize_t w = cr_fault_errno("store-pwrite") ? -1 :
                    pwrite(fd, p, CR_MIN(n, (size_t)1 << 30), (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int rc = w < 0 ? cr_neg_errno() : -EIO;
            cr_errc(rc, "pwrite(%s, %s, %zu bytes at %llu)", path, what, n,
                    (unsigned long long)off);
            return rc;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Start writing the slice back once WB_WINDOW bytes have been put since
 * the last start, rather than all at the final fsync: the disk then works
 * while the next extents are copied. Windows are large so the block layer
 * still gets large requests (per-2 MiB kicks were measured slower than
 * plain write+fsync under load). Extents are normally put in order; an
 * out-of-order put only makes a window start late, never lose data (the
 * fsync in finish writes everything). */
#define WB_WINDOW (32ull << 20)
static void kick_writeback(struct cr_epoch *ep, uint64_t end)
{
    uint64_t from = atomic_load(&ep->kicked);
    while (end >= from + WB_WINDOW) {
        if (atomic_compare_exchange_weak(&ep->kicked, &from, end)) {
            (void)sync_file_range(ep->fd, (off64_t)(ep->data_base + from),
                                  (off64_t)(end - from), SYNC_FILE_RANGE_WRITE);
            return;
        }
    }
}

int cr_epoch_put(struct cr_epoch *ep, size_t i, const void *src)
{
    if (!ep || i >= ep->me.nextents || (!src && !(ep->rows[i].flags & CR_EXTENT_ZERO)))
        return -EINVAL;
    struct cr_index_row *r = &ep->rows[i];
    if (r->flags & CR_EXTENT_ZERO)
        return 0;
    if (ep->done[i] || ep->finished) {
        cr_err("%s: extent %zu put twice or after finish", ep->path, i);
        return CR_ESTATE;
    }
    int rc = layout_ready(ep);
    if (rc < 0)
        return rc;
    r->data_crc = cr_crc32c(0, src, r->len);
    reserve_slice(ep);
    rc = pwrite_full(ep->fd, src, r->len, ep->data_base + (r->offset - ep->me.data_offset),
                         ep->path, "page data");
    if (rc < 0) {
        atomic_store(&ep->failed, rc);
        return rc;
    }
    kick_writeback(ep, r->offset - ep->me.data_offset + r->len);
    ep->done[i] = 1;
    atomic_fetch_add(&ep->nput, 1);
    cr_store_fault("epoch-put");
    return 0;
}

/* Bytes per write of cr_epoch_put_batch: system calls are amortised long
 * before, and writeback (WB_WINDOW) is still kicked in time. */
#define PUT_BATCH_MAX (8ull << 20)

int cr_epoch_put_batch(struct cr_epoch *ep, size_t *next, const uint8_t **src)
{
    return cr_epoch_put_run(ep, next, SIZE_MAX, src);
}

int cr_epoch_put_run(struct cr_epoch *ep, size_t *next, size_t end, const uint8_t **src)
{
    if (!ep || !next || !src)
        return -EINVAL;
    size_t n = CR_MIN(end, ep->me.nextents), i = *next;
    while (i < n && (ep->rows[i].flags & CR_EXTENT_ZERO))
        i++;
    if (i == n) {
        *next = n;
        return 0;
    }
    if (!*src)
        return -EINVAL;
    if (ep->finished) {
        cr_err("%s: extents put after finish", ep->path);
        return CR_ESTATE;
    }
    int rc = layout_ready(ep);
    if (rc < 0)
        return rc;
    /* Rows of one rank lie back to back in its slice (begin assigns the
     * offsets so); a gap would only end the batch. */
    size_t j = i, nput = 0;
    uint64_t bytes = 0;
    const struct cr_index_row *last = NULL;
    for (; j < n; j++) {
        struct cr_index_row *r = &ep->rows[j];
        if (r->flags & CR_EXTENT_ZERO)
            continue;
        if (last && (last->offset + last->len != r->offset || bytes + r->len > PUT_BATCH_MAX))
            break;
        if (ep->done[j]) {
            cr_err("%s: extent %zu put twice", ep->path, j);
            return CR_ESTATE;
        }
        r->data_crc = cr_crc32c(0, *src + bytes, r->len);
        bytes += r->len;
        last = r;
        nput++;
    }
    reserve_slice(ep);
    rc = pwrite_full(ep->fd, *src, bytes,
                         ep->data_base + (ep->rows[i].offset - ep->me.data_offset), ep->path,
                         "page data");
    if (rc < 0) {
        atomic_store(&ep->failed, rc);
        return rc;
    }
    kick_writeback(ep, last->offset - ep->me.data_offset + last->len);
    for (size_t k = i; k < j; k++)
        ep->done[k] = 1;
    atomic_fetch_add(&ep->nput, nput);
    cr_store_fault("epoch-put");
    *next = j;
    *src += bytes;
    return 0;
}

static int write_tables(struct cr_epoch *ep)
{
    const struct cr_epoch_header *h = &ep->hdr;
    size_t ne = ep->me.nextents, nt = ep->me.nthreads;
    for (size_t i = 0; i < ne; i++)
        ep->rows[i].crc = cr_record_crc(&ep->rows[i], sizeof ep->rows[i]);
    int rc = 0;
    if (ne)
        rc = pwrite_full(ep->fd, ep->rows, ne * sizeof *ep->rows, h->ds[CR_DS_ID_INDEX].offset +
                         ep->me.first_extent * sizeof *ep->rows, ep->path, CR_DS_INDEX);
    if (!rc && nt)
        rc = pwrite_full(ep->fd, ep->threads, nt * sizeof *ep->threads,
                         h->ds[CR_DS_ID_THREADS].offset +
                         ep->me.first_thread * sizeof *ep->threads, ep->path, CR_DS_THREADS);
    if (!rc && ep->topo_len)
        rc = pwrite_full(ep->fd, ep->st->topo_xml, ep->topo_len, ep->topo_off, ep->path,
                         CR_GRP_TOPO);
    if (!rc && ep->write_identity)
        rc = pwrite_full(ep->fd, ep->st->identity, ep->st->identity_len,
                         h->ds[CR_DS_ID_IDENT].offset + ep->me.identity_offset, ep->path,
                         CR_DS_IDENT);
    if (!rc && ep->me.rank == 0) {
        size_t n = sizeof *h + h->identity_len;
        char *buf = malloc(n);
        if (!buf)
            return -ENOMEM;
        memcpy(buf, h, sizeof *h);
        memcpy(buf + sizeof *h, ep->st->identity, h->identity_len);
        ((struct cr_epoch_header *)buf)->crc = 0;
        uint32_t crc = cr_crc32c(0, buf, n);
        memcpy(buf + offsetof(struct cr_epoch_header, crc), &crc, 4);
        rc = pwrite_full(ep->fd, buf, n, 0, ep->path, "epoch header");
        free(buf);
    }
    return rc;
}

int cr_epoch_finish(struct cr_epoch *ep)
{
    if (!ep)
        return -EINVAL;
    int rc = layout_ready(ep);
    if (rc < 0)
        return rc;
    if (ep->finished)
        return CR_ESTATE;
    if (atomic_load(&ep->nput) != ep->nneed) {
        cr_err("%s: finish with %zu of %zu extents put", ep->path,
               (size_t)atomic_load(&ep->nput), ep->nneed);
        return CR_ESTATE;
    }
    rc = write_tables(ep);
    /* The rank row goes last: its valid CRC says this rank's part is whole. */
    if (!rc) {
        ep->me.crc = cr_record_crc(&ep->me, sizeof ep->me);
        rc = pwrite_full(ep->fd, &ep->me, sizeof ep->me, ep->hdr.ds[CR_DS_ID_RANKS].offset +
                         ep->me.rank * sizeof ep->me, ep->path, CR_DS_RANKS);
    }
    if (!rc && (cr_fault_errno("epoch-fsync") || fsync(ep->fd) < 0)) {
        rc = cr_neg_errno();
        cr_perr("fsync(%s)", ep->path);
    }
    if (rc < 0)
        atomic_store(&ep->failed, rc);
    else
        ep->finished = 1;
    cr_store_fault("epoch-finished");
    return rc;
}

/* The same status on every rank: the most negative real error (a rank that
 * only learned of another's failure contributes nothing). */
static int same_status(struct cr_coll *c, int rc)
{
    int64_t v = rc == CR_EREMOTE ? 0 : rc;
    int r = c->allreduce_min(c, &v);
    if (r < 0)
        return r;
    return v < 0 ? (int)v : rc;
}

static int commit(struct cr_store *st, struct cr_epoch *ep, int local_status,
                  struct cr_index_pub **pub)
{
    struct cr_coll *c = st->coll;
    int rc = local_status < 0 ? local_status : 0;
    if (rc == 0 && (!ep || !ep->finished))
        rc = ep && atomic_load(&ep->failed) < 0 ? atomic_load(&ep->failed) : CR_ESTATE;
    /* Everything that can fail before the vote is prepared before it, so a
     * deferred commit is one agreement and a complete one two (the vote,
     * then whether rank 0 wrote the index). */
    struct cr_index next = { 0 };
    struct cr_index_pub *p = NULL;
    /* Rank 0 never asked its helper (its epoch failed first): the other
     * ranks' writers are still waiting for the layout, and must hear of
     * the failure before they can vote. */
    if (ep && c->rank == 0 && atomic_load(&ep->layout_pending))
        layout_publish(ep, rc < 0 ? rc : CR_ESTATE);
    if (rc == 0) {
        struct cr_index_entry e = { .epoch = ep->hdr.epoch, .parent = ep->hdr.parent,
            .flags = ep->hdr.full ? CR_ENTRY_FULL : 0, .nranks = ep->hdr.nranks,
            .ctime = ep->hdr.ctime };
        snprintf(e.name, sizeof e.name, CR_EPOCH_FMT, (unsigned long long)e.epoch);
        rc = cr_store_index_next(st, &e, &next);
        if (rc == 0 && pub && c->rank == 0)
            rc = cr_index_pub_new(st, &next, e.epoch, &p);
    }
    rc = same_status(c, rc);
    layout_unpublish(ep);
    if (rc == 0 && !pub)
        rc = same_status(c, cr_store_index_write(st, &next));
    if (rc == 0) {
        cr_store_index_adopt(st, &next, !pub);
        if (pub)
            *pub = p;
        p = NULL;
    }
    free(next.e);
    cr_index_pub_free(p);
    if (rc == 0) {
        st->last = ep->hdr.epoch;
        st->force_full = 0;
        cr_info("%s: %s epoch %llu (%s)", st->dir, pub ? "agreed on" : "committed",
                (unsigned long long)st->last, ep->hdr.full ? "full" : "incremental");
        cr_store_fault("rank-committed");
    } else {
        st->force_full = 1;
        /* A failed epoch is never restored (even if its index reached the
         * disk before a failed directory fsync) and must not hold space a
         * full filesystem needs for the next attempt. */
        if (ep && ep->path[0] && c->rank == 0 && unlink(ep->path) < 0 && errno != ENOENT)
            cr_perr("unlink(%s) of an abandoned epoch", ep->path);
        cr_warn("%s: epoch %llu abandoned: %s", st->dir,
                ep ? (unsigned long long)ep->hdr.epoch : 0ULL, cr_strerror(rc));
    }
    epoch_free(ep);
    return rc;
}

int cr_epoch_commit(struct cr_store *st, struct cr_epoch *ep, int local_status)
{
    return commit(st, ep, local_status, NULL);
}

int cr_epoch_commit_deferred(struct cr_store *st, struct cr_epoch *ep, int local_status,
                             struct cr_index_pub **pub)
{
    *pub = NULL;
    return commit(st, ep, local_status, pub);
}
