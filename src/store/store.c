/*
 * store.c - the checkpoint directory: opening it collectively, the job's
 * identity, choosing full or incremental epochs, and committing an epoch to
 * the index with garbage collection.
 *
 * Rank 0 alone touches the index and deletes files; every other decision is
 * made from the index bytes rank 0 broadcasts, so all ranks hold identical
 * state and take identical collective paths. Garbage collection keeps the
 * newest CRMPI_KEEP committed epochs and every epoch their chains need
 * (the full epoch and the increments up to each kept one); it rewrites the
 * index first and deletes files afterwards, so a crash in between leaves
 * only unreferenced files, which the next collection removes (together with
 * uncommitted epochs left by crashed writers and a stale index.tmp); opening
 * the store collects them too, before the run writes anything.
 */
#include "store/internal.h"
#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

void cr_epoch_path(const struct cr_store *st, uint64_t epoch, char *out, size_t n)
{
    snprintf(out, n, "%s/" CR_EPOCH_FMT, st->dir, (unsigned long long)epoch);
}

/* The directory usually exists: one stat then, not a mkdir per component
 * (each a lookup under its parent's lock). After drop_caches, /tmp/sr/ckpt:
 * the three mkdirs took 1.4-6.8 ms, the stat alone 0.1-5.6 ms (4-5 runs
 * each on a busy machine: the cold path walk is most of either). */
static int mkdir_p(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
        return 0;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; ; s++) {
        if (*s != '/' && *s)
            continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            cr_perr("mkdir(%s)", p);
            return cr_neg_errno();
        }
        *s = c;
        if (!c)
            break;
    }
    if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        cr_err("checkpoint directory %s is not a directory", dir);
        return -ENOTDIR;
    }
    return 0;
}

/* Rank 0: create the directory, read or start the index; the result is
 * broadcast as encoded index bytes (a fresh index has a new job UUID),
 * followed by rank 0's identity text, which every epoch header carries
 * (and every rank needs for the file attributes it creates collectively):
 * an identity does not change while the store is open. */
static int root_prepare(struct cr_store *st, void **buf, size_t *len)
{
    int rc = mkdir_p(st->dir);
    if (rc == 0)
        rc = cr_trust_dir(st->dir);
    if (rc < 0)
        return rc;
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s/" CR_INDEX_TMP, st->dir) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    if (unlink(tmp) == 0)
        cr_info("%s: removed a stale index.tmp of an interrupted commit", st->dir);
    struct cr_index ix;
    rc = cr_index_read(st->dir, &ix);
    if (rc == -ENOENT || rc == CR_ECORRUPT || rc == CR_EFORMAT) {
        if (rc != -ENOENT) {
            cr_err("%s: the index is unusable; committed epochs cannot be restored, new "
                   "ones start a new index", st->dir);
            st->index_bad = 1;
        }
        memset(&ix, 0, sizeof ix);
        if (getrandom(ix.job_uuid, sizeof ix.job_uuid, 0) != sizeof ix.job_uuid) {
            cr_perr("getrandom(job uuid)");
            return cr_neg_errno();
        }
    } else if (rc < 0) {
        return rc;
    }
    rc = cr_index_encode(&ix, buf, len);
    cr_index_free(&ix);
    return rc;
}

static int share_index(struct cr_store *st)
{
    struct cr_coll *c = st->coll;
    void *buf = NULL;
    size_t len = 0;
    int rc = c->rank == 0 ? root_prepare(st, &buf, &len) : 0;
    rc = cr_coll_agree(c, rc);
    if (rc < 0)
        goto free_buf;
    size_t id_len = st->identity_len;
    if (c->rank == 0) {
        void *p = realloc(buf, len + id_len);
        if (p)
            memcpy((char *)p + len, st->identity, id_len);
        else
            free(buf);
        buf = p;
    }
    uint64_t hdr[3] = { len, (uint64_t)st->index_bad, id_len };
    rc = c->rank == 0 && !buf ? -ENOMEM : 0;
    rc = cr_coll_agree(c, rc);
    if (rc == 0)
        rc = c->bcast(c, hdr, sizeof hdr, 0);
    if (rc == 0 && c->rank != 0) {
        len = hdr[0];
        st->index_bad = (int)hdr[1];
        id_len = hdr[2];
        buf = id_len <= CR_IDENTITY_MAX ? malloc(len + id_len + 1) : NULL;
        rc = buf ? 0 : -ENOMEM;
    }
    st->id0 = rc == 0 ? malloc(id_len + 1) : NULL;
    if (rc == 0 && !st->id0)
        rc = -ENOMEM;
    rc = cr_coll_agree(c, rc);
    if (rc == 0)
        rc = cr_coll_agree(c, c->bcast(c, buf, len + id_len, 0));
    if (rc == 0)
        rc = cr_coll_agree(c, cr_index_decode(buf, len, st->dir, &st->ix));
    if (rc == 0) {
        memcpy(st->id0, (char *)buf + len, id_len);
        st->id0[id_len] = 0;
        st->id0_len = id_len;
    }
free_buf:
    free(buf);
    return rc;
}

