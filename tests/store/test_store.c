/*
 * test_store.c - the checkpoint container in one process (cr_coll_self):
 * round trips, incremental chains, garbage collection, API misuse, and
 * every kind of damaged or foreign file, each detected by name and
 * answered by falling back to the newest valid committed epoch.
 */
#include "cutest.h"
#include "store_helpers.h"
#include "common/config.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPAGES 96
#define PSZ CR_PAGE_SIZE

static char *dir;
static uint8_t cur[NPAGES * PSZ], out[NPAGES * PSZ];
static uint8_t snap[16][NPAGES * PSZ];   /* contents at each epoch */
static struct th_mem mem = { cur, NPAGES };

static int setup(void)
{
    setenv("CRMPI_ALIGN", "64K", 1);
    setenv("CRMPI_LOG", getenv("TLOG") ? getenv("TLOG") : "none", 1);
    return cr_config_reload() ? -1 : 0;
}

static struct cr_store *open_store(unsigned full_every, unsigned keep)
{
    struct cr_store *st = NULL;
    struct cr_store_opts o = { .full_every = full_every, .keep = keep };
    CU_ASSERT_EQUAL_FATAL(cr_store_open(&st, dir, cr_coll_self(), &o), 0);
    return st;
}

static void fresh(void)
{
    cutest_rmtree(dir);
    free(dir);
    dir = cutest_tmpdir("store");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    memset(cur, 0, sizeof cur);
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = cutest_rand();
        memcpy(p + i, &v, CR_MIN(8, n - i));
    }
}

/* Change a random third of the pages, zero a few; remember which. */
static void mutate(uint8_t *dirty, uint8_t *zeroed)
{
    memset(dirty, 0, NPAGES);
    memset(zeroed, 0, NPAGES);
    for (size_t p = 0; p < NPAGES; p++) {
        unsigned r = (unsigned)(cutest_rand() % 12);
        if (r < 4) {
            fill_random(cur + p * PSZ, PSZ);
            dirty[p] = 1;
        } else if (r == 4) {
            memset(cur + p * PSZ, 0, PSZ);
            zeroed[p] = 1;
        }
    }
}

static char *epoch_file(uint64_t e)
{
    static char p[4200];
    snprintf(p, sizeof p, "%s/" CR_EPOCH_FMT, dir, (unsigned long long)e);
    return p;
}

/* Epochs 1 (full) .. n, contents in snap[e]; returns the store. */
static struct cr_store *write_chain(unsigned n, unsigned full_every, unsigned keep)
{
    uint8_t dirty[NPAGES], zeroed[NPAGES];
    struct cr_store *st = open_store(full_every, keep);
    fill_random(cur, sizeof cur);
    for (unsigned e = 1; e <= n; e++) {
        if (e > 1)
            mutate(dirty, zeroed);
        uint64_t got = 0;
        int full = cr_store_next_is_full(st);
        CU_ASSERT_EQUAL(th_write_epoch(st, &mem, full, dirty, zeroed, 3, &got), 0);
        CU_ASSERT_EQUAL(got, e);
        memcpy(snap[e], cur, sizeof cur);
    }
    return st;
}

static void test_roundtrip_full_epoch_with_threads(void)
{
    fresh();
    struct cr_store *st = write_chain(1, 8, 4);
    cr_store_close(st);
    st = open_store(8, 4);
    struct cr_restore_info info;
    struct cr_thread_record t[4], want;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, t, 4), 0);
    CU_ASSERT_EQUAL(memcmp(out, snap[1], sizeof out), 0);
    CU_ASSERT_EQUAL(info.epoch, 1);
    CU_ASSERT_EQUAL(info.nthreads, 3);
    CU_ASSERT_EQUAL(info.region_base, TH_BASE);
    CU_ASSERT_EQUAL(info.region_size, NPAGES * PSZ);
    CU_ASSERT_EQUAL(info.data_bytes, NPAGES * PSZ);
    for (size_t i = 0; i < 3; i++) {
        th_thread_record(i, 1, &want);
        CU_ASSERT_EQUAL(memcmp(&t[i], &want, sizeof want), 0);
    }
    cr_store_close(st);
}

static void test_roundtrip_empty_epoch_no_extents_no_threads(void)
{
    fresh();
    struct cr_store *st = open_store(1, 2);
    struct cr_epoch *ep;
    struct cr_epoch_desc d = { .full = 1, .region_base = TH_BASE, .region_size = 0 };
    CU_ASSERT_EQUAL_FATAL(cr_epoch_begin(st, &d, &ep), 0);
    CU_ASSERT_EQUAL(cr_epoch_commit(st, ep, cr_epoch_finish(ep)), 0);
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.nthreads, 0);
    CU_ASSERT_EQUAL(info.data_bytes, 0);
    cr_store_close(st);
}

/* HDF5 itself must read back what pwrite put at the H5Dget_offset offsets. */
static void test_hdf5_reads_the_same_bytes(void)
{
    fresh();
    struct cr_store *st = write_chain(1, 8, 4);
    cr_store_close(st);
    hid_t f = H5Fopen(epoch_file(1), H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    hid_t d = H5Dopen2(f, CR_DS_PAGES, H5P_DEFAULT);
    CU_ASSERT_FATAL(d >= 0);
    uint8_t *b = malloc(sizeof cur);
    CU_ASSERT_TRUE(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, b) >= 0);
    CU_ASSERT_EQUAL(memcmp(b, snap[1], sizeof cur), 0);
    H5Dclose(d);
    hid_t a = H5Aopen(f, "epoch", H5P_DEFAULT);
    uint64_t e = 0;
    CU_ASSERT_TRUE(a >= 0 && H5Aread(a, H5T_NATIVE_UINT64, &e) >= 0);
    CU_ASSERT_EQUAL(e, 1);
    H5Aclose(a);
    CU_ASSERT_TRUE(H5Lexists(f, CR_GRP_TOPO, H5P_DEFAULT) > 0);
    H5Fclose(f);
    free(b);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "h5dump -A %s > /dev/null 2>&1", epoch_file(1));
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static void test_incremental_chain_applies_in_order(void)
{
    fresh();
    struct cr_store *st = write_chain(6, 4, 10);
    cr_store_close(st);
    st = open_store(4, 10);
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 6);
    CU_ASSERT_EQUAL(memcmp(out, snap[6], sizeof out), 0);
    for (uint64_t e = 1; e <= 6; e++) {
        CU_ASSERT_EQUAL(th_restore(st, e, out, NPAGES, &info, NULL, 0), 0);
        CU_ASSERT_EQUAL(memcmp(out, snap[e], sizeof out), 0);
    }
    /* 1 full, 2-4 incremental, 5 full, 6 incremental */
    const struct cr_index_entry *e5 = cr_index_find(&st->ix, 5), *e6 = cr_index_find(&st->ix, 6);
    CU_ASSERT_TRUE(e5 && (e5->flags & CR_ENTRY_FULL));
    CU_ASSERT_TRUE(e6 && !(e6->flags & CR_ENTRY_FULL) && e6->parent == 5);
    CU_ASSERT_EQUAL(cr_index_find(&st->ix, 4)->parent, 3);
    cr_store_close(st);
}

