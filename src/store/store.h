/*
 * store.h - the checkpoint container: a directory of HDF5 epoch files shared
 * by all ranks, plus an index naming the committed epochs.
 *
 * The layout is specified in src/store/FORMAT.md. Contract with the layers
 * above (the checkpoint engine in src/exec and the MPI layer):
 *
 *   writing one epoch (every rank, in this order)
 *     cr_epoch_begin()   collective: agree on sizes, create the epoch file
 *                        and its shared datasets (all HDF5 metadata work
 *                        happens here, on the calling thread, or in rank
 *                        0's layout helper process: layout_helper.c)
 *     cr_epoch_put()     per rank, any thread, no HDF5: pwrite one extent's
 *                        bytes (checksummed) into this rank's slice
 *     cr_epoch_finish()  per rank, any thread, no HDF5: write the page index,
 *                        thread table and rank record; fsync
 *     cr_epoch_commit()  collective: all ranks agree every finish succeeded,
 *                        then the index is replaced atomically and old
 *                        epochs are garbage-collected (the files deleted
 *                        in a helper thread the next begin and close wait
 *                        for); returns the same
 *                        status on every rank. A failed or abandoned epoch
 *                        never damages the previous committed one.
 *
 *   restoring (every rank)
 *     cr_restore_open()  newest valid committed epoch (or a given one):
 *                        verifies identity (format, job, ranks, build-ids,
 *                        load addresses) and the chain full -> increments;
 *                        falls back to older committed epochs on corruption,
 *                        logging which and why
 *     cr_restore_pages() delivers every extent of this rank, oldest epoch
 *                        of the chain first, each checked against its CRC;
 *                        on CR_ECORRUPT the epoch is marked bad in the store
 *                        handle: agree on the failure (cr_coll_agree),
 *                        reset the region (pages of the failed chain may
 *                        already be in it) and call cr_restore_open(st, 0)
 *                        again, which falls back to an older epoch
 *
 * Collective operations go through struct cr_coll so the same code serves a
 * single process (cr_coll_self) and an MPI job (mpi-wrap provides one over a
 * private communicator); src/ never calls MPI itself.
 * Status codes: 0, -errno, CR_E* (cr.h).
 */
#ifndef CR_STORE_H
#define CR_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <hdf5.h>

#include "common/compiler.h"
#include "region/region.h"

/* ---- collective operations ---------------------------------------------- */
struct cr_coll {
    int rank, size;
    void *ctx;
    /* every rank contributes `bytes` bytes; recv holds size*bytes, by rank */
    int (*allgather)(struct cr_coll *c, const void *send, void *recv, size_t bytes);
    int (*bcast)(struct cr_coll *c, void *buf, size_t bytes, int root);
    int (*barrier)(struct cr_coll *c);
    /* minimum over ranks (used to agree on a status: any error wins) */
    int (*allreduce_min)(struct cr_coll *c, int64_t *val);
    /* file-access property list for creating a shared HDF5 file collectively
     * (H5Pset_fapl_mpio for MPI; a plain sec2 list for one process).
     * The caller closes it. */
    hid_t (*fapl)(struct cr_coll *c);
    /* Rank 0 only, before the collective round that precedes creating the
     * file at path through fapl (no rank is creating it yet): undo what a
     * killed earlier creation of that name may have left behind in the
     * implementation (NULL: nothing to undo). */
    void (*before_create)(struct cr_coll *c, const char *path);
};
/* The trivial collective of a single process. */
struct cr_coll *cr_coll_self(void);
/* Agree on a status: returns the most negative status of all ranks (0 if all
 * succeeded; CR_EREMOTE on ranks whose own status was 0 but another failed). */
int cr_coll_agree(struct cr_coll *c, int status);

/* ---- the directory ------------------------------------------------------- */
struct cr_store;
struct cr_store_opts {
    unsigned full_every;   /* every Nth epoch is full (0: CRMPI_FULL_EVERY)    */
    unsigned keep;         /* committed epochs to keep (0: CRMPI_KEEP)         */
    size_t   align;        /* alignment of bulk data (0: CRMPI_ALIGN)          */
};
/* Open (creating it 0700 if absent, collectively) a checkpoint directory. */
CR_MUST_CHECK int cr_store_open(struct cr_store **st, const char *dir,
                                struct cr_coll *coll, const struct cr_store_opts *opts);
void cr_store_close(struct cr_store *st);
/* Whether the next epoch must be full (first epoch, every Nth, or after an
 * epoch was abandoned). The engine collects all populated pages then. */
int cr_store_next_is_full(const struct cr_store *st);

