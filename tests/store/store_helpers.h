/*
 * store_helpers.h - what the container tests share: a fake address space
 * (extents name addresses in [BASE, BASE+size) that map onto a buffer),
 * writing an epoch from a buffer, restoring into one, and damaging files.
 */
#ifndef STORE_HELPERS_H
#define STORE_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "store/internal.h"
#include "common/errors.h"

#define TH_BASE 0x100000000000ULL

struct th_mem {
    uint8_t *buf;          /* contents, npages pages */
    size_t npages;
};

/* Write one epoch of `mem`: full (every non-zero page run) or the pages
 * marked in dirty[] (zero pages of an incremental epoch become ZERO
 * extents when zeroed[] says so). Returns the commit status. */
int th_write_epoch(struct cr_store *st, const struct th_mem *m, int full,
                   const uint8_t *dirty, const uint8_t *zeroed, size_t nthreads,
                   uint64_t *epoch);
/* Nonzero: th_write_epoch stages the extents back to back and puts them
 * with cr_epoch_put_batch, as the background writer does. */
extern int th_batched_puts;
/* Restore into out (npages pages, cleared first to 0xEE). */
int th_restore(struct cr_store *st, uint64_t epoch, uint8_t *out, size_t npages,
               struct cr_restore_info *info, struct cr_thread_record *threads, size_t nthr);
/* Open restore (with fallback) and retry once after a data checksum failure,
 * as the engine does. */
int th_restore_retry(struct cr_store *st, uint8_t *out, size_t npages, struct cr_restore_info *info);
void th_thread_record(size_t i, uint64_t epoch, struct cr_thread_record *t);

/* File damage. */
int th_flip(const char *path, uint64_t off, uint8_t mask);
int th_truncate(const char *path, uint64_t size);
uint64_t th_file_size(const char *path);
/* Read header, let fn edit it, re-CRC, write it back. */
int th_edit_header(const char *path, void (*fn)(struct cr_epoch_header *h, char *id, void *arg),
                   void *arg);
/* Edit rank r's identity text in /identities (same length), fixing CRCs. */
int th_edit_identity(const char *path, uint32_t r, void (*fn)(char *id, void *arg), void *arg);
/* Offset of a dataset / row in an epoch file (from its header). */
uint64_t th_ds_offset(const char *path, enum cr_ds_id ds);

#endif