/* The same chain with the background writer's batched puts of staged
 * bytes (zero extents interleaved), and a batch after finish refused. */
static void test_batched_puts_roundtrip(void)
{
    fresh();
    th_batched_puts = 1;
    struct cr_store *st = write_chain(6, 4, 10);
    th_batched_puts = 0;
    cr_store_close(st);
    st = open_store(4, 10);
    struct cr_restore_info info;
    for (uint64_t e = 1; e <= 6; e++) {
        CU_ASSERT_EQUAL(th_restore(st, e, out, NPAGES, &info, NULL, 0), 0);
        CU_ASSERT_EQUAL(memcmp(out, snap[e], sizeof out), 0);
    }
    struct cr_extent x = { TH_BASE, PSZ, 0 };
    struct cr_epoch_desc d = { .full = 0, .region_base = TH_BASE, .region_size = NPAGES * PSZ,
                               .nextents = 1, .extents = &x };
    struct cr_epoch *ep;
    CU_ASSERT_EQUAL_FATAL(cr_epoch_begin(st, &d, &ep), 0);
    size_t next = 0;
    const uint8_t *src = NULL;
    CU_ASSERT_EQUAL(cr_epoch_put_batch(ep, &next, &src), -EINVAL);    /* no bytes */
    src = cur;
    CU_ASSERT_EQUAL(cr_epoch_put_batch(ep, &next, &src), 0);
    CU_ASSERT_EQUAL(next, 1);
    CU_ASSERT_PTR_EQUAL(src, cur + PSZ);
    CU_ASSERT_EQUAL(cr_epoch_put_batch(ep, &next, &src), 0);          /* nothing left */
    next = 0;
    CU_ASSERT_EQUAL(cr_epoch_put_batch(ep, &next, &src), CR_ESTATE);  /* twice */
    CU_ASSERT_EQUAL(cr_epoch_commit(st, ep, cr_epoch_finish(ep)), 0);
    cr_store_close(st);
}

/* Lazy restore's view: the pieces of a chain (newer epochs hide older ones),
 * each fetched from its own extent, rebuild exactly the newest image. */
static void test_pieces_rebuild_newest_image_of_chain(void)
{
    fresh();
    struct cr_store *st = write_chain(5, 8, 10);
    cr_store_close(st);
    st = open_store(8, 10);
    struct cr_restore *r = NULL;
    CU_ASSERT_EQUAL_FATAL(cr_restore_open(st, 0, &r), 0);
    struct cr_restore_info info;
    cr_restore_info(r, &info);
    CU_ASSERT_EQUAL(info.nlinks, 5);
    struct cr_restore_piece *pc = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(cr_restore_pieces(r, &pc, &n), 0);
    CU_ASSERT_TRUE(n > 0);
    memset(out, 0, sizeof out);     /* no piece: never had contents */
    uint8_t *tmp = malloc(sizeof out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
    for (size_t i = 0; i < n; i++) {
        if (i)
            CU_ASSERT_TRUE(pc[i - 1].addr + pc[i - 1].len <= pc[i].addr);
        CU_ASSERT_TRUE(pc[i].addr >= TH_BASE && pc[i].addr + pc[i].len <= TH_BASE + sizeof out);
        if (pc[i].zero) {
            memset(out + (pc[i].addr - TH_BASE), 0, pc[i].len);
            continue;
        }
        uintptr_t ea;
        size_t elen;
        cr_restore_extent(r, pc[i].link, pc[i].ext, &ea, &elen);
        CU_ASSERT_TRUE(ea <= pc[i].addr && pc[i].addr + pc[i].len <= ea + elen);
        CU_ASSERT_EQUAL(cr_restore_fetch(r, pc[i].link, pc[i].ext, tmp), 0);
        memcpy(out + (pc[i].addr - TH_BASE), tmp + (pc[i].addr - ea), pc[i].len);
    }
    CU_ASSERT_EQUAL(memcmp(out, snap[5], sizeof out), 0);
    CU_ASSERT_EQUAL(cr_restore_fetch(r, 99, 0, tmp), -EINVAL);
    free(tmp);
    free(pc);
    cr_restore_close(r);
    cr_store_close(st);
}

static void test_gc_keeps_whole_chains_and_removes_leftovers(void)
{
    fresh();
    /* keep=1, full every 3: after 5 epochs the newest (5) needs 4 (full). */
    struct cr_store *st = write_chain(5, 3, 1);
    CU_ASSERT_EQUAL(st->ix.n, 2);
    CU_ASSERT_PTR_NOT_NULL(cr_index_find(&st->ix, 4));
    CU_ASSERT_PTR_NOT_NULL(cr_index_find(&st->ix, 5));
    cr_gc_wait(st);                 /* deletion runs in a helper thread */
    for (uint64_t e = 1; e <= 3; e++)
        CU_ASSERT_NOT_EQUAL(access(epoch_file(e), F_OK), 0);
    CU_ASSERT_EQUAL(access(epoch_file(4), F_OK), 0);
    /* A crashed writer's uncommitted file and index.tmp are swept. */
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s/index.tmp", dir);
    FILE *f1 = fopen(epoch_file(99), "w"), *f2 = fopen(tmp, "w");
    CU_ASSERT_TRUE(f1 && f2);
    fclose(f1);
    fclose(f2);
    cr_store_close(st);
    st = open_store(3, 1);
    CU_ASSERT_NOT_EQUAL(access(tmp, F_OK), 0);
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, NULL, NULL, 0), 0);
    CU_ASSERT_EQUAL(memcmp(out, snap[5], sizeof out), 0);
    uint8_t dirty[NPAGES], zeroed[NPAGES];
    mutate(dirty, zeroed);
    uint64_t got;
    CU_ASSERT_EQUAL(th_write_epoch(st, &mem, 0, dirty, zeroed, 1, &got), 0);
    CU_ASSERT_EQUAL(got, 6);
    cr_gc_wait(st);
    CU_ASSERT_NOT_EQUAL(access(epoch_file(99), F_OK), 0);
    /* keep=1 and 6 is the third of the chain 4-5-6: all three stay. */
    CU_ASSERT_EQUAL(st->ix.n, 3);
    cr_store_close(st);
}

