/*
 * fuzz_input.h - the byte layout of one input of the container-reader
 * harness (fuzz_epoch.c), shared with the seed generator (gen_corpus.c).
 *
 * An input is a whole checkpoint directory in one buffer:
 *
 *   u32 index_len, index_len bytes     -> DIR/index
 *   then up to FZ_MAX_FILES records:
 *     u64 epoch, u32 len, len bytes    -> DIR/epoch-<epoch % 10^12>.h5
 *
 * (little-endian). The file name comes from the record, not from the
 * bytes inside it, so the fuzzer can rename, drop and swap epoch files
 * independently of their contents - the cases of the corruption matrix.
 * A short or overlong tail is simply cut: every input is valid.
 */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FZ_MAX_FILES 6

struct fz_file {
    uint64_t epoch;
    const uint8_t *data;
    size_t len;
};

struct fz_input {
    const uint8_t *index;
    size_t index_len;
    int has_index;
    struct fz_file f[FZ_MAX_FILES];
    size_t nfiles;
};

static inline int fz_take(const uint8_t **p, size_t *left, void *out, size_t n)
{
    if (*left < n)
        return 0;
    memcpy(out, *p, n);
    *p += n;
    *left -= n;
    return 1;
}

/* Split an input (never fails: what does not parse is left out). */
static inline void fz_parse(const uint8_t *data, size_t size, struct fz_input *in)
{
    uint32_t ilen;
    memset(in, 0, sizeof *in);
    if (!fz_take(&data, &size, &ilen, 4))
        return;
    in->has_index = 1;
    in->index = data;
    in->index_len = ilen < size ? ilen : size;
    data += in->index_len;
    size -= in->index_len;
    while (in->nfiles < FZ_MAX_FILES) {
        struct fz_file *f = &in->f[in->nfiles];
        uint32_t len;
        if (!fz_take(&data, &size, &f->epoch, 8) || !fz_take(&data, &size, &len, 4))
            break;
        f->data = data;
        f->len = len < size ? len : size;
        data += f->len;
        size -= f->len;
        in->nfiles++;
    }
}

#endif
