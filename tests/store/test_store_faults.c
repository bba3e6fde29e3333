/*
 * test_store_faults.c - storage failures while writing a checkpoint.
 *
 * With CRMPI_FAULT (common/fault.h) the Nth pwrite, the fsync of the epoch
 * file, the creation of the HDF5 file, and each write / fsync / rename of
 * the index commit fail with EIO or ENOSPC, or the writer is killed there.
 * Every case starts from a directory with two committed epochs and checks:
 * the checkpoint returns the injected error (EIO when it hit inside HDF5,
 * which does not report errno); the abandoned epoch file is gone; the
 * previous checkpoint restores exactly, from the same handle and from a
 * fresh open of the directory (a restart); and the next checkpoint, with
 * the fault cleared, succeeds (full) and restores exactly.
 */
#include "cutest.h"
#include "store_helpers.h"
#include "common/config.h"
#include "common/fault.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPAGES 40
#define PSZ CR_PAGE_SIZE

static char *dir;
static uint8_t cur[NPAGES * PSZ], out[NPAGES * PSZ], snap2[NPAGES * PSZ];
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

static int setup(void)
{
    setenv("CRMPI_LOG", getenv("TLOG") ? getenv("TLOG") : "none", 1);
    set_fault(NULL);
    return 0;
}

static void change(uint8_t *dirty, unsigned salt)
{
    for (size_t p = 0; p < NPAGES; p++) {
        dirty[p] = (p + salt) % 3 == 0;
        if (dirty[p])
            for (size_t i = 0; i < PSZ; i++)
                cur[p * PSZ + i] = (uint8_t)(i * 31 + p * 7 + salt);
    }
}

static struct cr_store *open_store(void)
{
    struct cr_store *st = NULL;
    struct cr_store_opts o = { .full_every = 8, .keep = 4, .align = 4096 };
    CU_ASSERT_EQUAL_FATAL(cr_store_open(&st, dir, cr_coll_self(), &o), 0);
    return st;
}

/* Fresh directory with epochs 1 (full) and 2; contents of 2 in snap2. */
static struct cr_store *two_epochs(void)
{
    uint8_t d[NPAGES];
    cutest_rmtree(dir);
    free(dir);
    dir = cutest_tmpdir("faults");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    memset(cur, 0, sizeof cur);
    struct cr_store *st = open_store();
    change(d, 1);
    CU_ASSERT_EQUAL_FATAL(th_write_epoch(st, &mem, 1, NULL, NULL, 2, NULL), 0);
    change(d, 2);
    CU_ASSERT_EQUAL_FATAL(th_write_epoch(st, &mem, 0, d, NULL, 2, NULL), 0);
    memcpy(snap2, cur, sizeof cur);
    return st;
}

static void expect_restores(struct cr_store *st, uint64_t epoch, const uint8_t *want)
{
    struct cr_restore_info info = { 0 };
    CU_ASSERT_EQUAL(th_restore(st, 0, out, NPAGES, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, epoch);
    CU_ASSERT_EQUAL(memcmp(out, want, sizeof out), 0);
}

static int epoch_file_exists(uint64_t e)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/" CR_EPOCH_FMT, dir, (unsigned long long)e);
    return access(p, F_OK) == 0;
}

/* One failing checkpoint, then the checks of the header comment. */
static void fail_once_next(const char *spec, int want_rc, uint64_t next)
{
    uint8_t d[NPAGES];
    struct cr_store *st = two_epochs();
    change(d, 3);
    set_fault(spec);
    uint64_t got = 0;
    int rc = th_write_epoch(st, &mem, 0, d, NULL, 2, &got);
    set_fault(NULL);
    if (rc != want_rc)
        fprintf(stderr, "\n  CRMPI_FAULT=%s: checkpoint returned %d (%s), expected %d ", spec,
                rc, cr_strerror(rc), want_rc);
    CU_ASSERT_EQUAL(rc, want_rc);
    CU_ASSERT_FALSE(epoch_file_exists(3));
    CU_ASSERT_TRUE(cr_store_next_is_full(st));
    expect_restores(st, 2, snap2);
    cr_store_close(st);
    st = open_store();                        /* as a restarted job */
    expect_restores(st, 2, snap2);
    /* the job goes on: the next checkpoint succeeds */
    memcpy(cur, snap2, sizeof cur);
    change(d, 4);
    CU_ASSERT_EQUAL(th_write_epoch(st, &mem, cr_store_next_is_full(st), d, NULL, 2, &got), 0);
    CU_ASSERT_EQUAL(got, next);
    const struct cr_index_entry *e = cr_index_find(&st->ix, got);
    CU_ASSERT_TRUE(e && e->parent == 2);      /* continues from what was restored */
    cr_store_close(st);
    st = open_store();
    expect_restores(st, next, cur);
    cr_store_close(st);
}

static void fail_once(const char *spec, int want_rc)
{
    fail_once_next(spec, want_rc, 3);
}

static void test_hdf5_file_creation_fails(void)
{
    fail_once("epoch-create:eio", -EIO);
    fail_once("epoch-create:enospc", -EIO);     /* HDF5 does not pass errno on */
}

static void test_first_page_data_pwrite_fails(void)
{
    fail_once("store-pwrite:eio", -EIO);
    fail_once("store-pwrite@1:enospc", -ENOSPC);
}