/* The sweep after commit N deletes an uncommitted leftover named N+1 in a
 * helper thread; epoch N+1, written right away, must not be what it
 * deletes (begin waits for the previous sweep). Without that wait this
 * loses the new epoch's file whenever the unlink comes after its create. */
static void test_gc_never_deletes_the_next_epoch_reusing_a_leftover_name(void)
{
    fresh();
    struct cr_store *st = write_chain(1, 1, 1);
    static uint8_t junk[8u << 20];
    memset(junk, 0x77, sizeof junk);
    uint8_t dirty[NPAGES], zeroed[NPAGES];
    for (uint64_t e = 2; e < 8; e += 2) {
        FILE *f = fopen(epoch_file(e + 1), "w");  /* a crashed writer's file */
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        for (int k = 0; k < 4; k++)
            CU_ASSERT_EQUAL(fwrite(junk, 1, sizeof junk, f), sizeof junk);
        fclose(f);
        for (uint64_t n = e; n <= e + 1; n++) {
            mutate(dirty, zeroed);
            uint64_t got = 0;
            CU_ASSERT_EQUAL(th_write_epoch(st, &mem, 1, dirty, zeroed, 3, &got), 0);
            CU_ASSERT_EQUAL(got, n);
            memcpy(snap[n], cur, sizeof cur);
        }
        cr_gc_wait(st);
        CU_ASSERT_EQUAL(access(epoch_file(e + 1), F_OK), 0);
        CU_ASSERT_NOT_EQUAL(access(epoch_file(e), F_OK), 0);
    }
    cr_store_close(st);
    st = open_store(1, 1);
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 7);
    CU_ASSERT_EQUAL(memcmp(out, snap[7], sizeof out), 0);
    cr_store_close(st);
}

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
}

/* What a killed run leaves that the index does not name - its unpublished
 * epochs, the files its interrupted sweep had not deleted yet, the lock
 * probes Open MPI's MPI-IO creates beside a file on every collective open
 * ("<file>.locktest.<rank>") and rank 0's layout records - goes when the store is opened again,
 * before the new run writes an epoch (with asynchronous checkpoints the
 * first sweep of a run comes only at its second checkpoint, and until then
 * these added up with the run's own files). Named epochs and files that
 * are not the store's stay; so does everything when the index is bad. */
static void test_open_sweeps_what_a_killed_run_left(void)
{
    fresh();
    struct cr_store *st = write_chain(3, 8, 2);      /* 1F 2 3: all named */
    cr_store_close(st);
    char e4[4200], e9[4200], probe4[4300], probe2[4300], job[4300], idx[4300];
    char rec5[4300], rec5tmp[4300], rec5failed[4300], rec5odd[4300];
    snprintf(e4, sizeof e4, "%s", epoch_file(4));
    snprintf(e9, sizeof e9, "%s", epoch_file(9));
    snprintf(probe4, sizeof probe4, "%s.locktest.5", e4);
    snprintf(probe2, sizeof probe2, "%s.locktest.12", epoch_file(2));
    /* Rank 0's layout record of a job of several ranks (epoch.c), and the
     * temporary it is renamed from. */
    snprintf(rec5, sizeof rec5, "%s.layout", epoch_file(5));
    snprintf(rec5tmp, sizeof rec5tmp, "%s.layout.tmp", epoch_file(5));
    /* The empty file saying the record could not be written (its nonce in
     * the name); a name that only looks like it is not the store's. */
    snprintf(rec5failed, sizeof rec5failed, "%s.layout.failed.00c0ffee12345678", epoch_file(5));
    snprintf(rec5odd, sizeof rec5odd, "%s.layout.failed.00c0ffee", epoch_file(5));
    touch(rec5odd);
    snprintf(job, sizeof job, "%s/crmpi-job.last", dir);
    snprintf(idx, sizeof idx, "%s/index", dir);
    const char *junk[] = { e4, e9, probe4, probe2, rec5, rec5tmp, rec5failed };
    for (size_t i = 0; i < CR_ARRAY_SIZE(junk); i++)
        touch(junk[i]);
    touch(job);
    st = open_store(8, 2);
    cr_gc_wait(st);
    for (size_t i = 0; i < CR_ARRAY_SIZE(junk); i++)
        CU_ASSERT_NOT_EQUAL(access(junk[i], F_OK), 0);
    for (uint64_t e = 1; e <= 3; e++)
        CU_ASSERT_EQUAL(access(epoch_file(e), F_OK), 0);
    CU_ASSERT_EQUAL(access(job, F_OK), 0);
    CU_ASSERT_EQUAL(access(rec5odd, F_OK), 0);
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, NULL, NULL, 0), 0);
    CU_ASSERT_EQUAL(memcmp(out, snap[3], sizeof out), 0);
    /* A probe left while the store is open goes with the next commit. */
    touch(probe2);
    uint8_t dirty[NPAGES], zeroed[NPAGES];
    mutate(dirty, zeroed);
    uint64_t got = 0;
    CU_ASSERT_EQUAL(th_write_epoch(st, &mem, 0, dirty, zeroed, 1, &got), 0);
    CU_ASSERT_EQUAL(got, 4);
    cr_gc_wait(st);
    CU_ASSERT_NOT_EQUAL(access(probe2, F_OK), 0);
    cr_store_close(st);
    /* An unusable index: nothing is deleted at open. */
    FILE *f = fopen(idx, "r+");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("garbage!", f);
    fclose(f);
    touch(e9);
    st = open_store(8, 2);
    cr_gc_wait(st);
    CU_ASSERT_EQUAL(access(e9, F_OK), 0);
    for (uint64_t e = 1; e <= 4; e++)
        CU_ASSERT_EQUAL(access(epoch_file(e), F_OK), 0);
    cr_store_close(st);
}

static void test_gc_keep_two_retains_previous_chain(void)
{
    fresh();
    struct cr_store *st = write_chain(7, 3, 2);   /* 1F 2 3 4F 5 6 7F */
    CU_ASSERT_EQUAL(st->ix.n, 4);                 /* 7 and 6 (needs 4, 5) */
    CU_ASSERT_PTR_NULL(cr_index_find(&st->ix, 3));
    CU_ASSERT_PTR_NOT_NULL(cr_index_find(&st->ix, 4));
    CU_ASSERT_EQUAL(th_restore(st, 6, out, NPAGES, NULL, NULL, 0), 0);
    CU_ASSERT_EQUAL(memcmp(out, snap[6], sizeof out), 0);
    cr_store_close(st);
}

