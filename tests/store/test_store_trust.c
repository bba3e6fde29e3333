/*
 * test_store_trust.c - the trust model of checkpoint files (src/store/trust.c).
 *
 * Created directories are 0700 and files 0600. Opening a directory, or
 * restoring from files, owned by another user or writable by group or
 * others is refused with CR_EPERM_TRUST and a message naming the path and
 * what is wrong; an untrusted newest epoch makes restore fall back to the
 * newest trusted one. A symlink planted by another user is not followed;
 * directory names with control characters (from CRMPI_DIR too) are
 * refused. Ownership cases chown to nobody (65534) and need root: run as
 * another user they are reported as skipped.
 */
#include "cutest.h"
#include "store_helpers.h"
#include "common/config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPAGES 16
#define PSZ CR_PAGE_SIZE
#define NOBODY 65534

static char *top, dir[4200], logpath[4200];
static uint8_t cur[NPAGES * PSZ], out[NPAGES * PSZ], snap[3][NPAGES * PSZ];
static struct th_mem mem = { cur, NPAGES };

static int setup(void)
{
    setenv("CRMPI_LOG", "error", 1);
    unsetenv("CRMPI_FAULT");
    cr_config_reload();
    top = cutest_tmpdir("trust");
    return top ? 0 : -1;
}

static int teardown(void)
{
    cutest_rmtree(top);
    free(top);
    return 0;
}

/* stderr to a file while fn runs, so the message can be checked */
static int saved_err = -1;
static void capture(void)
{
    snprintf(logpath, sizeof logpath, "%s/log", top);
    fflush(stderr);
    saved_err = dup(2);
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
}

