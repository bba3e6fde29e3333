/*
 * internal.h - what the files of src/store/ share: the store handle, the
 * index (index.c), the process identity (identity.c), the collective HDF5
 * layout (h5layout.c) and the hostile-input reader of epoch files
 * (reader.c), which crmpi-ckpt also uses.
 */
#ifndef CR_STORE_INTERNAL_H
#define CR_STORE_INTERNAL_H

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "store/format.h"
#include "store/store.h"

/* ---- the index (index.c) ------------------------------------------------- */
struct cr_index {
    uint8_t  job_uuid[CR_UUID_BYTES];
    uint32_t n;
    struct cr_index_entry *e;     /* oldest first                            */
};
/* Read DIR/index. -ENOENT if absent; CR_ECORRUPT / CR_EFORMAT (logged with
 * the reason) if it is not a valid index. */
int cr_index_read(const char *dir, struct cr_index *ix);
/* Replace DIR/index atomically: temp, fsync, rename, fsync dir. */
int cr_index_write(const char *dir, const struct cr_index *ix);
/* Serialise / parse (the parse validates everything). */
int cr_index_encode(const struct cr_index *ix, void **buf, size_t *len);
int cr_index_decode(const void *buf, size_t len, const char *what, struct cr_index *ix);
const struct cr_index_entry *cr_index_find(const struct cr_index *ix, uint64_t epoch);
void cr_index_free(struct cr_index *ix);
/* Fault points for the crash test: CRMPI_FAULT=index-<step> stops the
 * process (SIGKILL) at that step of the rename sequence. */
void cr_store_fault(const char *point);

/* ---- identity (identity.c) ----------------------------------------------- */
/* The text "buildid-hex load-address path\n" per loaded object, executable
 * first, vdso excluded. malloc'ed. */
int cr_identity_text(char **text, size_t *len);
/* Compare a recorded identity with this process. 0, or CR_EMISMATCH after
 * naming the first object that differs. */
int cr_identity_check(const char *recorded, size_t len, const char *file);
/* hwloc XML of this node (malloc'ed, NUL included in len). */
int cr_topology_xml(char **xml, size_t *len);

/* ---- the store handle ----------------------------------------------------- */
/* What each rank tells the others when an epoch begins (epoch.c): one
 * allgather carries its local status (so it is also the agreement to go
 * on), the epoch it expects and rank 0's clock (the header's), and the
 * sizes the layout is planned from. */
struct cr_begin_info {
    int64_t  status;
    uint64_t epoch, ctime;
    uint64_t nonce;               /* rank 0's: names this attempt's layout   */
    uint32_t helper, pad;         /* rank 0's: its layout helper lays out    */
    uint64_t data_bytes, nextents, nthreads, topo_len;
    uint32_t full, id_len, id_crc;
    char     host[CR_HOST_MAX];
} __attribute__((packed));

struct cr_store {
    char dir[PATH_MAX];
    struct cr_coll *coll;
    struct cr_store_opts opts;
    struct cr_index ix;           /* identical on every rank                 */
    int index_bad;                /* the index existed but was unusable      */
    uint64_t last;                /* base of the next incremental (0: none)  */
    int force_full;
    int prealloc;                 /* CRMPI_PREALLOC: fallocate rank slices    */
    int gc_inline;                /* CRMPI_GC_INLINE: unlink inside commit    */
    struct cr_gc *gc;             /* rank 0: unlinks still running (gc.c)     */
    char *identity;  size_t identity_len;   /* this process                   */
    char *id0;       size_t id0_len;        /* rank 0's (the epoch header's):
                                               shared once, at open           */
    struct cr_begin_info *peers;  /* one per rank, for cr_epoch_begin      */
    hid_t fapl;                   /* file-access list of the epoch files,
                                     made at the first epoch (h5layout.c) */
    struct cr_layout_helper *helper;  /* rank 0's (or a single process's)  */
    /* None could be started, or two in a row died on one request: lay out
     * in the call from now on. Set by whoever asked the helper (rank 0's
     * writer), read by begin. */
    atomic_int helper_off;
    char *topo_xml;  size_t topo_len;        /* this node                      */
    char host[CR_HOST_MAX];
    uint64_t *bad; size_t nbad;   /* epochs found corrupt by this handle     */
};
void cr_epoch_path(const struct cr_store *st, uint64_t epoch, char *out, size_t n);
/* Committing an epoch's index entry e, in three local steps around the
 * caller's agreements (epoch.c): the index that commits e (the current
 * one plus e, minus an abandoned timeline and what CRMPI_KEEP no longer
 * needs; identical on every rank); rank 0 writes it (others return 0);
 * once agreed, it becomes the store's index (next->e is taken) and, for a
 * complete commit, rank 0 deletes the files it no longer names. */
int cr_store_index_next(const struct cr_store *st, const struct cr_index_entry *e,
                        struct cr_index *next);