static void test_abandoned_epoch_keeps_previous_and_forces_full(void)
{
    fresh();
    struct cr_store *st = write_chain(2, 8, 4);
    uint8_t dirty[NPAGES], zeroed[NPAGES];
    mutate(dirty, zeroed);
    struct cr_extent x = { TH_BASE, PSZ, 0 };
    struct cr_epoch_desc d = { .full = 0, .region_base = TH_BASE,
        .region_size = NPAGES * PSZ, .nextents = 1, .extents = &x };
    struct cr_epoch *ep;
    CU_ASSERT_EQUAL_FATAL(cr_epoch_begin(st, &d, &ep), 0);
    CU_ASSERT_EQUAL(cr_epoch_put(ep, 0, cur), 0);
    CU_ASSERT_EQUAL(cr_epoch_commit(st, ep, -EIO), -EIO);
    CU_ASSERT_TRUE(cr_store_next_is_full(st));
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, NULL, NULL, 0), 0);
    CU_ASSERT_EQUAL(memcmp(out, snap[2], sizeof out), 0);
    cr_store_close(st);
}

static void test_api_misuse_returns_codes(void)
{
    fresh();
    struct cr_store *st = open_store(8, 2);
    struct cr_extent x[2] = { { TH_BASE, PSZ, 0 }, { TH_BASE + PSZ, PSZ, 0 } };
    struct cr_epoch_desc d = { .full = 0, .region_base = TH_BASE,
        .region_size = NPAGES * PSZ, .nextents = 2, .extents = x };
    struct cr_epoch *ep;
    CU_ASSERT_EQUAL(cr_epoch_begin(st, &d, &ep), CR_ESTATE);   /* no parent */
    d.full = 1;
    struct cr_extent bad[2] = { { TH_BASE + PSZ, PSZ, 0 }, { TH_BASE, PSZ, 0 } };
    d.extents = bad;
    CU_ASSERT_EQUAL(cr_epoch_begin(st, &d, &ep), -EINVAL);     /* out of order */
    d.extents = x;
    CU_ASSERT_EQUAL_FATAL(cr_epoch_begin(st, &d, &ep), 0);
    CU_ASSERT_EQUAL(cr_epoch_put(ep, 0, cur), 0);
    CU_ASSERT_EQUAL(cr_epoch_put(ep, 0, cur), CR_ESTATE);
    CU_ASSERT_EQUAL(cr_epoch_put(ep, 7, cur), -EINVAL);
    CU_ASSERT_EQUAL(cr_epoch_finish(ep), CR_ESTATE);           /* extent 1 missing */
    CU_ASSERT_EQUAL(cr_epoch_commit(st, ep, 0), CR_ESTATE);
    struct cr_restore *r;
    CU_ASSERT_EQUAL(cr_restore_open(st, 0, &r), CR_ENOCKPT);
    cr_store_close(st);
}

/* ---- damage ---------------------------------------------------------------- */

/* Three epochs (1 full, 2, 3); damage(3) must make restore fall back to 2. */
static void expect_fallback_to_2(void (*damage)(void), int expect_first)
{
    fresh();
    struct cr_store *st = write_chain(3, 8, 4);
    cr_store_close(st);
    damage();
    st = open_store(8, 4);
    struct cr_restore_info info;
    if (expect_first) {
        /* data damage: found while copying, then the reopen falls back */
        CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), CR_ECORRUPT);
    }
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 2);
    CU_ASSERT_EQUAL(memcmp(out, snap[2], sizeof out), 0);
    /* The next epoch continues from 2 and supersedes the damaged 3. */
    uint64_t got;
    memcpy(cur, snap[2], sizeof cur);
    uint8_t dirty[NPAGES], zeroed[NPAGES];
    mutate(dirty, zeroed);
    CU_ASSERT_EQUAL(th_write_epoch(st, &mem, 0, dirty, zeroed, 1, &got), 0);
    CU_ASSERT_EQUAL(cr_index_find(&st->ix, got)->parent, 2);
    CU_ASSERT_PTR_NULL(cr_index_find(&st->ix, 3));
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(memcmp(out, cur, sizeof out), 0);
    cr_store_close(st);
}

static void dmg_truncate(void) { CU_ASSERT_EQUAL(th_truncate(epoch_file(3), th_file_size(epoch_file(3)) / 2), 0); }
static void dmg_truncate_header(void) { CU_ASSERT_EQUAL(th_truncate(epoch_file(3), 100), 0); }
static void dmg_data(void) { CU_ASSERT_EQUAL(th_flip(epoch_file(3), th_ds_offset(epoch_file(3), CR_DS_ID_PAGES) + 5000, 0x10), 0); }
static void dmg_index_row(void) { CU_ASSERT_EQUAL(th_flip(epoch_file(3), th_ds_offset(epoch_file(3), CR_DS_ID_INDEX) + 9, 0x01), 0); }
static void dmg_thread_row(void) { CU_ASSERT_EQUAL(th_flip(epoch_file(3), th_ds_offset(epoch_file(3), CR_DS_ID_THREADS) + 200, 0x80), 0); }
static void dmg_rank_row(void) { CU_ASSERT_EQUAL(th_flip(epoch_file(3), th_ds_offset(epoch_file(3), CR_DS_ID_RANKS) + 20, 0x04), 0); }
static void dmg_header(void) { CU_ASSERT_EQUAL(th_flip(epoch_file(3), 20, 0x02), 0); }
static void dmg_identity_text(void) { CU_ASSERT_EQUAL(th_flip(epoch_file(3), sizeof(struct cr_epoch_header) + 3, 0x01), 0); }
static void dmg_missing(void) { CU_ASSERT_EQUAL(unlink(epoch_file(3)), 0); }

static void test_truncated_file_falls_back(void) { expect_fallback_to_2(dmg_truncate, 0); }
static void test_truncated_inside_header_falls_back(void) { expect_fallback_to_2(dmg_truncate_header, 0); }
static void test_flipped_data_bit_detected_on_copy_then_falls_back(void) { expect_fallback_to_2(dmg_data, 1); }
static void test_flipped_index_row_bit_falls_back(void) { expect_fallback_to_2(dmg_index_row, 0); }
static void test_flipped_thread_row_bit_falls_back(void) { expect_fallback_to_2(dmg_thread_row, 0); }
static void test_flipped_rank_row_bit_falls_back(void) { expect_fallback_to_2(dmg_rank_row, 0); }
static void test_flipped_header_bit_falls_back(void) { expect_fallback_to_2(dmg_header, 0); }
static void test_flipped_identity_bit_falls_back(void) { expect_fallback_to_2(dmg_identity_text, 0); }
static void test_index_names_missing_file_falls_back(void) { expect_fallback_to_2(dmg_missing, 0); }

