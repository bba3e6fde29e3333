/*
 * test_store_mpi.c - the container in an MPI job (run under mpirun with
 * 1, 2 and 4 ranks): shared epoch files laid out by rank 0's layout helper
 * (or collectively with parallel HDF5 without it), each rank's slice at its prefix-sum offset, restores that read only
 * each rank's own rows, agreement on failures, and fallback when one
 * rank's part of the newest epoch is damaged.
 * Ranks hold different amounts of data (rank r: 8 + 24*r pages, rank 1 none
 * in incremental epochs) so offsets really differ between ranks.
 */
#include "cutest.h"
#include "store_helpers.h"
#include "common/config.h"
#include "common/crc32c.h"
#include "coll_mpi.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <mpi.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXPAGES 128
#define PSZ CR_PAGE_SIZE

static struct cr_coll *coll;
static int rank, nranks;
static char dir[4096];
static uint8_t cur[MAXPAGES * PSZ], out[MAXPAGES * PSZ], snap[8][MAXPAGES * PSZ];
static struct th_mem mem = { cur, 0 };

static void new_dir(void)
{
    if (rank == 0) {
        if (dir[0])
            cutest_rmtree(dir);
        char *d = cutest_tmpdir("storempi");
        snprintf(dir, sizeof dir, "%s", d ? d : "");
        free(d);
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    CU_ASSERT_FATAL(dir[0] != 0);
    mem.npages = 8 + 24 * (size_t)rank;
    memset(cur, 0, sizeof cur);
}

static struct cr_store *open_store(unsigned full_every, unsigned keep)
{
    struct cr_store *st = NULL;
    struct cr_store_opts o = { .full_every = full_every, .keep = keep };
    CU_ASSERT_EQUAL_FATAL(cr_store_open(&st, dir, coll, &o), 0);
    return st;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = (seed + i) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)rank << 56;
        memcpy(p + i, &v, 8);
    }
}

static struct cr_store *write_chain(unsigned n, unsigned full_every, unsigned keep)
{
    uint8_t dirty[MAXPAGES], zeroed[MAXPAGES];
    struct cr_store *st = open_store(full_every, keep);
    fill(cur, mem.npages * PSZ, 1);
    for (unsigned e = 1; e <= n; e++) {
        memset(dirty, 0, sizeof dirty);
        memset(zeroed, 0, sizeof zeroed);
        if (e > 1 && rank != 1)
            for (size_t p = 0; p < mem.npages; p++) {
                if ((p + e) % 3 == 0) {
                    fill(cur + p * PSZ, PSZ, e * 1000 + p);
                    dirty[p] = 1;
                } else if ((p + e) % 7 == 0) {
                    memset(cur + p * PSZ, 0, PSZ);
                    zeroed[p] = 1;
                }
            }
        uint64_t got = 0;
        CU_ASSERT_EQUAL(th_write_epoch(st, &mem, cr_store_next_is_full(st), dirty, zeroed,
                                       (size_t)rank + 1, &got), 0);
        CU_ASSERT_EQUAL(got, e);
        memcpy(snap[e], cur, sizeof cur);
    }
    return st;
}

static char *epoch_file(uint64_t e)
{
    static char p[4200];
    snprintf(p, sizeof p, "%s/" CR_EPOCH_FMT, dir, (unsigned long long)e);
    return p;
}

/* The newest epoch restores on every rank, and it is epoch e as written. */
static void restores_newest(struct cr_store *st, uint64_t e)
{
    struct cr_restore_info info;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, mem.npages, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, e);
    CU_ASSERT_EQUAL(memcmp(out, snap[e], mem.npages * PSZ), 0);
}