static void test_every_pwrite_of_an_epoch_fails_in_turn(void)
{
    /* count the pwrites of one epoch like the failing one, then fail each */
    uint8_t d[NPAGES];
    struct cr_store *st = two_epochs();
    change(d, 3);
    set_fault("store-pwrite@1000000:eio");
    CU_ASSERT_EQUAL(th_write_epoch(st, &mem, 0, d, NULL, 2, NULL), 0);
    unsigned long n = cr_fault_hits("store-pwrite");
    set_fault(NULL);
    cr_store_close(st);
    CU_ASSERT(n >= 4);       /* extents, index rows, threads, identity, header, rank row */
    for (unsigned long k = 1; k <= n; k++) {
        char spec[64];
        snprintf(spec, sizeof spec, "store-pwrite@%lu:%s", k, k % 2 ? "eio" : "enospc");
        fail_once(spec, k % 2 ? -EIO : -ENOSPC);
    }
}

static void test_epoch_fsync_fails(void)
{
    fail_once("epoch-fsync:eio", -EIO);
    fail_once("epoch-fsync:enospc", -ENOSPC);
}

static void test_index_write_fails(void)
{
    fail_once("index-write:eio", -EIO);
    fail_once("index-write:enospc", -ENOSPC);
}

static void test_index_fsync_fails(void) { fail_once("index-fsync:eio", -EIO); }
static void test_index_rename_fails(void) { fail_once("index-rename:enospc", -ENOSPC); }

/* The rename reached the directory but its fsync failed: the checkpoint is
 * reported failed, so it must not be restored later either. */
static void test_directory_fsync_after_rename_fails(void)
{
    /* the index on disk names 3 (file removed): a restart falls back to 2
     * and the next epoch is numbered 4 */
    fail_once_next("dir-fsync:eio", -EIO, 4);
}

static void test_bad_fault_spec_is_reported_and_ignored(void)
{
    uint8_t d[NPAGES];
    struct cr_store *st = two_epochs();
    change(d, 3);
    set_fault("store-pwrite@0:eio,index-write:explode");
    CU_ASSERT_EQUAL(th_write_epoch(st, &mem, 0, d, NULL, 2, NULL), 0);
    set_fault(NULL);
    cr_store_close(st);
}

/* The grammar: @N picks the Nth hit, #R the launcher's rank, actions. */
static void test_fault_spec_grammar_counts_and_ranks(void)
{
    const char *saved = getenv("OMPI_COMM_WORLD_RANK");
    char *keep = saved ? strdup(saved) : NULL;
    setenv("OMPI_COMM_WORLD_RANK", "3", 1);
    set_fault("p@2:eio,q#1:enospc,r@3#3:enospc,s:eio");
    CU_ASSERT_EQUAL(cr_fault("p"), 0);
    CU_ASSERT_EQUAL(cr_fault("p"), -EIO);
    CU_ASSERT_EQUAL(cr_fault("p"), 0);                   /* fires once */
    CU_ASSERT_EQUAL(cr_fault_hits("p"), 3);
    CU_ASSERT_EQUAL(cr_fault("q"), 0);                   /* rank 1 only */
    CU_ASSERT_EQUAL(cr_fault("r"), 0);
    CU_ASSERT_EQUAL(cr_fault("r"), 0);
    CU_ASSERT_EQUAL(cr_fault("r"), -ENOSPC);
    CU_ASSERT_EQUAL(cr_fault("unnamed"), 0);
    errno = 0;
    CU_ASSERT_EQUAL(cr_fault_errno("s"), 1);
    CU_ASSERT_EQUAL(errno, EIO);
    CU_ASSERT_EQUAL(cr_fault_errno("s"), 0);
    cr_fault_reset();                                    /* counts start again */
    CU_ASSERT_EQUAL(cr_fault_errno("s"), 1);
    set_fault(NULL);
    CU_ASSERT_EQUAL(cr_fault("p"), 0);
    if (keep)
        setenv("OMPI_COMM_WORLD_RANK", keep, 1);
    else
        unsetenv("OMPI_COMM_WORLD_RANK");
    free(keep);
}

/* kill at the Nth pwrite (the @N form of the crash test's points) */
static void test_sigkill_at_the_nth_pwrite_keeps_previous(void)
{
    for (int k = 1; k <= 6; k++) {
        uint8_t d[NPAGES];
        struct cr_store *st = two_epochs();
        change(d, 3);
        fflush(NULL);
        pid_t pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
            char spec[64];
            snprintf(spec, sizeof spec, "store-pwrite@%d", k);
            set_fault(spec);
            (void)th_write_epoch(st, &mem, 0, d, NULL, 2, NULL);
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        cr_store_close(st);
        st = open_store();
        expect_restores(st, 2, snap2);
        cr_store_close(st);
    }
}

static CU_TestInfo tests[] = {
    CUTEST(test_hdf5_file_creation_fails),
    CUTEST(test_first_page_data_pwrite_fails),
    CUTEST(test_every_pwrite_of_an_epoch_fails_in_turn),
    CUTEST(test_epoch_fsync_fails),
    CUTEST(test_index_write_fails),
    CUTEST(test_index_fsync_fails),
    CUTEST(test_index_rename_fails),
    CUTEST(test_directory_fsync_after_rename_fails),
    CUTEST(test_bad_fault_spec_is_reported_and_ignored),
    CUTEST(test_fault_spec_grammar_counts_and_ranks),
    CUTEST(test_sigkill_at_the_nth_pwrite_keeps_previous),
    CU_TEST_INFO_NULL,
};

static int teardown(void)
{
    cutest_rmtree(dir);
    free(dir);
    return 0;
}

static CU_SuiteInfo suites[] = {
    { "store_faults", setup, teardown, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