static void set_version(struct cr_epoch_header *h, char *id, void *arg) { h->version = 99; }
static void set_uuid(struct cr_epoch_header *h, char *id, void *arg) { h->job_uuid[0] ^= 1; }
static void set_build(char *id, void *arg)
{
    id[0] = id[0] == 'a' ? 'b' : 'a';   /* the executable's build-id */
}
static void set_addr(char *id, void *arg)
{
    char *nl = strchr(id, '\n');          /* first library's load address */
    char *x = nl ? strstr(nl, " 0x") : NULL;
    if (x)
        x[3] = x[3] == '7' ? '6' : '7';
}

/* An identity/format/job problem of the only epoch: the named code. */
static void expect_refused(void (*edit)(struct cr_epoch_header *, char *, void *), int code)
{
    fresh();
    struct cr_store *st = write_chain(1, 8, 4);
    CU_ASSERT_EQUAL(th_edit_header(epoch_file(1), edit, NULL), 0);
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, NULL, NULL, 0), code);
    cr_store_close(st);
    /* and with an older valid epoch, the older one is used */
    fresh();
    st = write_chain(2, 8, 4);
    CU_ASSERT_EQUAL(th_edit_header(epoch_file(2), edit, NULL), 0);
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 1);
    CU_ASSERT_EQUAL(memcmp(out, snap[1], sizeof out), 0);
    cr_store_close(st);
}

static void test_other_format_version_refused(void) { expect_refused(set_version, CR_EFORMAT); }
static void test_file_of_another_job_refused(void) { expect_refused(set_uuid, CR_EFOREIGN); }
/* Identity edits are per rank (in /identities), not in the header. */
static void expect_mismatch(void (*edit)(char *, void *))
{
    fresh();
    struct cr_store *st = write_chain(1, 8, 4);
    CU_ASSERT_EQUAL(th_edit_identity(epoch_file(1), 0, edit, NULL), 0);
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, NULL, NULL, 0), CR_EMISMATCH);
    cr_store_close(st);
    fresh();
    st = write_chain(2, 8, 4);
    CU_ASSERT_EQUAL(th_edit_identity(epoch_file(2), 0, edit, NULL), 0);
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 1);
    CU_ASSERT_EQUAL(memcmp(out, snap[1], sizeof out), 0);
    cr_store_close(st);
}
static void test_other_executable_build_refused(void) { expect_mismatch(set_build); }
static void test_library_at_other_address_refused(void) { expect_mismatch(set_addr); }

static void test_flipped_identity_record_bit_falls_back(void)
{
    fresh();
    struct cr_store *st = write_chain(2, 8, 4);
    char *p = epoch_file(2);
    CU_ASSERT_EQUAL(th_flip(p, th_ds_offset(p, CR_DS_ID_IDENT) + 7, 0x01), 0);
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 1);
    cr_store_close(st);
}

static void test_file_copied_from_another_job_refused(void)
{
    fresh();
    struct cr_store *st = write_chain(2, 8, 4);
    cr_store_close(st);
    char *mine = dir, *other;
    dir = NULL;
    fresh();
    st = write_chain(2, 8, 4);            /* another job: another UUID */
    cr_store_close(st);
    other = dir;
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp %s/" CR_EPOCH_FMT " %s/", other, 2ULL, mine);
    CU_ASSERT_EQUAL(system(cmd), 0);
    dir = mine;
    st = open_store(8, 4);
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 1);
    CU_ASSERT_EQUAL(th_restore(st, 2, out, NPAGES, &info, NULL, 0), CR_EFOREIGN);
    cr_store_close(st);
    cutest_rmtree(other);
    free(other);
}

/* A reader whose job has two ranks. */
static int two_min(struct cr_coll *c, int64_t *v) { return 0; }
static int two_bcast(struct cr_coll *c, void *b, size_t n, int root) { return 0; }

static void test_file_writable_by_others_not_trusted(void)
{
    fresh();
    struct cr_store *st = write_chain(2, 8, 4);
    CU_ASSERT_EQUAL(chmod(epoch_file(2), 0666), 0);
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 1);
    CU_ASSERT_EQUAL(th_restore(st, 2, out, NPAGES, &info, NULL, 0), CR_EPERM_TRUST);
    cr_store_close(st);
}

static void test_different_number_of_ranks_refused(void)
{
    fresh();
    struct cr_store *st = write_chain(1, 8, 4);
    cr_store_close(st);
    struct cr_coll two = *cr_coll_self();
    two.size = 2;
    two.allreduce_min = two_min;
    two.bcast = two_bcast;
    struct cr_store_opts o = { 8, 4, 0 };
    CU_ASSERT_EQUAL_FATAL(cr_store_open(&st, dir, &two, &o), 0);
    struct cr_restore *r;
    CU_ASSERT_EQUAL(cr_restore_open(st, 0, &r), CR_ERANKS);
    cr_store_close(st);
}

static void test_epoch_missing_from_chain_in_index(void)
{
    fresh();
    struct cr_store *st = write_chain(3, 8, 4);
    /* Rewrite the index without epoch 2: 3 needs it. */
    struct cr_index ix = { .n = 2 };
    memcpy(ix.job_uuid, st->ix.job_uuid, CR_UUID_BYTES);
    struct cr_index_entry e[2] = { st->ix.e[0], st->ix.e[2] };
    ix.e = e;
    CU_ASSERT_EQUAL(cr_index_write(dir, &ix), 0);
    cr_store_close(st);
    st = open_store(8, 4);
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 1);
    CU_ASSERT_EQUAL(memcmp(out, snap[1], sizeof out), 0);
    cr_store_close(st);
}

static void test_damaged_middle_of_chain_falls_back_past_it(void)
{
    fresh();
    struct cr_store *st = write_chain(4, 8, 6);
    cr_store_close(st);
    CU_ASSERT_EQUAL(th_flip(epoch_file(2), th_ds_offset(epoch_file(2), CR_DS_ID_INDEX) + 3, 1), 0);
    st = open_store(8, 6);
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 1);
    CU_ASSERT_EQUAL(memcmp(out, snap[1], sizeof out), 0);
    cr_store_close(st);
}

static void test_damaged_index_refused_by_name(void)
{
    fresh();
    struct cr_store *st = write_chain(2, 8, 4);
    cr_store_close(st);
    char p[4400];
    snprintf(p, sizeof p, "%s/index", dir);
    CU_ASSERT_EQUAL(th_flip(p, th_file_size(p) - 10, 0x40), 0);
    struct cr_index ix;
    CU_ASSERT_EQUAL(cr_index_read(dir, &ix), CR_ECORRUPT);
    st = open_store(8, 4);
    struct cr_restore *r;
    CU_ASSERT_EQUAL(cr_restore_open(st, 0, &r), CR_ECORRUPT);
    cr_store_close(st);
    CU_ASSERT_EQUAL(th_truncate(p, 10), 0);
    CU_ASSERT_EQUAL(cr_index_read(dir, &ix), CR_ECORRUPT);
    FILE *f = fopen(p, "w");
    fputs("definitely not an index file, long enough to have a header", f);
    fclose(f);
    CU_ASSERT_EQUAL(cr_index_read(dir, &ix), CR_EFORMAT);
}