static void test_mpi_roundtrip_each_rank_gets_its_own_pages(void)
{
    new_dir();
    struct cr_store *st = write_chain(1, 4, 4);
    cr_store_close(st);
    st = open_store(4, 4);
    struct cr_restore_info info;
    struct cr_thread_record t[8], want;
    CU_ASSERT_EQUAL(th_restore(st, 0, out, mem.npages, &info, t, 8), 0);
    CU_ASSERT_EQUAL(memcmp(out, snap[1], mem.npages * PSZ), 0);
    CU_ASSERT_EQUAL(info.nthreads, (size_t)rank + 1);
    CU_ASSERT_EQUAL(info.region_size, mem.npages * PSZ);
    for (int i = 0; i <= rank; i++) {
        th_thread_record((size_t)i, 1, &want);
        CU_ASSERT_EQUAL(memcmp(&t[i], &want, sizeof want), 0);
    }
    cr_store_close(st);
}

/* The file is one shared HDF5 file: HDF5 reads every rank's row. */
static void test_mpi_file_is_one_shared_hdf5_file(void)
{
    new_dir();
    struct cr_store *st = write_chain(1, 4, 4);
    cr_store_close(st);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        hid_t f = H5Fopen(epoch_file(1), H5F_ACC_RDONLY, H5P_DEFAULT);
        CU_ASSERT_FATAL(f >= 0);
        hid_t d = H5Dopen2(f, CR_DS_RANKS, H5P_DEFAULT);
        hid_t s = H5Dget_space(d);
        hsize_t n = 0;
        H5Sget_simple_extent_dims(s, &n, NULL);
        CU_ASSERT_EQUAL(n, (hsize_t)nranks);
        H5Sclose(s);
        H5Dclose(d);
        hid_t a = H5Aopen(f, "nranks", H5P_DEFAULT);
        uint64_t v = 0;
        CU_ASSERT_TRUE(a >= 0 && H5Aread(a, H5T_NATIVE_UINT64, &v) >= 0);
        CU_ASSERT_EQUAL(v, (uint64_t)nranks);
        H5Aclose(a);
        H5Fclose(f);
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "h5dump -d /ranks %s > /dev/null 2>&1", epoch_file(1));
        CU_ASSERT_EQUAL(system(cmd), 0);
    }
}