/* ---- thread contexts ------------------------------------------------------ */
#define CR_CTX_BLOB 256
enum cr_thread_state { CR_THREAD_RUNNING = 1, CR_THREAD_FINISHED = 2 };
struct cr_thread_record {
    uint32_t tid;              /* persistent thread id (0 = main)         */
    uint32_t state;            /* enum cr_thread_state                    */
    uint64_t stack_lo, stack_hi;
    uint64_t retval;           /* for finished threads                    */
    uint8_t  ctx[CR_CTX_BLOB]; /* architecture context, opaque here       */
};

/* ---- writing an epoch ----------------------------------------------------- */
struct cr_epoch;
struct cr_epoch_desc {
    int full;                          /* this epoch holds all populated pages  */
    uintptr_t region_base;
    size_t    region_size;
    size_t    nextents;                /* this rank's extents                   */
    const struct cr_extent *extents;   /* in increasing address order           */
    size_t    nthreads;
    const struct cr_thread_record *threads;
    /* A failure of this rank before begin (collecting its pages, say):
     * begin still takes part in the collectives and returns the agreed
     * failure on every rank (CR_EREMOTE on the others), so one rank's local
     * error never leaves the others waiting in a collective. Extents and
     * threads are then ignored. */
    int status;
};
/* Collective. Creates the epoch file (not yet committed), or, when rank 0
 * has a layout helper process, plans it: the helper makes it when rank 0
 * first needs it, and the other ranks wait for it at their first put or
 * finish (no HDF5 on their threads). */
CR_MUST_CHECK int cr_epoch_begin(struct cr_store *st, const struct cr_epoch_desc *d,
                                 struct cr_epoch **ep);
/* Any thread, no HDF5: have the file laid out now rather than at the first
 * put (rank 0: asks its helper, and publishes the layout to the other
 * ranks; elsewhere nothing). A writer calls it first, so that the other
 * ranks do not wait for whatever it does before its first put. Returns the
 * epoch's status; a failure fails the epoch like a failed put. */
CR_MUST_CHECK int cr_epoch_prepare(struct cr_epoch *ep);
/* Write the bytes of extent i (src points at its contents, extent.len bytes;
 * nothing for CR_EXTENT_ZERO extents). Thread-safe per epoch, no HDF5. */
CR_MUST_CHECK int cr_epoch_put(struct cr_epoch *ep, size_t i, const void *src);
/* The same for several extents whose bytes lie back to back at *src (the
 * staged copy: zero extents take none), in one pwrite of at most a few MiB:
 * puts extents from *next on, then advances *next past them (and past zero
 * extents; == the number of extents when all are put) and *src past their
 * bytes. Four-KiB extents put one by one cost a system call each, which on
 * virtual machines costs more than writing the page. */
CR_MUST_CHECK int cr_epoch_put_batch(struct cr_epoch *ep, size_t *next, const uint8_t **src);
/* The same, putting no extent from `end` on (the caller's bytes end there). */
CR_MUST_CHECK int cr_epoch_put_run(struct cr_epoch *ep, size_t *next, size_t end,
                                   const uint8_t **src);
/* All extents put: write index/tables, fsync. No HDF5. */
CR_MUST_CHECK int cr_epoch_finish(struct cr_epoch *ep);
/* Collective. Commits if every rank's finish succeeded, then frees ep.
 * Returns the agreed status (identical on all ranks). */
CR_MUST_CHECK int cr_epoch_commit(struct cr_store *st, struct cr_epoch *ep, int local_status);
uint64_t cr_epoch_number(const struct cr_epoch *ep);
/* Asynchronous checkpoints: the collective part of a commit only. All
 * ranks agree that every finish succeeded and the store moves on to the
 * new index (the next epoch may chain onto ep) without writing it: rank 0
 * receives *pub (others NULL), the index write (temp file, fsync, rename,
 * fsync of the directory) plus garbage collection, to run later on any
 * thread with cr_index_pub_run() - no HDF5, no MPI, no store state. The
 * epoch is committed on disk only when that succeeded; until then a
 * restart uses the previous index. A failed run must be reported to all
 * ranks by the caller (the next commit's local status on rank 0 does) and
 * the next epoch made full: an index published later names ep again, so
 * nothing is lost. Same status semantics as cr_epoch_commit. */
struct cr_index_pub;
CR_MUST_CHECK int cr_epoch_commit_deferred(struct cr_store *st, struct cr_epoch *ep,
                                           int local_status, struct cr_index_pub **pub);
/* Publish (NULL: nothing to do) and free. 0 or -errno. */
CR_MUST_CHECK int cr_index_pub_run(struct cr_index_pub *pub);
void cr_index_pub_free(struct cr_index_pub *pub);

