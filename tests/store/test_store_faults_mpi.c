/*
 * test_store_faults_mpi.c - a storage failure on one rank of an MPI job
 * (CRMPI_FAULT set on that rank only): every rank's checkpoint returns the
 * same error, the job keeps running, the previous checkpoint restores
 * exactly on every rank, and the next checkpoint succeeds everywhere.
 * Cases: a page-data pwrite of the last rank fails (EIO), the fsync of
 * rank 1's part fails (ENOSPC), and rank 0's fsync of the new index
 * fails (EIO) - the one step only rank 0 performs.
 */
#include "cutest.h"
#include "store_helpers.h"
#include "common/config.h"
#include "common/fault.h"
#include "coll_mpi.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPAGES 24
#define PSZ CR_PAGE_SIZE

static struct cr_coll *coll;
static int rank, nranks;
static char dir[4096];
static uint8_t cur[NPAGES * PSZ], out[NPAGES * PSZ], prev[NPAGES * PSZ];
static struct th_mem mem = { cur, NPAGES };

static void set_fault(const char *spec)
{
    if (spec)
        setenv("CRMPI_FAULT", spec, 1);
    else
        unsetenv("CRMPI_FAULT");
    cr_config_reload();
    cr_fault_reset();
}

static void change(uint8_t *dirty, unsigned salt)
{
    for (size_t p = 0; p < NPAGES; p++) {
        dirty[p] = (p + salt) % 2 == 0;
        if (dirty[p])
            for (size_t i = 0; i < PSZ; i++)
                cur[p * PSZ + i] = (uint8_t)(i * 13 + p + salt * 5 + (unsigned)rank * 101);
    }
}

static struct cr_store *open_store(void)
{
    struct cr_store *st = NULL;
    struct cr_store_opts o = { .full_every = 8, .keep = 3, .align = 4096 };
    CU_ASSERT_EQUAL_FATAL(cr_store_open(&st, dir, coll, &o), 0);
    return st;
}

static void fail_on(int who, const char *spec, int want)
{
    if (rank == 0) {
        if (dir[0])
            cutest_rmtree(dir);
        char *d = cutest_tmpdir("faultsmpi");
        snprintf(dir, sizeof dir, "%s", d ? d : "");
        free(d);
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    uint8_t d[NPAGES];
    memset(cur, 0, sizeof cur);
    struct cr_store *st = open_store();
    change(d, 1);
    CU_ASSERT_EQUAL_FATAL(th_write_epoch(st, &mem, 1, NULL, NULL, 1, NULL), 0);
    change(d, 2);
    CU_ASSERT_EQUAL_FATAL(th_write_epoch(st, &mem, 0, d, NULL, 1, NULL), 0);
    memcpy(prev, cur, sizeof cur);
    change(d, 3);
    if (rank == who)
        set_fault(spec);
    int rc = th_write_epoch(st, &mem, 0, d, NULL, 1, NULL);
    set_fault(NULL);
    if (rc != want)
        fprintf(stderr, "\n  rank %d: fault %s on rank %d: got %d (%s), expected %d ", rank,
                spec, who, rc, cr_strerror(rc), want);
    CU_ASSERT_EQUAL(rc, want);
    int64_t v = rc, lo = rc;
    CU_ASSERT_EQUAL(coll->allreduce_min(coll, &lo), 0);
    v = -v;
    CU_ASSERT_EQUAL(coll->allreduce_min(coll, &v), 0);
    CU_ASSERT_EQUAL(lo, -v);                               /* same on every rank */
    struct cr_restore_info info = { 0 };
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 2);
    CU_ASSERT_EQUAL(memcmp(out, prev, sizeof out), 0);
    cr_store_close(st);
    st = open_store();                                     /* restart */
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 2);
    CU_ASSERT_EQUAL(memcmp(out, prev, sizeof out), 0);
    memcpy(cur, prev, sizeof cur);
    change(d, 4);
    uint64_t got = 0;
    CU_ASSERT_EQUAL(th_write_epoch(st, &mem, cr_store_next_is_full(st), d, NULL, 1, &got), 0);
    CU_ASSERT_EQUAL(got, 3);
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, 3);
    CU_ASSERT_EQUAL(memcmp(out, cur, sizeof out), 0);
    cr_store_close(st);
}

static void test_mpi_page_pwrite_eio_on_last_rank(void)
{
    fail_on(nranks - 1, "store-pwrite@2:eio", -EIO);
}

static void test_mpi_epoch_fsync_enospc_on_rank_1(void)
{
    fail_on(nranks > 1 ? 1 : 0, "epoch-fsync:enospc", -ENOSPC);
}

static void test_mpi_index_fsync_eio_on_rank_0(void)
{
    fail_on(0, "index-fsync:eio", -EIO);
}

static CU_TestInfo tests[] = {
    CUTEST(test_mpi_page_pwrite_eio_on_last_rank),
    CUTEST(test_mpi_epoch_fsync_enospc_on_rank_1),
    CUTEST(test_mpi_index_fsync_eio_on_rank_0),
    CU_TEST_INFO_NULL,
};

static int setup(void)
{
    setenv("CRMPI_LOG", getenv("TLOG") ? getenv("TLOG") : "none", 1);
    set_fault(NULL);
    return 0;
}

static int teardown(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0 && dir[0])
        cutest_rmtree(dir);
    return 0;
}

static CU_SuiteInfo suites[] = {
    { "store_faults_mpi", setup, teardown, NULL, NULL, tests },
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
    int all = 0;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    cr_coll_mpi_destroy(coll);
    MPI_Finalize();
    return all;
}
