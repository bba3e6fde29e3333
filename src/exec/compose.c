/*
 * compose.c - full epochs composed from the previous chain (async mode).
 *
 * A full epoch holds every populated page, so that restarts never read
 * more than CRMPI_FULL_EVERY epochs and old files can go. Copying all those
 * pages in the blocking phase costs about a memcpy of the heap each
 * CRMPI_FULL_EVERY-th checkpoint (measured, perf/fast, full table: 64 MiB
 * 9.0 ms, 256 MiB 35.5 ms; a 1 GiB heap exceeds the staging buffer and was
 * written inside the call: 1.64 s), where an incremental checkpoint of the
 * same heap blocks for ~3 ms.
 *
 * But a page not written since the previous epoch holds what the chain of
 * that epoch says it holds: every incremental epoch relies on exactly this
 * (restoring it = its chain overlaid with its written pages). So the
 * blocking phase of a composed full epoch is an incremental one's - snapshot
 * the written pages, stage them, deferred re-arm - plus one read-only walk
 * for the populated extents, which become the epoch's extents
 * (cr_compose_plan). The writer then builds each extent from the chain
 * (whole source extents read with pread and CRC-checked, as a lazy restore
 * or cr_rollback reads them: no HDF5, no MPI) overlaid with the staged
 * pages, and puts it (cr_compose_put). The file is a full epoch like any
 * other: restore, lazy restore and garbage collection cannot tell.
 *
 * The chain's files stay while the writer reads them: they are the chain
 * of the newest committed epoch, which garbage collection keeps (and an
 * open descriptor outlives an unlink anyway). A chain that fails its CRC
 * fails the epoch, which the next checkpoint reports on every rank; that
 * chain was the restart point, so it was damaged already, and the engine
 * then writes a full epoch from memory, which needs no chain.
 *
 * Used only when the engine knows the tracker's base is that committed
 * epoch (not after a failed epoch, a restart or a lazy restore: engine.c
 * forces a full epoch from memory then) and CRMPI_FULL_FROM_CHAIN is on.
 */
#include "exec/exec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fault.h"
#include "common/log.h"
#include "region/region.h"
#include "store/store.h"

/* Bytes built per write: system calls amortised (cr_epoch_put_batch puts
 * at most 8 MiB per pwrite too), and a buffer small enough to stay warm. */
#define COMPOSE_BATCH ((size_t)8 << 20)

static int push(struct cr_extent **v, size_t *n, size_t *cap, uintptr_t a, size_t len)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 1024;
        struct cr_extent *p = realloc(*v, c * sizeof *p);
        if (!p)
            return -ENOMEM;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = (struct cr_extent){ .addr = a, .len = len, .flags = 0 };
    return 0;
}

/* Append [a, end) cut into data extents of at most CR_EXTENT_MAX. */
static int push_cut(struct cr_extent **v, size_t *n, size_t *cap, uintptr_t a, uintptr_t end)
{
    for (int rc; a < end; a += CR_MIN(end - a, CR_EXTENT_MAX))
        if ((rc = push(v, n, cap, a, CR_MIN(end - a, CR_EXTENT_MAX))))
            return rc;
    return 0;
}

int cr_compose_plan(const struct cr_extent *pop, size_t np, const struct cr_extent *dirty,
                    size_t nd, struct cr_extent **out, size_t *nout, size_t *cap)
{
    /* The union of the populated extents and the written data extents
     * (written pages are populated, so this is pop; the union only makes
     * sure), both sorted and disjoint. Discarded (zero) pages are in
     * neither unless touched again, and then the overlay zeroes them. */
    *nout = 0;
    size_t i = 0, j = 0;
    uintptr_t lo = 0, hi = 0;
    int open = 0, rc = 0;
    while (rc == 0 && (i < np || j < nd)) {
        const struct cr_extent *x;
        if (j < nd && (dirty[j].flags & CR_EXTENT_ZERO)) {
            j++;
            continue;
        }
        if (i < np && (j >= nd || pop[i].addr <= dirty[j].addr))
            x = &pop[i++];
        else
            x = &dirty[j++];
        if (open && x->addr <= hi) {
            hi = CR_MAX(hi, x->addr + x->len);
            continue;
        }
        if (open)
            rc = push_cut(out, nout, cap, lo, hi);
        lo = x->addr;
        hi = x->addr + x->len;
        open = 1;
    }
    if (rc == 0 && open)
        rc = push_cut(out, nout, cap, lo, hi);
    return rc;
}

/* ---- the writer's side ---------------------------------------------------- */

/* The last source extent read from one chain link. Pieces come in address
 * order, and so do each link's extents, but the links interleave (a page of
 * an increment inside an extent of the full epoch): one cache per link
 * reads every source extent once (one cache for all re-read a 1 MiB extent
 * of the full epoch around every page of an increment: measured 29 s
 * instead of 2.9 s for 100 checkpoints of 8 MiB with every other page
 * written). */
struct src_cache {
    uint8_t *buf;
    size_t cap;
    uint64_t ext;                /* UINT64_MAX: none                           */
    uintptr_t addr;
};

static struct {
    uint8_t *buf;                /* COMPOSE_BATCH bytes being built            */
    struct src_cache *link;      /* one per chain link                         */
    size_t nlink;
} C;

struct composer {
    const struct cr_write_job *j;
    struct cr_restore *r;
    struct cr_restore_piece *pc;
    size_t npc;
    size_t d;                    /* first written extent not wholly below       */
    size_t doff;                 /* its bytes' offset in the staged data        */
    uint64_t chain_bytes;        /* read from the chain                          */
};

