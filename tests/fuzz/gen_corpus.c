/*
 * gen_corpus.c - seed corpus for the fuzz harnesses, from real checkpoints.
 *
 *   gen_corpus OUTDIR      writes OUTDIR/index/seed-* and OUTDIR/epoch/seed-*
 *
 * Each scenario writes a real checkpoint directory with the store (small:
 * a few pages, a tiny topology text instead of this node's hwloc XML so
 * the seeds stay a few KiB), then packs its index (index corpus) and the
 * whole directory in the layout of fuzz_input.h (epoch corpus). Scenarios:
 * one full epoch with threads; a full epoch + incrementals with zero
 * extents; two chains (full every 2nd); an empty epoch; two ranks' worth
 * of nothing is not possible in one process, so rank counts are left to
 * the fuzzer (the nranks fields).
 */
#include "../store/store_helpers.h"
#include "fuzz_input.h"
#include "common/config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPAGES 6
#define PSZ CR_PAGE_SIZE

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

static int emit(const char *out, const char *kind, const char *name, const void *p, size_t n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s/seed-%s", out, kind, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        perror(path);
        return -1;
    }
    return fclose(f);
}

/* Pack DIR (index + epoch files, in epoch order) into one input. */
static int pack(const char *dir, const char *out, const char *name)
{
    char path[4200];
    size_t ilen, cap = 0, len = 0;
    snprintf(path, sizeof path, "%s/index", dir);
    uint8_t *ix = slurp(path, &ilen), *buf = NULL;
    if (!ix || emit(out, "index", name, ix, ilen) < 0)
        return -1;
    cap = 4 + ilen;
    buf = malloc(cap);
    uint32_t l32 = (uint32_t)ilen;
    memcpy(buf, &l32, 4);
    memcpy(buf + 4, ix, ilen);
    len = cap;
    for (uint64_t e = 1; e < 100; e++) {
        size_t n;
        snprintf(path, sizeof path, "%s/" CR_EPOCH_FMT, dir, (unsigned long long)e);
        uint8_t *f = slurp(path, &n);
        if (!f)
            continue;
        buf = realloc(buf, len + 12 + n);
        l32 = (uint32_t)n;
        memcpy(buf + len, &e, 8);
        memcpy(buf + len + 8, &l32, 4);
        memcpy(buf + len + 12, f, n);
        len += 12 + n;
        free(f);
    }
    int rc = emit(out, "epoch", name, buf, len);
    free(ix);
    free(buf);
    return rc;
}

static void rmdir_all(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.')
            unlinkat(dirfd(d), de->d_name, 0);
    if (d)
        closedir(d);
    rmdir(dir);
}

/* nepochs epochs; epoch e changes pages (p + e) % 3 == 0 and zeroes
 * (p + e) % 5 == 0; page 4 stays zero in the full epoch (a gap). */
static int scenario(const char *out, const char *name, int nepochs, unsigned full_every,
                    size_t nthreads)
{
    static uint8_t m[NPAGES * PSZ];
    uint8_t d[NPAGES], z[NPAGES];
    char dir[] = "/tmp/crmpi-gen-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    struct cr_store *st;
    struct cr_store_opts o = { .full_every = full_every, .keep = 100, .align = 4096 };
    int rc = cr_store_open(&st, dir, cr_coll_self(), &o);
    if (rc < 0)
        return rc;
    st->topo_xml = strdup("<topology/>");
    st->topo_len = 12;
    memset(m, 0, sizeof m);
    struct th_mem mem = { m, NPAGES };
    for (int e = 1; rc == 0 && e <= nepochs; e++) {
        for (size_t p = 0; p < NPAGES; p++) {
            d[p] = (p + (size_t)e) % 3 == 0 && !(e == 1 && p == 4);
            z[p] = e > 1 && (p + (size_t)e) % 5 == 0;
            if (d[p])
                memset(m + p * PSZ, 0x11 * e + (int)p, PSZ);
            if (z[p])
                memset(m + p * PSZ, 0, PSZ);
        }
        int full = cr_store_next_is_full(st);
        rc = th_write_epoch(st, &mem, full, d, z, nthreads, NULL);
    }
    if (nepochs == 0) {
        struct cr_epoch *ep;
        struct cr_epoch_desc desc = { .full = 1, .region_base = TH_BASE };
        rc = cr_epoch_begin(st, &desc, &ep);
        if (rc == 0)
            rc = cr_epoch_commit(st, ep, cr_epoch_finish(ep));
    }
    cr_store_close(st);
    if (rc == 0)
        rc = pack(dir, out, name);
    rmdir_all(dir);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus OUTDIR\n");
        return 2;
    }
    char p[4200];
    mkdir(argv[1], 0755);
    snprintf(p, sizeof p, "%s/index", argv[1]);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/epoch", argv[1]);
    mkdir(p, 0755);
    setenv("CRMPI_LOG", "error", 1);
    (void)cr_config_reload();
    int rc = scenario(argv[1], "full", 1, 8, 2);
    if (rc == 0)
        rc = scenario(argv[1], "chain3", 3, 8, 1);
    if (rc == 0)
        rc = scenario(argv[1], "two-chains", 4, 2, 3);
    if (rc == 0)
        rc = scenario(argv[1], "empty", 0, 1, 0);
    if (rc < 0) {
        fprintf(stderr, "gen_corpus: %s\n", cr_strerror(rc));
        return 1;
    }
    return 0;
}