int cr_store_open(struct cr_store **out, const char *dir, struct cr_coll *coll,
                  const struct cr_store_opts *opts)
{
    const struct cr_config *cfg = cr_config();
    if (!out || !coll || (!dir && !cfg->dir[0]))
        return -EINVAL;
    struct cr_store *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    if (snprintf(st->dir, sizeof st->dir, "%s", dir ? dir : cfg->dir) >= (int)sizeof st->dir) {
        free(st);
        return -ENAMETOOLONG;
    }
    st->coll = coll;
    st->fapl = H5I_INVALID_HID;
    if (opts)
        st->opts = *opts;
    if (!st->opts.full_every)
        st->opts.full_every = cfg->full_every;
    if (!st->opts.keep)
        st->opts.keep = cfg->keep;
    if (!st->opts.align)
        st->opts.align = cfg->align;
    st->prealloc = cfg->prealloc;
    st->gc_inline = cfg->gc_inline;
    if (!cr_is_pow2(st->opts.align)) {
        cr_err("store alignment %zu is not a power of two", st->opts.align);
        free(st);
        return -EINVAL;
    }
    if (gethostname(st->host, sizeof st->host - 1) < 0)
        snprintf(st->host, sizeof st->host, "unknown");
    int rc = cr_identity_text(&st->identity, &st->identity_len);
    st->peers = calloc((size_t)coll->size, sizeof *st->peers);
    if (rc == 0 && !st->peers)
        rc = -ENOMEM;
    rc = cr_coll_agree(coll, rc);
    if (rc == 0)
        rc = share_index(st);
    if (rc < 0) {
        cr_store_close(st);
        return rc;
    }
    /* One job writes a directory, and none of its epochs is being written
     * while it opens the store: every epoch file the index does not name
     * is garbage now (a killed run's unpublished epochs, the files its
     * interrupted sweep had not yet deleted, MPI-IO lock probes). Swept
     * here, not at this run's first index publication (its second
     * checkpoint in async mode), they never add up with the files this
     * run creates before then; the first begin waits for the thread. Not
     * when the index was unusable: its epochs may still be wanted by hand
     * (the first commit of a new index sweeps them). */
    if (coll->rank == 0 && !st->index_bad)
        cr_gc_sweep(st);
    *out = st;
    return 0;
}

void cr_store_close(struct cr_store *st)
{
    if (!st)
        return;
    cr_gc_wait(st);
    cr_layout_helper_stop(st->helper);
    cr_index_free(&st->ix);
    free(st->identity);
    free(st->id0);
    free(st->peers);
    /* HDF5 closes everything itself at MPI_Finalize: a store closed after
     * that holds a stale identifier. */
    if (st->fapl >= 0 && H5Iis_valid(st->fapl) > 0)
        H5Pclose(st->fapl);
    free(st->topo_xml);
    free(st->bad);
    free(st);
}

/* Epochs in the chain ending at epoch (including it), or 0 if broken. */
static unsigned chain_length(const struct cr_index *ix, uint64_t epoch)
{
    unsigned n = 0;
    while (epoch && n <= ix->n) {
        const struct cr_index_entry *e = cr_index_find(ix, epoch);
        if (!e)
            return 0;
        n++;
        if (e->flags & CR_ENTRY_FULL)
            return n;
        epoch = e->parent;
    }
    return 0;
}

int cr_store_next_is_full(const struct cr_store *st)
{
    if (!st->last || st->force_full)
        return 1;
    unsigned n = chain_length(&st->ix, st->last);
    return n == 0 || n >= st->opts.full_every;
}

