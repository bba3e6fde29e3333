/*
 * test_store_enospc.c - a real full filesystem: checkpoints of a growing
 * region go to a fresh 8 MiB tmpfs (mounted by the test; it needs root or
 * CAP_SYS_ADMIN and exits 77 - skipped - with the reason otherwise) until
 * one fails for lack of space. Then: the failure is an error code
 * (ENOSPC, or EIO when HDF5 hit it while creating the file), not a crash;
 * no part of the failed epoch is left on the filesystem; the last
 * committed checkpoint restores exactly, from a fresh open (a restart);
 * and a smaller checkpoint fits again and restores exactly.
 */
#include "cutest.h"
#include "store_helpers.h"
#include "common/config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define PSZ CR_PAGE_SIZE
#define MAXPAGES 2048            /* 8 MiB: never fits twice on the tmpfs */
#define STEP 128                 /* pages added per checkpoint */

static char *mnt, dir[4200];
static uint8_t cur[MAXPAGES * PSZ], out[MAXPAGES * PSZ], last[MAXPAGES * PSZ];

static struct cr_store *open_store(void)
{
    struct cr_store *st = NULL;
    struct cr_store_opts o = { .full_every = 1, .keep = 1, .align = 4096 };
    CU_ASSERT_EQUAL_FATAL(cr_store_open(&st, dir, cr_coll_self(), &o), 0);
    return st;
}

static void fill(size_t npages, uint64_t salt)
{
    for (size_t i = 0; i < npages * PSZ; i += 8) {
        uint64_t v = (salt * 0x100000001b3ULL + i) * 0x9e3779b97f4a7c15ULL;
        memcpy(cur + i, &v, 8);
    }
}

static int count_epoch_files(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d)))
        n += !strncmp(de->d_name, "epoch-", 6);
    if (d)
        closedir(d);
    return n;
}

static void test_fill_tmpfs_until_enospc_last_checkpoint_intact(void)
{
    struct cr_store *st = open_store();
    size_t npages = 0, last_pages = 0;
    uint64_t last_epoch = 0, got = 0;
    int rc = 0;
    for (int e = 1; e * STEP <= MAXPAGES; e++) {
        npages = (size_t)e * STEP;
        fill(npages, (uint64_t)e);
        struct th_mem m = { cur, npages };
        rc = th_write_epoch(st, &m, 1, NULL, NULL, 1, &got);
        if (rc < 0)
            break;
        last_epoch = got;
        last_pages = npages;
        memcpy(last, cur, npages * PSZ);
    }
    fprintf(stderr, "\n  tmpfs 8 MiB: %llu checkpoints committed (last %zu KiB), then %d (%s) ",
            (unsigned long long)last_epoch, last_pages * PSZ / 1024, rc, cr_strerror(rc));
    CU_ASSERT_TRUE_FATAL(rc == -ENOSPC || rc == -EIO);
    CU_ASSERT_TRUE_FATAL(last_epoch >= 1);
    CU_ASSERT_EQUAL(count_epoch_files(), 1);          /* the committed one only */
    cr_store_close(st);

    st = open_store();                                /* a restart */
    struct cr_restore_info info = { 0 };
    CU_ASSERT_EQUAL(th_restore(st, 0, out, last_pages, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, last_epoch);
    CU_ASSERT_EQUAL(info.region_size, last_pages * PSZ);
    CU_ASSERT_EQUAL(memcmp(out, last, last_pages * PSZ), 0);

    /* a smaller checkpoint fits next to the committed one */
    fill(STEP, 999);
    struct th_mem m = { cur, STEP };
    CU_ASSERT_EQUAL(th_write_epoch(st, &m, 1, NULL, NULL, 1, &got), 0);
    CU_ASSERT_EQUAL(got, last_epoch + 1);
    cr_store_close(st);
    st = open_store();
    CU_ASSERT_EQUAL(th_restore(st, 0, out, STEP, &info, NULL, 0), 0);
    CU_ASSERT_EQUAL(info.epoch, last_epoch + 1);
    CU_ASSERT_EQUAL(memcmp(out, cur, STEP * PSZ), 0);
    cr_store_close(st);
}

static CU_TestInfo tests[] = {
    CUTEST(test_fill_tmpfs_until_enospc_last_checkpoint_intact),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    { "store_enospc", NULL, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    setenv("CRMPI_LOG", getenv("TLOG") ? getenv("TLOG") : "none", 1);
    unsetenv("CRMPI_FAULT");
    cr_config_reload();
    mnt = cutest_tmpdir("tmpfs");
    if (!mnt)
        return 1;
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m,mode=0700") < 0) {
        fprintf(stderr, "SKIPPED: cannot mount a tmpfs on %s (%s): needs root or "
                "CAP_SYS_ADMIN\n", mnt, strerror(errno));
        rmdir(mnt);
        return 77;
    }
    snprintf(dir, sizeof dir, "%s/ckpt", mnt);
    int rc = cutest_main(argc, argv, suites);
    if (umount2(mnt, MNT_DETACH) < 0)
        perror("umount2");
    rmdir(mnt);
    free(mnt);
    return rc;
}