static void test_mpi_incremental_chain_and_gc(void)
{
    new_dir();
    struct cr_store *st = write_chain(6, 3, 1);   /* 1F 2 3 4F 5 6: keeps 4 5 6 */
    CU_ASSERT_EQUAL(st->ix.n, 3);
    cr_store_close(st);
    st = open_store(3, 1);
    struct cr_restore_info info;
    restores_newest(st, 6);
    CU_ASSERT_EQUAL(th_restore(st, 5, out, mem.npages, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(memcmp(out, snap[5], mem.npages * PSZ), 0);
    if (rank == 0)
        CU_ASSERT_NOT_EQUAL(access(epoch_file(3), F_OK), 0);
    cr_store_close(st);
}

static void test_mpi_one_rank_failing_abandons_epoch_everywhere(void)
{
    new_dir();
    struct cr_store *st = write_chain(2, 8, 4);
    struct cr_extent x = { TH_BASE, PSZ, 0 };
    struct cr_epoch_desc d = { .full = 0, .region_base = TH_BASE,
        .region_size = mem.npages * PSZ, .nextents = 1, .extents = &x };
    struct cr_epoch *ep;
    CU_ASSERT_EQUAL_FATAL(cr_epoch_begin(st, &d, &ep), 0);
    int local = cr_epoch_put(ep, 0, cur);
    if (!local)
        local = cr_epoch_finish(ep);
    if (rank == nranks - 1)
        local = -ENOSPC;
    CU_ASSERT_EQUAL(cr_epoch_commit(st, ep, local), -ENOSPC);
    CU_ASSERT_TRUE(cr_store_next_is_full(st));
    restores_newest(st, 2);
    cr_store_close(st);
}

/* Damage rank 0's data in the newest epoch: only that rank sees it
 * while copying; all agree and fall back together. */
static void test_mpi_damaged_slice_of_one_rank_falls_back_on_all(void)
{
    new_dir();
    struct cr_store *st = write_chain(3, 8, 4);
    cr_store_close(st);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        struct cr_epfile f;
        struct cr_rank_row row;
        CU_ASSERT_EQUAL_FATAL(cr_epfile_open(epoch_file(3), &f), 0);
        CU_ASSERT_EQUAL_FATAL(cr_epfile_rank(&f, (uint32_t)rank, &row, NULL, NULL), 0);
        uint64_t off = f.h.ds[CR_DS_ID_PAGES].offset + row.data_offset + 17;
        cr_epfile_close(&f);
        CU_ASSERT_EQUAL(th_flip(epoch_file(3), off, 0x08), 0);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    st = open_store(8, 4);
    struct cr_restore_info info;
    int rc = th_restore(st, 0, out, mem.npages, &info, NULL, 0);
    int agreed = cr_coll_agree(coll, rc);
    CU_ASSERT_NOT_EQUAL(agreed, 0);
    restores_newest(st, 2);
    cr_store_close(st);
}

/* Rank 0's layout record (epoch.c) as a foreign or earlier writer would
 * leave it: the fields in their order, packed. */
struct stale_rec {
    char     magic[8];
    uint64_t epoch, nonce;
    int64_t  rc;
    uint64_t ds_off[CR_DS_COUNT];
    uint64_t ntopo;
    uint32_t reserved, crc;
} __attribute__((packed));

static void plant(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(buf, 1, n, f), n);
    fclose(f);
}

/* The other ranks take the layout only from this attempt's record: a
 * record of the same epoch left by an earlier attempt (valid but for its
 * nonce, with offsets that would make them write over the file's
 * metadata) or garbage under that name is passed over, and every record
 * is gone once its epoch is committed. */
static void test_mpi_stale_layout_records_are_not_taken(void)
{
    new_dir();
    struct cr_store *st = write_chain(2, 8, 4);
    char rec[4300];
    uint8_t dirty[MAXPAGES] = { 0 }, zeroed[MAXPAGES] = { 0 };
    for (uint64_t e = 3; e <= 4; e++) {
        snprintf(rec, sizeof rec, "%s.layout", epoch_file(e));
        if (rank == 0 && e == 3) {
            char junk[300];
            memset(junk, 0x5a, sizeof junk);
            plant(rec, junk, sizeof junk);
        } else if (rank == 0) {
            struct stale_rec r = { .epoch = e, .nonce = 0x1234 };
            memcpy(r.magic, "CRLAYOUT", 8);
            r.crc = cr_crc32c(0, &r, sizeof r);
            plant(rec, &r, sizeof r);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        for (size_t p = 0; p < mem.npages; p += 2) {
            fill(cur + p * PSZ, PSZ, e * 77 + p);
            dirty[p] = 1;
        }
        uint64_t got = 0;
        CU_ASSERT_EQUAL(th_write_epoch(st, &mem, 0, dirty, zeroed, 1, &got), 0);
        CU_ASSERT_EQUAL(got, e);
        memcpy(snap[e], cur, sizeof cur);
        if (rank == 0 && nranks > 1)
            CU_ASSERT_NOT_EQUAL(access(rec, F_OK), 0);
    }
    cr_store_close(st);
    st = open_store(8, 4);
    restores_newest(st, 4);
    cr_store_close(st);
}

/* Rank 0 fails before it ever needs the file (so its helper never lays it
 * out) while the others put: they wait for the layout, learn of the
 * failure from rank 0's commit, and all agree on rank 0's error. */
static void test_mpi_rank0_failing_before_layout_releases_the_others(void)
{
    new_dir();
    struct cr_store *st = write_chain(2, 8, 4);
    struct cr_extent x = { TH_BASE, PSZ, 0 };
    struct cr_epoch_desc d = { .full = 0, .region_base = TH_BASE,
        .region_size = mem.npages * PSZ, .nextents = 1, .extents = &x };
    struct cr_epoch *ep;
    CU_ASSERT_EQUAL_FATAL(cr_epoch_begin(st, &d, &ep), 0);
    int local = -ENOSPC;
    if (rank != 0) {
        local = cr_epoch_put(ep, 0, cur);
        CU_ASSERT_EQUAL(local, CR_EREMOTE);
    }
    CU_ASSERT_EQUAL(cr_epoch_commit(st, ep, local), -ENOSPC);
    CU_ASSERT_TRUE(cr_store_next_is_full(st));
    if (rank == 0) {
        char rec[4300];
        snprintf(rec, sizeof rec, "%s.layout", epoch_file(3));
        CU_ASSERT_NOT_EQUAL(access(rec, F_OK), 0);
    }
    restores_newest(st, 2);
    cr_store_close(st);
}

/* Without a layout helper (CRMPI_LAYOUT_HELPER=off) the ranks create each
 * file together through MPI-IO, as before; same files, same restores.
 * Open MPI's MPI-IO left a taken semaphore named after the first epoch's
 * file, as a rank killed in its open does (coll_mpi.c): without rank 0
 * removing it first, the first epoch's creation waits forever. */
static void test_mpi_collective_layout_without_helper(void)
{
    setenv("CRMPI_LAYOUT_HELPER", "off", 1);
    CU_ASSERT_EQUAL_FATAL(cr_config_reload(), 0);
    if (rank == 0 && nranks > 1) {
        sem_unlink("OMPIO_epoch-000000000001.h5");
        sem_t *s = sem_open("OMPIO_epoch-000000000001.h5", O_CREAT | O_EXCL, 0644, 0);
        CU_ASSERT_FATAL(s != SEM_FAILED);
        sem_close(s);
    }
    new_dir();
    struct cr_store *st = write_chain(4, 3, 4);
    cr_store_close(st);
    unsetenv("CRMPI_LAYOUT_HELPER");
    CU_ASSERT_EQUAL_FATAL(cr_config_reload(), 0);
    st = open_store(3, 4);
    restores_newest(st, 4);
    cr_store_close(st);
}

/* Rank 0's layout helper dies on every request (a program that exits at
 * once): that epoch fails on every rank with rank 0's error (the others'
 * writers learn of it from its layout record, the commit agrees on it),
 * and rank 0 then lays out the following
 * epochs collectively with the others: they commit and restore. */
static void test_mpi_helper_that_always_dies_costs_one_epoch(void)
{
    new_dir();
    struct cr_store *st = write_chain(2, 8, 4);
    cr_store_close(st);
    setenv("CRMPI_LAYOUT_HELPER", "/bin/true", 1);
    CU_ASSERT_EQUAL_FATAL(cr_config_reload(), 0);
    st = open_store(8, 4);          /* a new helper: the broken one */
    uint8_t dirty[MAXPAGES], zeroed[MAXPAGES];
    memset(zeroed, 0, sizeof zeroed);
    uint64_t got = 0;
    for (int k = 0; k < 3; k++) {
        memset(dirty, 0, sizeof dirty);
        for (size_t p = (size_t)k; p < mem.npages; p += 3) {
            fill(cur + p * PSZ, PSZ, 5000 + (uint64_t)k * 100 + p);
            dirty[p] = 1;
        }
        int full = cr_store_next_is_full(st);
        CU_ASSERT_EQUAL(full, k < 2);   /* reopened, then after the failure */
        int rc = th_write_epoch(st, &mem, full, dirty, zeroed, 1, &got);
        if (k == 0) {
            CU_ASSERT_EQUAL(rc, -EPIPE);        /* rank 0's error, on every rank */
            CU_ASSERT_NOT_EQUAL(access(epoch_file(3), F_OK), 0);
        } else {
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT_EQUAL(got, (uint64_t)k + 2);
            memcpy(snap[k + 2], cur, sizeof cur);
        }
    }
    cr_store_close(st);
    unsetenv("CRMPI_LAYOUT_HELPER");
    CU_ASSERT_EQUAL_FATAL(cr_config_reload(), 0);
    st = open_store(8, 4);
    restores_newest(st, 4);
    cr_store_close(st);
}

/* Rank 0 cannot write the layout record (CRMPI_FAULT=layout-publishing#0:eio,
 * as on a full or failing filesystem): it says so with an empty marker, and
 * the other ranks fail the epoch at once with rank 0's error instead of
 * polling for a record until their 300 s timeout (failing without the
 * marker: the time bound is that timeout's half, a protocol bound, not a
 * performance one). The marker goes at commit; the next epoch (full)
 * commits and restores. */
static void test_mpi_unwritable_layout_record_fails_the_epoch_at_once(void)
{
    if (nranks == 1) {
        CU_PASS("a single process has no layout record");
        return;
    }
    new_dir();
    struct cr_store *st = write_chain(2, 8, 4);
    setenv("CRMPI_FAULT", "layout-publishing#0:eio", 1);
    CU_ASSERT_EQUAL_FATAL(cr_config_reload(), 0);
    uint8_t dirty[MAXPAGES], zeroed[MAXPAGES];
    memset(zeroed, 0, sizeof zeroed);
    memset(dirty, 0, sizeof dirty);
    for (size_t p = 0; p < mem.npages; p += 2) {
        fill(cur + p * PSZ, PSZ, 7100 + p);
        dirty[p] = 1;
    }
    uint64_t got = 0;
    double t0 = MPI_Wtime();
    int rc = th_write_epoch(st, &mem, 0, dirty, zeroed, 1, &got);
    double took = MPI_Wtime() - t0;
    CU_ASSERT_EQUAL(rc, -EIO);           /* rank 0's error, on every rank */
    CU_ASSERT(took < 150.0);
    if (rank == 0) {
        char rec[4300];
        snprintf(rec, sizeof rec, "%s.layout", epoch_file(3));
        CU_ASSERT_NOT_EQUAL(access(rec, F_OK), 0);
    }
    unsetenv("CRMPI_FAULT");
    CU_ASSERT_EQUAL_FATAL(cr_config_reload(), 0);
    CU_ASSERT_TRUE(cr_store_next_is_full(st));
    for (size_t p = 0; p < mem.npages; p++)
        dirty[p] = 1;
    CU_ASSERT_EQUAL(th_write_epoch(st, &mem, 1, dirty, zeroed, 1, &got), 0);
    CU_ASSERT_EQUAL(got, 3);
    memcpy(snap[3], cur, sizeof cur);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {                      /* nothing transient is left */
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "ls '%s' | grep -q layout", dir);
        CU_ASSERT_NOT_EQUAL(system(cmd), 0);
    }
    restores_newest(st, 3);
    cr_store_close(st);
}

static CU_TestInfo tests[] = {
    CUTEST(test_mpi_roundtrip_each_rank_gets_its_own_pages),
    CUTEST(test_mpi_file_is_one_shared_hdf5_file),
    CUTEST(test_mpi_incremental_chain_and_gc),
    CUTEST(test_mpi_one_rank_failing_abandons_epoch_everywhere),
    CUTEST(test_mpi_damaged_slice_of_one_rank_falls_back_on_all),
    CUTEST(test_mpi_stale_layout_records_are_not_taken),
    CUTEST(test_mpi_rank0_failing_before_layout_releases_the_others),
    CUTEST(test_mpi_collective_layout_without_helper),
    CUTEST(test_mpi_helper_that_always_dies_costs_one_epoch),
    CUTEST(test_mpi_unwritable_layout_record_fails_the_epoch_at_once),
    CU_TEST_INFO_NULL,
};

static int setup(void)
{
    setenv("CRMPI_ALIGN", "64K", 1);
    setenv("CRMPI_LOG", getenv("TLOG") ? getenv("TLOG") : "none", 1);
    return cr_config_reload() ? -1 : 0;
}

static int teardown(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0 && dir[0])
        cutest_rmtree(dir);
    return 0;
}

static CU_SuiteInfo suites[] = {
    { "store_mpi", setup, teardown, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (rank != 0 && !freopen("/dev/null", "w", stdout))
        return 2;
    if (cr_coll_mpi_create(MPI_COMM_WORLD, &coll) < 0)
        MPI_Abort(MPI_COMM_WORLD, 2);
    int rc = cutest_main(argc, argv, suites);
    /* A failure on any rank fails the run. */
    int all = 0;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    cr_coll_mpi_destroy(coll);
    MPI_Finalize();
    return all;
}
