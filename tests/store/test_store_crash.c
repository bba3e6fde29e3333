/*
 * test_store_crash.c - a writer killed with SIGKILL at random points while
 * writing epochs (and at each step of the index rename sequence) never
 * leaves the directory without a valid committed checkpoint once one was
 * committed, and a restore always gives exactly the contents of the last
 * committed epoch (or of the one after it, when the writer was killed
 * after its commit but before it could report it).
 *
 * The contents of epoch e are a pure function of e (replayed from epoch 1),
 * so the test knows what every epoch must restore to. Each writer first
 * restores from the directory (checking what it got, exactly as a restarted
 * job would), then continues writing epochs until it is killed; the same
 * directory is used across all iterations, as in a restart loop.
 */
#include "cutest.h"
#include "store_helpers.h"
#include "common/config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NPAGES 64
#define PSZ CR_PAGE_SIZE

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

/* Apply epoch k's changes to m (epoch 1 fills every page). */
static void apply_epoch(uint8_t *m, uint64_t k, uint8_t *dirty, uint8_t *zeroed)
{
    for (size_t p = 0; p < NPAGES; p++) {
        uint64_t h = mix(k * 1315423911ULL + p);
        dirty[p] = zeroed[p] = 0;
        if (k == 1 || h % 3 == 0) {
            for (size_t i = 0; i < PSZ; i += 8) {
                uint64_t v = mix(h + i);
                memcpy(m + p * PSZ + i, &v, 8);
            }
            dirty[p] = 1;
        } else if (h % 17 == 0) {
            memset(m + p * PSZ, 0, PSZ);
            zeroed[p] = 1;
        }
    }
}

static void state_of(uint64_t e, uint8_t *m)
{
    uint8_t d[NPAGES], z[NPAGES];
    memset(m, 0, NPAGES * PSZ);
    for (uint64_t k = 1; k <= e; k++)
        apply_epoch(m, k, d, z);
}

static char *dir;

static struct cr_store *open_store(void)
{
    struct cr_store *st = NULL;
    struct cr_store_opts o = { .full_every = 3, .keep = 2 };
    return cr_store_open(&st, dir, cr_coll_self(), &o) == 0 ? st : NULL;
}

/* The writer: restore, check, continue; reports each commit on fd. */
static void writer(int fd, const char *fault)
{
    static uint8_t m[NPAGES * PSZ], want[NPAGES * PSZ];
    uint8_t d[NPAGES], z[NPAGES];
    if (fault) {
        setenv("CRMPI_FAULT", fault, 1);
        cr_config_reload();
    }
    struct cr_store *st = open_store();
    if (!st)
        _exit(10);
    struct cr_restore_info info = { 0 };
    int rc = th_restore(st, 0, m, NPAGES, &info, NULL, 0);
    uint64_t e = 0;
    if (rc == 0) {
        e = info.epoch;
        state_of(e, want);
        if (memcmp(m, want, sizeof m))
            _exit(11);
    } else if (rc != CR_ENOCKPT) {
        _exit(12);
    } else {
        memset(m, 0, sizeof m);
    }
    struct th_mem mem = { m, NPAGES };
    for (;;) {
        apply_epoch(m, ++e, d, z);
        int full = cr_store_next_is_full(st);
        uint64_t got;
        if (th_write_epoch(st, &mem, full, d, z, 2, &got) < 0 || got != e)
            _exit(13);
        if (write(fd, &e, sizeof e) != sizeof e)
            _exit(14);
    }
}

struct outcome { int died_by_kill; uint64_t last_reported; int child_status; };

static struct outcome run_writer(const char *fault, unsigned delay_us)
{
    struct outcome o = { 0, 0, 0 };
    int p[2];
    CU_ASSERT_FATAL(pipe(p) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        writer(p[1], fault);
    }
    close(p[1]);
    int status;
    if (!fault) {
        usleep(delay_us);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    } else {
        /* The writer kills itself at the fault point; if it never gets
         * there, stop it after a while and fail (it was not killed by us
         * at a fault point: reported as not SIGKILLed below). */
        int waited = 0;
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (++waited > 2000) {
                kill(pid, SIGTERM);
                waitpid(pid, &status, 0);
                break;
            }
            usleep(10000);
        }
    }
    o.died_by_kill = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    o.child_status = status;
    uint64_t e;
    while (read(p[0], &e, sizeof e) == sizeof e)
        o.last_reported = e;
    close(p[0]);
    return o;
}

/* After each kill: the newest committed epoch restores exactly. */
static void check_dir(uint64_t reported_ever, uint64_t *restored)
{
    static uint8_t m[NPAGES * PSZ], want[NPAGES * PSZ];
    struct cr_store *st = open_store();
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    struct cr_restore_info info = { 0 };
    int rc = th_restore(st, 0, m, NPAGES, &info, NULL, 0);
    if (reported_ever) {
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_TRUE(info.epoch >= reported_ever);
    }
    if (rc == 0) {
        CU_ASSERT_TRUE(info.epoch >= *restored);
        state_of(info.epoch, want);
        CU_ASSERT_EQUAL(memcmp(m, want, sizeof m), 0);
        *restored = info.epoch;
    } else {
        CU_ASSERT_EQUAL(rc, CR_ENOCKPT);
    }
    cr_store_close(st);
}

static void test_sigkill_at_random_points_and_in_index_rename(void)
{
    dir = cutest_tmpdir("crash");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    const char *it = getenv("CRASH_ITERS");
    unsigned iters = it ? (unsigned)atoi(it) : 120;
    static const char *const faults[] = { "index-written", "index-synced", "index-renamed",
        "index-committed", "epoch-begun", "epoch-put", "epoch-finished" };
    uint64_t reported_ever = 0, restored = 0;
    unsigned kills = 0, fault_kills = 0, max_delay = 60000;
    for (unsigned i = 0; i < iters; i++) {
        const char *fault = i % 4 == 3 ? faults[(i / 4) % CR_ARRAY_SIZE(faults)] : NULL;
        unsigned delay = (unsigned)(cutest_rand() % max_delay);
        struct outcome o = run_writer(fault, delay);
        CU_ASSERT_TRUE(o.died_by_kill);
        if (!o.died_by_kill)
            fprintf(stderr, "writer exited with status 0x%x (iteration %u)\n", o.child_status, i);
        kills += o.died_by_kill;
        fault_kills += fault && o.died_by_kill;
        if (o.last_reported > reported_ever)
            reported_ever = o.last_reported;
        check_dir(reported_ever, &restored);
    }
    printf("\n  %u writers killed (%u at named fault points), "
           "newest committed epoch %llu ", kills, fault_kills, (unsigned long long)restored);
    CU_ASSERT_TRUE(restored > 3);     /* the kills did not all come too early */
    cutest_rmtree(dir);
    free(dir);
}

static int setup(void)
{
    setenv("CRMPI_ALIGN", "4K", 1);
    setenv("CRMPI_LOG", getenv("TLOG") ? getenv("TLOG") : "none", 1);
    return cr_config_reload() ? -1 : 0;
}

static CU_TestInfo tests[] = {
    CUTEST(test_sigkill_at_random_points_and_in_index_rename),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    { "store_crash", setup, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