/* Every single-byte flip in the metadata of the newest epoch is caught:
 * restore either falls back to epoch 1 or (a flip in unused padding or the
 * HDF5 structures we never read) still restores epoch 2 exactly. */
static void test_every_metadata_byte_flip_is_caught_or_harmless(void)
{
    fresh();
    struct cr_store *st = write_chain(2, 8, 4);
    cr_store_close(st);
    char *p = epoch_file(2);
    uint64_t offs[3] = { th_ds_offset(p, CR_DS_ID_INDEX), th_ds_offset(p, CR_DS_ID_THREADS),
                         th_ds_offset(p, CR_DS_ID_RANKS) };
    uint64_t lens[3] = { 200, 400, sizeof(struct cr_rank_row) };
    unsigned caught = 0, tried = 0;
    st = open_store(8, 4);
    for (int k = 0; k < 3; k++)
        for (uint64_t o = 0; o < lens[k]; o += 3) {
            CU_ASSERT_EQUAL_FATAL(th_flip(p, offs[k] + o, 0x20), 0);
            struct cr_restore_info info;
            int rc = th_restore(st, 0, out, NPAGES, &info, NULL, 0);
            tried++;
            CU_ASSERT_EQUAL(rc, 0);
            if (info.epoch == 1) {
                caught++;
                CU_ASSERT_EQUAL(memcmp(out, snap[1], sizeof out), 0);
            } else {
                CU_ASSERT_EQUAL(memcmp(out, snap[2], sizeof out), 0);
            }
            CU_ASSERT_EQUAL_FATAL(th_flip(p, offs[k] + o, 0x20), 0);
        }
    CU_ASSERT_EQUAL(caught, tried);
    cr_store_close(st);
}

/* Many small read groups, with the reader thread (groups growing from 2
 * to 8 pages and shrinking again) and without it (2 pages): the restore
 * delivers the same bytes and still stops at a damaged extent. */
static void test_pipelined_restore_with_small_groups(void)
{
    size_t saved = cr_restore_read_group, saved_max = cr_restore_read_group_max;
    size_t saved_inline = cr_restore_read_group_inline;
    int saved_pipeline = cr_restore_pipeline;
    cr_restore_read_group = 2 * PSZ;
    cr_restore_read_group_max = 8 * PSZ;
    cr_restore_read_group_inline = 2 * PSZ;
    for (int pipeline = 1; pipeline >= 0; pipeline--) {
        cr_restore_pipeline = pipeline;
        fresh();
        struct cr_store *st = write_chain(4, 8, 4);
        struct cr_restore_info info;
        for (uint64_t e = 1; e <= 4; e++) {
            CU_ASSERT_EQUAL(th_restore(st, e, out, NPAGES, &info, NULL, 0), 0);
            CU_ASSERT_EQUAL(memcmp(out, snap[e], sizeof out), 0);
        }
        uint64_t pages = th_ds_offset(epoch_file(1), CR_DS_ID_PAGES);
        CU_ASSERT_EQUAL(th_flip(epoch_file(1), pages + 40 * PSZ + 9, 0x01), 0);
        CU_ASSERT_EQUAL(th_restore(st, 4, out, NPAGES, &info, NULL, 0), CR_ECORRUPT);
        CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), CR_ECORRUPT);
        cr_store_close(st);
    }
    cr_restore_read_group = saved;
    cr_restore_read_group_max = saved_max;
    cr_restore_read_group_inline = saved_inline;
    cr_restore_pipeline = saved_pipeline;
}

/* With the real region: extents collected from it, written, the memory
 * scribbled over, and cr_restore_pages puts it back (zero extents through
 * cr_region_discard). */
struct collect { struct cr_extent x[256]; size_t n; };
static int add_extent(const struct cr_extent *e, void *arg)
{
    struct collect *c = arg;
    if (c->n == CR_ARRAY_SIZE(c->x))
        return -ENOSPC;
    c->x[c->n++] = *e;
    return 0;
}

static void write_region_epoch(struct cr_store *st, struct collect *c, int full)
{
    struct cr_epoch *ep;
    struct cr_epoch_desc d = { .full = full, .region_base = (uintptr_t)cr_region_base(),
        .region_size = cr_region_size(), .nextents = c->n, .extents = c->x };
    CU_ASSERT_EQUAL_FATAL(cr_epoch_begin(st, &d, &ep), 0);
    int local = 0;
    for (size_t i = 0; i < c->n && !local; i++)
        local = cr_epoch_put(ep, i, (c->x[i].flags & CR_EXTENT_ZERO) ? NULL : (void *)c->x[i].addr);
    if (!local)
        local = cr_epoch_finish(ep);
    CU_ASSERT_EQUAL(cr_epoch_commit(st, ep, local), 0);
}