/* The chain's bytes of [a, end) into dst. */
static int from_chain(struct composer *c, uintptr_t a, uintptr_t end, uint8_t *dst)
{
    uintptr_t a0 = a;
    for (size_t i = cr_restore_piece_at(c->pc, c->npc, a); a < end; i++) {
        if (i >= c->npc || c->pc[i].addr >= end) {
            memset(dst + (a - a0), 0, end - a);    /* no piece: never had contents */
            break;
        }
        const struct cr_restore_piece *p = &c->pc[i];
        if (p->addr > a) {
            memset(dst + (a - a0), 0, p->addr - a);
            a = p->addr;
        }
        uintptr_t hi = CR_MIN(end, p->addr + p->len);
        if (p->zero) {
            memset(dst + (a - a0), 0, hi - a);
        } else {
            struct src_cache *sc = &C.link[p->link];
            if (p->ext != sc->ext) {
                size_t elen;
                cr_restore_extent(c->r, p->link, p->ext, &sc->addr, &elen);
                if (elen > sc->cap) {
                    uint8_t *nb = realloc(sc->buf, elen);
                    if (!nb)
                        return -ENOMEM;
                    sc->buf = nb;
                    sc->cap = elen;
                }
                sc->ext = UINT64_MAX;
                int rc = cr_fault("compose-read");
                if (rc == 0)
                    rc = cr_restore_fetch(c->r, p->link, p->ext, sc->buf);
                if (rc) {
                    cr_errc(rc, "composing a full checkpoint epoch: cannot read extent %llu "
                            "of epoch %llu", (unsigned long long)p->ext,
                            (unsigned long long)cr_restore_link_epoch(c->r, p->link));
                    return rc;
                }
                sc->ext = p->ext;
                c->chain_bytes += elen;
            }
            memcpy(dst + (a - a0), sc->buf + (a - sc->addr), hi - a);
        }
        a = hi;
    }
    return 0;
}

/* Extent x of the epoch into dst: the chain overlaid with the written
 * pages (their staged bytes, or zeros for discarded ones). */
static int compose_extent(struct composer *c, const struct cr_extent *x, uint8_t *dst)
{
    const struct cr_write_job *j = c->j;
    uintptr_t a = x->addr, end = a + x->len;
    while (c->d < j->ndirty && j->dirty[c->d].addr + j->dirty[c->d].len <= a) {
        if (!(j->dirty[c->d].flags & CR_EXTENT_ZERO))
            c->doff += j->dirty[c->d].len;
        c->d++;
    }
    /* Only what the written pages leave uncovered is read from the chain. */
    size_t covered = 0;
    for (size_t t = c->d; t < j->ndirty && j->dirty[t].addr < end; t++)
        covered += CR_MIN(end, j->dirty[t].addr + j->dirty[t].len) -
                   CR_MAX(a, j->dirty[t].addr);
    if (covered < x->len) {
        int rc = from_chain(c, a, end, dst);
        if (rc)
            return rc;
    }
    size_t off = c->doff;
    for (size_t t = c->d; t < j->ndirty && j->dirty[t].addr < end; t++) {
        const struct cr_extent *w = &j->dirty[t];
        uintptr_t lo = CR_MAX(a, w->addr), hi = CR_MIN(end, w->addr + w->len);
        if (w->flags & CR_EXTENT_ZERO) {
            memset(dst + (lo - a), 0, hi - lo);
        } else {
            memcpy(dst + (lo - a), j->data + off + (lo - w->addr), hi - lo);
            off += w->len;
        }
    }
    return 0;
}

int cr_compose_put(const struct cr_write_job *j)
{
    if (!C.buf && !(C.buf = malloc(COMPOSE_BATCH)))
        return -ENOMEM;
    struct composer c = { .j = j };
    int rc = cr_restore_open_local(j->st, j->parent, &c.r);
    if (rc) {
        cr_errc(rc, "composing a full checkpoint epoch: cannot open epoch %llu",
                (unsigned long long)j->parent);
        return rc;
    }
    struct cr_restore_info info;
    cr_restore_info(c.r, &info);
    if (info.nlinks > C.nlink) {
        struct src_cache *v = realloc(C.link, info.nlinks * sizeof *v);
        if (!v) {
            cr_restore_close(c.r);
            return -ENOMEM;
        }
        memset(v + C.nlink, 0, (info.nlinks - C.nlink) * sizeof *v);
        C.link = v;
        C.nlink = info.nlinks;
    }
    for (size_t l = 0; l < C.nlink; l++)
        C.link[l].ext = UINT64_MAX;
    rc = cr_restore_pieces(c.r, &c.pc, &c.npc);
    for (size_t i = 0; i < j->n && rc == 0;) {
        /* Extents are at most CR_EXTENT_MAX, so at least one fits. */
        size_t k = i, fill = 0;
        for (; k < j->n && rc == 0 && fill + j->ext[k].len <= COMPOSE_BATCH; k++) {
            rc = compose_extent(&c, &j->ext[k], C.buf + fill);
            fill += j->ext[k].len;
        }
        const uint8_t *src = C.buf;
        while (i < k && rc == 0) {
            rc = cr_epoch_put_run(j->ep, &i, k, &src);
            if (rc == 0)
                (void)cr_fault("writer-put");
        }
    }
    cr_dbg("composed a full epoch from epoch %llu: %zu extents, %llu bytes read from its chain",
           (unsigned long long)j->parent, j->n, (unsigned long long)c.chain_bytes);
    free(c.pc);
    cr_restore_close(c.r);
    return rc;
}