int cr_store_mark_bad(struct cr_store *st, uint64_t epoch)
{
    if (cr_store_is_bad(st, epoch))
        return 0;
    uint64_t *b = realloc(st->bad, (st->nbad + 1) * sizeof *b);
    if (!b)
        return -ENOMEM;
    b[st->nbad++] = epoch;
    st->bad = b;
    return 0;
}

int cr_store_is_bad(const struct cr_store *st, uint64_t epoch)
{
    for (size_t i = 0; i < st->nbad; i++)
        if (st->bad[i] == epoch)
            return 1;
    return 0;
}

/* Mark the kept epochs: the newest `keep` entries and their chains. */
static void gc_mark(const struct cr_index *ix, unsigned keep, char *need)
{
    unsigned kept = 0;
    for (uint32_t i = ix->n; i-- > 0 && kept < keep; kept++) {
        uint64_t ep = ix->e[i].epoch;
        for (unsigned guard = 0; ep && guard <= ix->n; guard++) {
            const struct cr_index_entry *e = cr_index_find(ix, ep);
            if (!e)
                break;
            need[e - ix->e] = 1;
            if (e->flags & CR_ENTRY_FULL)
                break;
            ep = e->parent;
        }
    }
}

/* The index that commits ne: the current one without entries of an
 * abandoned timeline, plus ne, minus what garbage collection drops. */
int cr_store_index_next(const struct cr_store *st, const struct cr_index_entry *ne,
                        struct cr_index *next)
{
    const struct cr_index *ix = &st->ix;
    struct cr_index_entry *e = malloc((ix->n + 1) * sizeof *e);
    char *need = calloc(ix->n + 1, 1);
    if (!e || !need) {
        free(e);
        free(need);
        return -ENOMEM;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < ix->n; i++)
        /* Entries newer than the base we continued from belong to an
         * abandoned timeline (a restore fell back past them). */
        if (ix->e[i].epoch < ne->epoch && (!st->last || ix->e[i].epoch <= st->last))
            e[n++] = ix->e[i];
    e[n++] = *ne;
    *next = (struct cr_index){ .n = n, .e = e };
    memcpy(next->job_uuid, ix->job_uuid, CR_UUID_BYTES);
    gc_mark(next, st->opts.keep, need);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (need[i])
            e[k++] = e[i];
    next->n = k;
    free(need);
    return 0;
}

int cr_store_index_write(struct cr_store *st, const struct cr_index *next)
{
    return st->coll->rank == 0 ? cr_index_write(st->dir, next) : 0;
}

void cr_store_index_adopt(struct cr_store *st, struct cr_index *next, int complete)
{
    free(st->ix.e);
    st->ix = *next;
    next->e = NULL;
    st->index_bad = 0;
    if (!complete)
        return;
    cr_store_fault("index-committed");
    /* Synchronous: no other epoch is being written, so every file the
     * index does not name is garbage (leftovers of crashed runs too). */
    if (st->coll->rank == 0)
        cr_gc_sweep(st);     /* unlinks in a helper thread (gc.c) */
}

/* ---- deferred publication (asynchronous checkpoints) ----------------------- */

struct cr_index_pub {
    char dir[PATH_MAX];
    struct cr_index ix;
    uint64_t epoch;
};

int cr_index_pub_new(const struct cr_store *st, const struct cr_index *next, uint64_t epoch,
                     struct cr_index_pub **pub)
{
    struct cr_index_pub *p = malloc(sizeof *p);
    *pub = NULL;
    if (!p)
        return -ENOMEM;
    memcpy(p->dir, st->dir, sizeof p->dir);
    p->ix = *next;
    p->ix.e = malloc((next->n ? next->n : 1) * sizeof *next->e);
    p->epoch = epoch;
    if (!p->ix.e) {
        free(p);
        return -ENOMEM;
    }
    memcpy(p->ix.e, next->e, next->n * sizeof *next->e);
    *pub = p;
    return 0;
}

int cr_index_pub_run(struct cr_index_pub *p)
{
    if (!p)
        return 0;
    int rc = cr_index_write(p->dir, &p->ix);
    if (rc == 0) {
        cr_store_fault("index-committed");
        cr_gc_sweep_here(p->dir, &p->ix, p->epoch);   /* already off the critical path */
    }
    cr_index_pub_free(p);
    return rc;
}

void cr_index_pub_free(struct cr_index_pub *p)
{
    if (!p)
        return;
    free(p->ix.e);
    free(p);
}
