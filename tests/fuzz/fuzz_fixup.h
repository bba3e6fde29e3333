/*
 * fuzz_fixup.h - recompute the checksums of a mutated input, so the
 * harnesses reach the structural checks behind them.
 *
 * A mutated byte almost always fails a CRC first; the fuzzer would then
 * spend its time on the CRC comparison alone. Each harness therefore runs
 * every input twice: as it is (the checksum paths) and after these
 * functions have made every checksum it can find consistent again (the
 * paths behind them: counts, offsets, bounds, chains). Fixing follows the
 * record layout of format.h, reading only what lies inside the buffer.
 */
#ifndef FUZZ_FIXUP_H
#define FUZZ_FIXUP_H

#include "store/format.h"
#include "common/crc32c.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void fz_fix_index(uint8_t *b, size_t len)
{
    if (len < 4)
        return;
    uint32_t crc = cr_crc32c(0, b, len - 4);
    memcpy(b + len - 4, &crc, 4);
}

/* Rows of one dataset: the last 4 bytes of each are its CRC. */
static inline void fz_fix_rows(uint8_t *b, size_t len, const struct cr_ds_loc *d, size_t row)
{
    if (d->offset > len || d->count > (len - d->offset) / row)
        return;
    for (uint64_t i = 0; i < d->count; i++) {
        uint8_t *r = b + d->offset + i * row;
        uint32_t crc = cr_record_crc(r, row);
        memcpy(r + row - 4, &crc, 4);
    }
}

static inline void fz_fix_epoch(uint8_t *b, size_t len)
{
    struct cr_epoch_header h;
    if (len < sizeof h)
        return;
    memcpy(&h, b, sizeof h);
    /* page data CRCs of the index rows, then the rows themselves */
    const struct cr_ds_loc *ix = &h.ds[CR_DS_ID_INDEX], *pg = &h.ds[CR_DS_ID_PAGES];
    if (ix->offset <= len && ix->count <= (len - ix->offset) / sizeof(struct cr_index_row))
        for (uint64_t i = 0; i < ix->count; i++) {
            struct cr_index_row r;
            memcpy(&r, b + ix->offset + i * sizeof r, sizeof r);
            if (!(r.flags & CR_EXTENT_ZERO) && pg->offset <= len && r.offset <= len &&
                r.len <= len && pg->offset + r.offset + r.len <= len) {
                r.data_crc = cr_crc32c(0, b + pg->offset + r.offset, r.len);
                memcpy(b + ix->offset + i * sizeof r, &r, sizeof r);
            }
        }
    fz_fix_rows(b, len, ix, sizeof(struct cr_index_row));
    fz_fix_rows(b, len, &h.ds[CR_DS_ID_THREADS], sizeof(struct cr_thread_row));
    /* rank rows: identity CRC first, then the row */
    const struct cr_ds_loc *rk = &h.ds[CR_DS_ID_RANKS], *id = &h.ds[CR_DS_ID_IDENT];
    if (rk->offset <= len && rk->count <= (len - rk->offset) / sizeof(struct cr_rank_row))
        for (uint64_t i = 0; i < rk->count; i++) {
            struct cr_rank_row w;
            memcpy(&w, b + rk->offset + i * sizeof w, sizeof w);
            if (id->offset <= len && w.identity_offset <= len && w.identity_len <= len &&
                id->offset + w.identity_offset + w.identity_len <= len)
                w.identity_crc = cr_crc32c(0, b + id->offset + w.identity_offset,
                                           w.identity_len);
            memcpy(b + rk->offset + i * sizeof w, &w, sizeof w);
        }
    fz_fix_rows(b, len, rk, sizeof(struct cr_rank_row));
    /* the header covers itself (crc = 0) and the identity text after it */
    if (h.identity_len <= len - sizeof h) {
        h.crc = 0;
        memcpy(b, &h, sizeof h);
        uint32_t crc = cr_crc32c(cr_crc32c(0, b, sizeof h), b + sizeof h, h.identity_len);
        memcpy(b + offsetof(struct cr_epoch_header, crc), &crc, 4);
    }
}

#endif