static void test_restore_pages_into_the_real_region(void)
{
    fresh();
    struct cr_region_params rp = { 0 };
    int rc = cr_region_open(&rp);
    if (rc < 0) {
        fprintf(stderr, "(region unavailable here: %d) ", rc);
        CU_FAIL("cr_region_open");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(cr_region_grow(64 * PSZ), 0);
    uint8_t *base = (uint8_t *)cr_region_data_start();
    size_t len = 32 * PSZ;
    fill_random(base, len);
    struct cr_store *st = open_store(8, 4);
    struct collect c = { .n = 0 };
    CU_ASSERT_EQUAL(cr_region_collect(NULL, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(cr_region_collect_populated(add_extent, &c), 0);
    write_region_epoch(st, &c, 1);
    memset(base + 5 * PSZ, 0x77, 3 * PSZ);            /* written */
    CU_ASSERT_EQUAL(cr_region_discard(base + 20 * PSZ, 2 * PSZ), 0);   /* discarded */
    c.n = 0;
    CU_ASSERT_EQUAL_FATAL(cr_region_collect(add_extent, &c), 0);
    write_region_epoch(st, &c, 0);
    uint8_t *want = malloc(len);
    memcpy(want, base, len);
    fill_random(base, len);                           /* lose everything */
    struct cr_restore *r;
    CU_ASSERT_EQUAL_FATAL(cr_restore_open(st, 0, &r), 0);
    CU_ASSERT_EQUAL(cr_restore_pages(r), 0);
    cr_restore_close(r);
    CU_ASSERT_EQUAL(memcmp(base, want, len), 0);
    free(want);
    cr_store_close(st);
    CU_ASSERT_EQUAL(cr_region_close(), 0);
}

static CU_TestInfo tests[] = {
    CUTEST(test_roundtrip_full_epoch_with_threads),
    CUTEST(test_roundtrip_empty_epoch_no_extents_no_threads),
    CUTEST(test_hdf5_reads_the_same_bytes),
    CUTEST(test_incremental_chain_applies_in_order),
    CUTEST(test_batched_puts_roundtrip),
    CUTEST(test_pieces_rebuild_newest_image_of_chain),
    CUTEST(test_gc_keeps_whole_chains_and_removes_leftovers),
    CUTEST(test_gc_keep_two_retains_previous_chain),
    CUTEST(test_gc_never_deletes_the_next_epoch_reusing_a_leftover_name),
    CUTEST(test_open_sweeps_what_a_killed_run_left),
    CUTEST(test_abandoned_epoch_keeps_previous_and_forces_full),
    CUTEST(test_api_misuse_returns_codes),
    CUTEST(test_truncated_file_falls_back),
    CUTEST(test_truncated_inside_header_falls_back),
    CUTEST(test_flipped_data_bit_detected_on_copy_then_falls_back),
    CUTEST(test_flipped_index_row_bit_falls_back),
    CUTEST(test_flipped_thread_row_bit_falls_back),
    CUTEST(test_flipped_rank_row_bit_falls_back),
    CUTEST(test_flipped_header_bit_falls_back),
    CUTEST(test_flipped_identity_bit_falls_back),
    CUTEST(test_index_names_missing_file_falls_back),
    CUTEST(test_other_format_version_refused),
    CUTEST(test_file_of_another_job_refused),
    CUTEST(test_other_executable_build_refused),
    CUTEST(test_library_at_other_address_refused),
    CUTEST(test_flipped_identity_record_bit_falls_back),
    CUTEST(test_file_copied_from_another_job_refused),
    CUTEST(test_different_number_of_ranks_refused),
    CUTEST(test_file_writable_by_others_not_trusted),
    CUTEST(test_epoch_missing_from_chain_in_index),
    CUTEST(test_damaged_middle_of_chain_falls_back_past_it),
    CUTEST(test_damaged_index_refused_by_name),
    CUTEST(test_every_metadata_byte_flip_is_caught_or_harmless),
    CUTEST(test_pipelined_restore_with_small_groups),
    CUTEST(test_restore_pages_into_the_real_region),
    CU_TEST_INFO_NULL,
};

static int teardown(void)
{
    cutest_rmtree(dir);
    free(dir);
    dir = NULL;           /* the next suite's fresh() frees it again */
    return 0;
}

/* ---- the layout helper process (single-process stores) ------------------------- */

/* The crmpi-layout-helper children of process pid (0 if none); *n = how many. */
static pid_t helper_of(pid_t pid, int *n)
{
    char path[64], comm[32];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    pid_t found = 0, c;
    *n = 0;
    while (f && fscanf(f, "%d", &c) == 1) {
        snprintf(path, sizeof path, "/proc/%d/comm", (int)c);
        FILE *g = fopen(path, "r");
        if (g && fgets(comm, sizeof comm, g) && !strncmp(comm, "crmpi-layout-he", 15)) {
            found = c;
            (*n)++;
        }
        if (g)
            fclose(g);
    }
    if (f)
        fclose(f);
    return found;
}

/* Gone, or a zombie no one has reaped yet (reparented to a PID 1 that may not). */
static int exited(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    char *p = fgets(buf, sizeof buf, f);
    fclose(f);
    p = p ? strrchr(buf, ')') : NULL;
    return p && (p[2] == 'Z' || p[2] == 'X');
}

static void expect_chain_restores(struct cr_store *st, uint64_t newest)
{
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, newest);
    CU_ASSERT_EQUAL(memcmp(out, snap[newest], sizeof out), 0);
}

/* One helper lays out every epoch of the store, and goes with the store.
 * It runs at the background writer's nice value, which it sets itself
 * (otherwise it would have the nice value of the thread that started it,
 * this one's). */
static void test_one_helper_lays_out_every_epoch_and_exits_with_the_store(void)
{
    fresh();
    struct cr_store *st = write_chain(4, 3, 8);
    int n;
    pid_t h = helper_of(getpid(), &n);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT(h > 0);
    errno = 0;
    int prio = h > 0 ? getpriority(PRIO_PROCESS, (id_t)h) : -1;
    CU_ASSERT_EQUAL(errno, 0);
    CU_ASSERT_EQUAL(prio, (int)cr_config()->writer_nice);
    expect_chain_restores(st, 4);
    cr_store_close(st);
    CU_ASSERT(h <= 0 || exited(h));
    helper_of(getpid(), &n);
    CU_ASSERT_EQUAL(n, 0);
}

/* SIGKILLed between epochs: the next epoch's layout goes to a new helper,
 * and nothing fails. */
static void test_helper_killed_between_epochs_is_replaced(void)
{
    fresh();
    struct cr_store *st = write_chain(2, 8, 8);
    int n;
    pid_t h = helper_of(getpid(), &n);
    CU_ASSERT_FATAL(h > 0);
    CU_ASSERT_EQUAL(kill(h, SIGKILL), 0);
    CU_ASSERT_EQUAL(waitpid(h, NULL, 0), h);
    uint8_t dirty[NPAGES], zeroed[NPAGES];
    mutate(dirty, zeroed);
    uint64_t got = 0;
    CU_ASSERT_EQUAL(th_write_epoch(st, &mem, 0, dirty, zeroed, 3, &got), 0);
    CU_ASSERT_EQUAL(got, 3);
    memcpy(snap[3], cur, sizeof cur);
    pid_t h2 = helper_of(getpid(), &n);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT(h2 > 0 && h2 != h);
    expect_chain_restores(st, 3);
    cr_store_close(st);
}

/* A helper that dies on every request (here: a program that exits at once)
 * fails that epoch like a failed write - an error code, the previous epoch
 * kept, the next one full - and never the process. The epochs after it are
 * laid out in the call: a broken helper costs one epoch, not every one. */
static void test_helper_that_always_dies_fails_the_epoch_cleanly(void)
{
    fresh();
    struct cr_store *st = write_chain(1, 8, 8);
    cr_store_close(st);
    setenv("CRMPI_LAYOUT_HELPER", "/bin/true", 1);
    CU_ASSERT_EQUAL(cr_config_reload(), 0);
    st = open_store(8, 8);
    uint8_t dirty[NPAGES], zeroed[NPAGES];
    mutate(dirty, zeroed);
    uint64_t got = 0;
    /* Full: a reopened store takes no incremental epoch before a restore,
     * and that refusal must not pass for the helper's failure. */
    CU_ASSERT(cr_store_next_is_full(st));
    int rc = th_write_epoch(st, &mem, 1, dirty, zeroed, 3, &got);
    CU_ASSERT_EQUAL(rc, -EPIPE);
    CU_ASSERT(cr_store_next_is_full(st));
    CU_ASSERT_EQUAL(access(epoch_file(2), F_OK), -1);
    /* The same broken helper is still configured: the next (full) epochs
     * commit, laid out here, and no helper process is left running. */
    mutate(dirty, zeroed);
    CU_ASSERT_EQUAL(th_write_epoch(st, &mem, 1, dirty, zeroed, 3, &got), 0);
    CU_ASSERT_EQUAL(got, 2);
    memcpy(snap[2], cur, sizeof cur);
    mutate(dirty, zeroed);
    CU_ASSERT_EQUAL(th_write_epoch(st, &mem, 0, dirty, zeroed, 3, &got), 0);
    CU_ASSERT_EQUAL(got, 3);
    memcpy(snap[3], cur, sizeof cur);
    int n;
    helper_of(getpid(), &n);
    CU_ASSERT_EQUAL(n, 0);
    unsetenv("CRMPI_LAYOUT_HELPER");
    CU_ASSERT_EQUAL(cr_config_reload(), 0);
    expect_chain_restores(st, 3);
    cr_store_close(st);
}

/* No helper to be had: the layout is made in the call, as it was before. */
static void test_missing_helper_lays_out_in_the_call(void)
{
    setenv("CRMPI_LAYOUT_HELPER", "/nonexistent/crmpi-layout-helper", 1);
    CU_ASSERT_EQUAL(cr_config_reload(), 0);
    fresh();
    struct cr_store *st = write_chain(3, 8, 8);
    int n;
    helper_of(getpid(), &n);
    CU_ASSERT_EQUAL(n, 0);
    expect_chain_restores(st, 3);
    cr_store_close(st);
    setenv("CRMPI_LAYOUT_HELPER", "off", 1);
    CU_ASSERT_EQUAL(cr_config_reload(), 0);
    fresh();
    st = write_chain(2, 8, 8);
    helper_of(getpid(), &n);
    CU_ASSERT_EQUAL(n, 0);
    expect_chain_restores(st, 2);
    cr_store_close(st);
    unsetenv("CRMPI_LAYOUT_HELPER");
    CU_ASSERT_EQUAL(cr_config_reload(), 0);
}

/* The owner SIGKILLed while it writes epochs (at random points, so also
 * while its helper lays one out): the helper exits by itself, and the
 * directory restores to a committed epoch. */
static void test_owner_killed_helper_exits_and_directory_restores(void)
{
    for (int round = 0; round < 6; round++) {
        fresh();
        pid_t child = fork();
        CU_ASSERT_FATAL(child >= 0);
        if (child == 0) {
            struct cr_store_opts o = { .full_every = 4, .keep = 2 };
            struct cr_store *st = NULL;
            if (cr_store_open(&st, dir, cr_coll_self(), &o))
                _exit(2);
            uint8_t dirty[NPAGES], zeroed[NPAGES];
            fill_random(cur, sizeof cur);
            for (;;) {
                uint64_t got;
                if (th_write_epoch(st, &mem, cr_store_next_is_full(st), dirty, zeroed, 3, &got))
                    _exit(3);
                mutate(dirty, zeroed);
            }
        }
        /* Until the second epoch exists, then a random moment later. */
        for (int i = 0; i < 5000 && access(epoch_file(2), F_OK) != 0; i++)
            usleep(1000);
        usleep((useconds_t)(cutest_rand() % 20000));
        int n;
        pid_t h = helper_of(child, &n);
        CU_ASSERT_EQUAL(kill(child, SIGKILL), 0);
        int status;
        CU_ASSERT_EQUAL(waitpid(child, &status, 0), child);
        CU_ASSERT(WIFSIGNALED(status));
        CU_ASSERT(n == 1 && h > 0);
        int gone = 0;
        for (int i = 0; i < 1000 && h > 0 && !(gone = exited(h)); i++)
            usleep(10000);
        CU_ASSERT(gone);
        struct cr_store *st = open_store(4, 2);
        struct cr_restore_info info;
        CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
        CU_ASSERT(info.epoch >= 1);
        cr_store_close(st);
    }
}

/* A fork child of the store's owner never talks to the owner's helper: it
 * shares the owner's socket, and requests of both would interleave on it.
 * The child's first epoch starts a helper of its own; the owner's helper
 * goes on living and serving the owner. */
static void test_fork_child_starts_its_own_helper(void)
{
    fresh();
    struct cr_store *st = write_chain(2, 8, 8);
    int n;
    pid_t h = helper_of(getpid(), &n);
    CU_ASSERT_FATAL(h > 0 && n == 1);
    pid_t child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) {
        uint8_t dirty[NPAGES], zeroed[NPAGES];
        mutate(dirty, zeroed);
        uint64_t got = 0;
        int rc = th_write_epoch(st, &mem, 0, dirty, zeroed, 3, &got);
        int cn;
        pid_t ch = helper_of(getpid(), &cn);
        _exit(rc != 0 ? 2 : got != 3 ? 3 : (cn != 1 || ch <= 0 || ch == h) ? 4 : 0);
    }
    int status;
    CU_ASSERT_EQUAL(waitpid(child, &status, 0), child);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT_EQUAL(helper_of(getpid(), &n), h);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_FALSE(exited(h));
    cr_store_close(st);        /* the owner's helper ends with its store */
    int gone = 0;
    for (int i = 0; i < 1000 && !(gone = exited(h)); i++)
        usleep(10000);
    CU_ASSERT(gone);
}

static CU_TestInfo tests_helper[] = {
    CUTEST(test_one_helper_lays_out_every_epoch_and_exits_with_the_store),
    CUTEST(test_helper_killed_between_epochs_is_replaced),
    CUTEST(test_helper_that_always_dies_fails_the_epoch_cleanly),
    CUTEST(test_missing_helper_lays_out_in_the_call),
    CUTEST(test_owner_killed_helper_exits_and_directory_restores),
    CUTEST(test_fork_child_starts_its_own_helper),
    CU_TEST_INFO_NULL
};

static CU_SuiteInfo suites[] = {
    { "store", setup, teardown, NULL, NULL, tests },
    { "layout-helper", setup, teardown, NULL, NULL, tests_helper },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
