/*
 * format.h - the on-disk records of the checkpoint container, as packed
 * little-endian C structs (the specification in prose is FORMAT.md).
 *
 * Every record that is written with pwrite and read back with pread is
 * declared here once: the epoch header in the HDF5 user block, the rows of
 * the shared datasets (their HDF5 compound types are built from these same
 * offsets in h5layout.c, so h5dump shows the bytes we wrote) and the index
 * file. Each record ends in a CRC-32C of the bytes before it. Readers treat
 * all of them as hostile: see reader.c.
 */
#ifndef CR_STORE_FORMAT_H
#define CR_STORE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "crmpi's container records are little-endian; add byte swapping for this target"
#endif

#define CR_FMT_VERSION      1u
#define CR_EPOCH_MAGIC      "CRMPIEP1"       /* 8 bytes, no terminator */
#define CR_INDEX_MAGIC      "CRMPIIX1"
#define CR_INDEX_NAME       "index"
#define CR_INDEX_TMP        "index.tmp"
#define CR_EPOCH_FMT        "epoch-%012llu.h5"
#define CR_EPOCH_NAME_MAX   48
#define CR_HOST_MAX         64
#define CR_UUID_BYTES       16
#define CR_IDENTITY_MAX     (1u << 20)       /* sanity bound on the identity text */
#define CR_USERBLOCK_MIN    4096u

/* Names inside the HDF5 file. */
#define CR_DS_PAGES     "pages"
#define CR_DS_INDEX     "page_index"
#define CR_DS_THREADS   "threads"
#define CR_DS_RANKS     "ranks"
#define CR_DS_IDENT     "identities"
#define CR_GRP_TOPO     "topology"

enum cr_ds_id { CR_DS_ID_PAGES = 0, CR_DS_ID_INDEX, CR_DS_ID_THREADS, CR_DS_ID_RANKS,
                CR_DS_ID_IDENT, CR_DS_COUNT };

struct cr_ds_loc {
    uint64_t offset;     /* absolute file offset of the raw data (0: empty)  */
    uint64_t bytes;      /* size of the raw data                             */
    uint64_t count;      /* elements                                         */
} __attribute__((packed));

/* The epoch header: at offset 0 of every epoch file, inside the HDF5 user
 * block (which HDF5 leaves to the application), followed by identity_len
 * bytes of rank 0's identity text (for tools; each rank's own identity is
 * in /identities). crc covers the header with crc = 0 and the text. */
struct cr_epoch_header {
    char     magic[8];
    uint32_t version;
    uint32_t header_len;          /* sizeof(struct cr_epoch_header)          */
    uint64_t epoch;
    uint64_t parent;              /* 0 for a full epoch                       */
    uint32_t full;
    uint32_t nranks;
    uint32_t page_size;
    uint32_t userblock;           /* size of the user block                   */
    uint64_t ctime;               /* seconds since the epoch (UTC)            */
    uint8_t  job_uuid[CR_UUID_BYTES];
    char     lib_version[16];
    struct cr_ds_loc ds[CR_DS_COUNT];
    uint64_t slice_align;         /* rank slices of "pages" are multiples     */
    uint32_t ntopo;               /* distinct nodes in /topology              */
    uint32_t identity_len;
    uint32_t reserved;
    uint32_t crc;
} __attribute__((packed));

/* One row of /page_index: an extent of one rank. */
struct cr_index_row {
    uint32_t rank;
    uint32_t flags;               /* CR_EXTENT_*                              */
    uint64_t addr;
    uint64_t len;
    uint64_t offset;              /* byte offset inside /pages                */
    uint32_t data_crc;            /* CRC-32C of the len bytes (0 for ZERO)    */
    uint32_t crc;                 /* of this row, crc = 0                     */
} __attribute__((packed));

/* One row of /threads. */
struct cr_thread_row {
    uint32_t rank;
    uint32_t tid;
    uint32_t state;
    uint32_t reserved;
    uint64_t stack_lo, stack_hi;
    uint64_t retval;
    uint8_t  ctx[CR_CTX_BLOB];
    uint32_t reserved2;
    uint32_t crc;
} __attribute__((packed));

/* One row of /ranks: written last by each rank; a rank row with a valid
 * CRC means that rank finished its part of the epoch. */
struct cr_rank_row {
    uint32_t rank;
    uint32_t pid;
    uint64_t region_base;
    uint64_t region_size;
    uint64_t nextents;
    uint64_t first_extent;        /* row of /page_index                       */
    uint64_t data_bytes;          /* bytes of /pages used by this rank        */
    uint64_t data_offset;         /* byte offset of the slice inside /pages   */
    uint64_t slice_bytes;         /* slice size (padded)                      */
    uint64_t nthreads;
    uint64_t first_thread;        /* row of /threads                          */
    uint64_t identity_offset;     /* byte offset of its text in /identities  */
    uint32_t identity_len;
    uint32_t identity_crc;
    char     hostname[CR_HOST_MAX];
    uint32_t reserved;
    uint32_t crc;
} __attribute__((packed));

/* The index file: header, entries, then a CRC-32C of everything before. */
struct cr_index_header {
    char     magic[8];
    uint32_t version;
    uint32_t header_len;
    uint8_t  job_uuid[CR_UUID_BYTES];
    uint32_t nentries;
    uint32_t entry_len;
} __attribute__((packed));

#define CR_ENTRY_FULL 0x1u
struct cr_index_entry {
    uint64_t epoch;
    uint64_t parent;              /* 0 for a full epoch                        */
    uint32_t flags;               /* CR_ENTRY_FULL                             */
    uint32_t nranks;
    uint64_t ctime;
    char     name[CR_EPOCH_NAME_MAX];
} __attribute__((packed));

#define CR_INDEX_MAX_ENTRIES 100000u

/* CRC of a record whose last 4 bytes are its crc field. */
uint32_t cr_record_crc(const void *rec, size_t len);

#endif