/* ---- restoring ------------------------------------------------------------ */
struct cr_restore;
struct cr_restore_info {
    uint64_t  epoch;          /* epoch being restored                      */
    uintptr_t region_base;
    size_t    region_size;
    size_t    nthreads;
    size_t    data_bytes;     /* bytes of page data over the whole chain   */
    size_t    nlinks;         /* epochs in the chain (full first)          */
};
/* Collective. epoch == 0: newest valid committed epoch. CR_ENOCKPT when the
 * directory has none; other CR_E* when no committed epoch is usable (the
 * newest one's reason: CR_ECORRUPT, CR_EFORMAT, CR_EFOREIGN, CR_ERANKS,
 * CR_EMISMATCH). On success the restored epoch becomes the parent of the
 * next incremental epoch (the engine re-bases its tracker after restoring). */
CR_MUST_CHECK int cr_restore_open(struct cr_store *st, uint64_t epoch, struct cr_restore **r);
void cr_restore_info(const struct cr_restore *r, struct cr_restore_info *out);
/* This rank's chain ending at the committed epoch, checked as by
 * cr_restore_open but with no collective and no fallback, and without
 * making it the parent of the next epoch: for reading the chain while the
 * job runs on (a full epoch composed from it, compose.c). Any thread, as
 * long as no commit or restore runs on st meanwhile. */
CR_MUST_CHECK int cr_restore_open_local(struct cr_store *st, uint64_t epoch,
                                        struct cr_restore **r);
/* Copies this rank's thread records (n must be >= info.nthreads). */
CR_MUST_CHECK int cr_restore_threads(struct cr_restore *r, struct cr_thread_record *out, size_t n);
/* Writes every extent of the chain to its address (the region must already be
 * open and grown to region_size); zero extents are discarded. Each extent is
 * read into place and then CRC-checked: on a mismatch reading stops and
 * CR_ECORRUPT is returned; memory may then hold part of the failed chain
 * (up to one 4 MiB read group past the bad extent), so the caller resets
 * the region before restoring an older epoch. */
CR_MUST_CHECK int cr_restore_pages(struct cr_restore *r);
/* Where cr_restore_pages_to puts the bytes: map returns the memory that
 * receives [addr, addr+len) (NULL refuses: -EFAULT); zero makes a range read
 * as zeros. cr_restore_pages is this with the region (addresses used as
 * they are, zero = cr_region_discard). Tests and tools use their own. */
struct cr_restore_target {
    void *(*map)(void *arg, uintptr_t addr, size_t len);
    int   (*zero)(void *arg, uintptr_t addr, size_t len);
    void *arg;
    /* optional: called on the reading thread just before [dst, dst+len) is
     * read into (the region backs it with memory in one call) */
    void  (*populate)(void *arg, void *dst, size_t len);
};
CR_MUST_CHECK int cr_restore_pages_to(struct cr_restore *r, const struct cr_restore_target *t);
void cr_restore_close(struct cr_restore *r);

/* ---- lazy restore: the chain's final contents, fetched extent by extent --- */
/* A range of the restored image whose final contents come from one source:
 * extent `ext` of chain link `link` (0 = the full epoch), or zeros. Ranges
 * of the region no piece covers never had contents. */
struct cr_restore_piece {
    uintptr_t addr;
    size_t    len;
    uint32_t  link;
    uint32_t  zero;           /* reads as zeros (discarded in that epoch)   */
    uint64_t  ext;            /* index row of that link                     */
};
/* The pieces of this rank's image, sorted by address, disjoint (newer links
 * hide older ones). *out is malloc'd. */
CR_MUST_CHECK int cr_restore_pieces(struct cr_restore *r, struct cr_restore_piece **out,
                                    size_t *n);
/* The first of n pieces (sorted, disjoint) that ends after address a; n if
 * none does. The piece covers a only if its addr <= a. */
static inline size_t cr_restore_piece_at(const struct cr_restore_piece *pc, size_t n,
                                         uintptr_t a)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pc[mid].addr + pc[mid].len <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
/* Where extent ext of link lies in memory, and its length. */
void cr_restore_extent(const struct cr_restore *r, uint32_t link, uint64_t ext,
                       uintptr_t *addr, size_t *len);
/* Read extent ext of link into buf (its length) and check its CRC:
 * CR_ECORRUPT (logged with file, epoch and extent) on a mismatch. Safe from
 * any one thread at a time. */
CR_MUST_CHECK int cr_restore_fetch(struct cr_restore *r, uint32_t link, uint64_t ext, void *buf);
/* Epoch number of a chain link. */
uint64_t cr_restore_link_epoch(const struct cr_restore *r, uint32_t link);

#endif