int cr_store_index_write(struct cr_store *st, const struct cr_index *next);
void cr_store_index_adopt(struct cr_store *st, struct cr_index *next, int complete);
/* gc.c: delete (in a helper thread) the epoch files st->ix does not name
 * and MPI-IO's lock probes left beside epoch files (gc.c says whose);
 * cr_gc_wait returns once the previous sweep's deletions are done. */
void cr_gc_sweep(struct cr_store *st);
void cr_gc_wait(struct cr_store *st);
/* The same, on the calling thread, sparing files of epochs >= below (the
 * asynchronous writer publishes an index while the next epoch exists). */
void cr_gc_sweep_here(const char *dir, const struct cr_index *ix, uint64_t below);
/* Rank 0 of a deferred commit: the write of next to run later (store.h). */
int cr_index_pub_new(const struct cr_store *st, const struct cr_index *next, uint64_t epoch,
                     struct cr_index_pub **pub);
int cr_store_mark_bad(struct cr_store *st, uint64_t epoch);
int cr_store_is_bad(const struct cr_store *st, uint64_t epoch);

/* ---- collective file creation (h5layout.c) -------------------------------- */
struct cr_layout_in {
    const char *path;
    struct cr_coll *coll;
    hid_t *fapl;                         /* cached list (H5I_INVALID_HID: make) */
    const struct cr_epoch_header *hdr;   /* fields of the file attributes    */
    const char *identity;                /* text, hdr->identity_len bytes    */
    size_t ntopo;
    const char (*topo_host)[CR_HOST_MAX];/* node names                        */
    const uint64_t *topo_len;            /* bytes of each node's XML         */
    size_t align;
};
/* Create the file and its datasets collectively; fills hdr->ds[].offset and
 * topo_off[] with the absolute offsets HDF5 allocated, then closes it.
 * *in->fapl is made on first use and kept for the next files (the store
 * closes it). */
int cr_layout_create(const struct cr_layout_in *in, struct cr_epoch_header *hdr,
                     uint64_t *topo_off);

/* ---- the layout helper process (layout_helper.c) --------------------------- */
struct cr_layout_helper;
/* Start crmpi-layout-helper (CRMPI_LAYOUT_HELPER, or the installed or built
 * one). -ENOENT when there is none (or CRMPI_LAYOUT_HELPER=off). */
int cr_layout_helper_start(struct cr_layout_helper **h);
/* Close its socket (it exits) and reap it. NULL is fine. */
void cr_layout_helper_stop(struct cr_layout_helper *h);
/* Started by this process and not known to be dead. */
int cr_layout_helper_usable(const struct cr_layout_helper *h);
/* Hand it cr_layout_create(in) (in->coll and in->fapl are its own); replies
 * come back in request order. */
int cr_layout_helper_send(struct cr_layout_helper *h, const struct cr_layout_in *in);
/* The next reply: hdr->ds[].offset and topo_off[0..ntopo), or the error. */
int cr_layout_helper_receive(struct cr_layout_helper *h, struct cr_epoch_header *hdr,
                             uint64_t *topo_off, size_t ntopo, const char *path);
/* The helper program's loop on fd until EOF (0) or a broken request. */
int cr_layout_helper_serve(int fd);

/* ---- trust (trust.c) ------------------------------------------------------ */
/* The directory (and its index, if present): a directory (a symlink to it
 * only if ours or root's), owned by this user, not writable by group or
 * others. 0, CR_EPERM_TRUST or -errno, logged naming the path. */
int cr_trust_dir(const char *dir);
/* The same for a file restore is about to read (a regular file). */
int cr_trust_fd(int fd, const char *path);

/* ---- reading epoch files (reader.c) --------------------------------------- */
struct cr_epfile {
    char path[PATH_MAX];
    int fd;
    uint64_t size;                 /* st_size at open                         */
    struct cr_epoch_header h;
    char *identity;
};
/* Open and validate the header (magic, version, CRC, dataset bounds). */
int cr_epfile_open(const char *path, struct cr_epfile *f);
void cr_epfile_close(struct cr_epfile *f);
/* Read and validate rank r's row and its index/thread rows (malloc'ed). */
int cr_epfile_rank(struct cr_epfile *f, uint32_t r, struct cr_rank_row *row,
                   struct cr_index_row **rows, struct cr_thread_row **threads);
/* This rank's identity text (malloc'ed, CRC-checked). */
int cr_epfile_identity(struct cr_epfile *f, const struct cr_rank_row *row, char **text);
/* Check the data CRC of every extent of rank r (reads the data). */
int cr_epfile_verify_data(struct cr_epfile *f, const struct cr_rank_row *row,
                          const struct cr_index_row *rows);
/* Read sizes of restore (restore.c): smallest and largest group with a
 * reader thread, the group without one; whether to use a reader thread
 * (-1: as CRMPI_RESTORE_READER says). Tests shrink the groups and force
 * each way to exercise both with small data. */
extern size_t cr_restore_read_group, cr_restore_read_group_max, cr_restore_read_group_inline;
extern int cr_restore_pipeline;
/* pread exactly n bytes at off, naming the file and what on failure. */
int cr_pread_full(int fd, void *buf, size_t n, uint64_t off, const char *path,
                  const char *what);

#endif