static int logged(const char *a, const char *b)
{
    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    static char buf[65536];
    FILE *f = fopen(logpath, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    int ok = strstr(buf, a) && (!b || strstr(buf, b));
    if (!ok)
        fprintf(stderr, "\n  expected log with \"%s\" / \"%s\", got:\n%s", a, b ? b : "", buf);
    return ok;
}

static int open_store(const char *d, struct cr_store **st)
{
    struct cr_store_opts o = { .full_every = 8, .keep = 4, .align = 4096 };
    return cr_store_open(st, d, cr_coll_self(), &o);
}

/* dir = top/name/ckpt with epochs 1, 2 */
static void make_dir(const char *name)
{
    snprintf(dir, sizeof dir, "%s/%s/ckpt", top, name);
    struct cr_store *st;
    CU_ASSERT_EQUAL_FATAL(open_store(dir, &st), 0);
    uint8_t d[NPAGES];
    for (int e = 1; e <= 2; e++) {
        for (size_t p = 0; p < NPAGES; p++) {
            d[p] = e == 1 || p % 2;
            if (d[p])
                memset(cur + p * PSZ, e * 16 + (int)p, PSZ);
        }
        CU_ASSERT_EQUAL_FATAL(th_write_epoch(st, &mem, e == 1, d, NULL, 1, NULL), 0);
        memcpy(snap[e], cur, sizeof cur);
    }
    cr_store_close(st);
}

static char *file(const char *name)
{
    static char p[4300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static char *epoch(int e)
{
    static char n[64];
    snprintf(n, sizeof n, CR_EPOCH_FMT, (unsigned long long)e);
    return file(n);
}

static unsigned mode_of(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (unsigned)(sb.st_mode & 07777) : 0xffff;
}

static int restore(uint64_t *ep)
{
    struct cr_store *st;
    int rc = open_store(dir, &st);
    if (rc < 0)
        return rc;
    struct cr_restore_info info = { 0 };
    rc = th_restore(st, 0, out, NPAGES, &info, NULL, 0);
    *ep = info.epoch;
    cr_store_close(st);
    return rc;
}

static void test_created_directories_0700_and_files_0600(void)
{
    make_dir("modes");
    char parent[4300];
    snprintf(parent, sizeof parent, "%s/modes", top);
    CU_ASSERT_EQUAL(mode_of(parent), 0700);
    CU_ASSERT_EQUAL(mode_of(dir), 0700);
    CU_ASSERT_EQUAL(mode_of(file("index")), 0600);
    CU_ASSERT_EQUAL(mode_of(epoch(1)), 0600);
    CU_ASSERT_EQUAL(mode_of(epoch(2)), 0600);
    uint64_t e;
    CU_ASSERT_EQUAL(restore(&e), 0);
    CU_ASSERT_EQUAL(e, 2);
    CU_ASSERT_EQUAL(memcmp(out, snap[2], sizeof out), 0);
}

static void test_directory_writable_by_others_or_group_refused(void)
{
    make_dir("dirmode");
    struct cr_store *st;
    unsigned modes[] = { 0777, 0770, 0702 };
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(chmod(dir, modes[i]), 0);
        capture();
        CU_ASSERT_EQUAL(open_store(dir, &st), CR_EPERM_TRUST);
        CU_ASSERT_TRUE(logged(dir, "writable by"));
    }
    CU_ASSERT_EQUAL(chmod(dir, 0755), 0);         /* readable by others is fine */
    CU_ASSERT_EQUAL_FATAL(open_store(dir, &st), 0);
    cr_store_close(st);
}

static void test_index_writable_by_others_refused(void)
{
    make_dir("ixmode");
    struct cr_store *st;
    CU_ASSERT_EQUAL_FATAL(chmod(file("index"), 0666), 0);
    capture();
    CU_ASSERT_EQUAL(open_store(dir, &st), CR_EPERM_TRUST);
    CU_ASSERT_TRUE(logged("/index", "writable by others"));
}

static void test_group_writable_newest_epoch_falls_back(void)
{
    make_dir("epmode");
    CU_ASSERT_EQUAL_FATAL(chmod(epoch(2), 0620), 0);
    uint64_t e;
    capture();
    CU_ASSERT_EQUAL(restore(&e), 0);
    CU_ASSERT_TRUE(logged(epoch(2), "writable by its group"));
    CU_ASSERT_EQUAL(e, 1);
    CU_ASSERT_EQUAL(memcmp(out, snap[1], sizeof out), 0);
    CU_ASSERT_EQUAL_FATAL(chmod(epoch(1), 0606), 0);
    CU_ASSERT_EQUAL(restore(&e), CR_EPERM_TRUST);
}

static int root(void)
{
    if (geteuid() == 0)
        return 1;
    fprintf(stderr, "SKIPPED (needs root to chown to nobody) ");
    return 0;
}

static void test_directory_owned_by_another_user_refused(void)
{
    if (!root())
        return;
    make_dir("dirown");
    CU_ASSERT_EQUAL_FATAL(chown(dir, NOBODY, NOBODY), 0);
    struct cr_store *st;
    capture();
    CU_ASSERT_EQUAL(open_store(dir, &st), CR_EPERM_TRUST);
    CU_ASSERT_TRUE(logged(dir, "owned by uid 65534"));
}

static void test_files_owned_by_another_user_refused(void)
{
    if (!root())
        return;
    make_dir("fileown");
    struct cr_store *st;
    CU_ASSERT_EQUAL_FATAL(chown(file("index"), NOBODY, NOBODY), 0);
    capture();
    CU_ASSERT_EQUAL(open_store(dir, &st), CR_EPERM_TRUST);
    CU_ASSERT_TRUE(logged("/index", "owned by uid 65534"));
    CU_ASSERT_EQUAL_FATAL(chown(file("index"), 0, 0), 0);
    /* the newest epoch planted by another user: the older one is used */
    CU_ASSERT_EQUAL_FATAL(chown(epoch(2), NOBODY, NOBODY), 0);
    uint64_t e;
    capture();
    CU_ASSERT_EQUAL(restore(&e), 0);
    CU_ASSERT_TRUE(logged(epoch(2), "owned by uid 65534"));
    CU_ASSERT_EQUAL(e, 1);
    CU_ASSERT_EQUAL(memcmp(out, snap[1], sizeof out), 0);
    CU_ASSERT_EQUAL_FATAL(chown(epoch(1), NOBODY, NOBODY), 0);
    CU_ASSERT_EQUAL(restore(&e), CR_EPERM_TRUST);
}

static void test_symlink_planted_by_another_user_not_followed(void)
{
    make_dir("link");
    char link[4300];
    snprintf(link, sizeof link, "%s/link/alias", top);
    CU_ASSERT_EQUAL_FATAL(symlink(dir, link), 0);
    struct cr_store *st;
    CU_ASSERT_EQUAL_FATAL(open_store(link, &st), 0);     /* our own link: fine */
    cr_store_close(st);
    if (!root())
        return;
    CU_ASSERT_EQUAL_FATAL(lchown(link, NOBODY, NOBODY), 0);
    capture();
    CU_ASSERT_EQUAL(open_store(link, &st), CR_EPERM_TRUST);
    CU_ASSERT_TRUE(logged(link, "symbolic link owned by uid 65534"));
}

static void test_epoch_file_that_is_not_a_regular_file_refused(void)
{
    make_dir("notreg");
    CU_ASSERT_EQUAL_FATAL(unlink(epoch(2)), 0);
    CU_ASSERT_EQUAL_FATAL(mkdir(epoch(2), 0700), 0);
    uint64_t e;
    CU_ASSERT_EQUAL(restore(&e), 0);
    CU_ASSERT_EQUAL(e, 1);
}

static void test_directory_name_with_control_character_refused(void)
{
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/evil\nname", top);
    struct cr_store *st;
    CU_ASSERT_EQUAL(open_store(bad, &st), -EINVAL);
    /* the same through CRMPI_DIR */
    setenv("CRMPI_DIR", bad, 1);
    cr_config_reload();
    CU_ASSERT_EQUAL(open_store(NULL, &st), -EINVAL);
    unsetenv("CRMPI_DIR");
    cr_config_reload();
}

static CU_TestInfo tests[] = {
    CUTEST(test_created_directories_0700_and_files_0600),
    CUTEST(test_directory_writable_by_others_or_group_refused),
    CUTEST(test_index_writable_by_others_refused),
    CUTEST(test_group_writable_newest_epoch_falls_back),
    CUTEST(test_directory_owned_by_another_user_refused),
    CUTEST(test_files_owned_by_another_user_refused),
    CUTEST(test_symlink_planted_by_another_user_not_followed),
    CUTEST(test_epoch_file_that_is_not_a_regular_file_refused),
    CUTEST(test_directory_name_with_control_character_refused),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    { "store_trust", setup, teardown, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
