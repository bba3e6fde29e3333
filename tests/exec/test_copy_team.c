/*
 * test_copy_team.c - unit tests of the staging copy team (src/exec/
 * copy_team.c): whatever the team's size, the staging buffer must hold the
 * non-zero extents' bytes back to back, exactly - extents of one page and
 * of many, extents cut by the team's chunk boundaries, zero extents in
 * between - job after job (a helper that joined a finished job would write
 * stale bytes into the next one's buffer), and in a fork() child, which
 * has no helpers until it starts its own. The automatic size follows the
 * PUs the process has to itself. Checkpoints that use the team are
 * covered end to end by the kill tests run with CRMPI_STAGE_THREADS=2.
 */
#include "cutest.h"
#include "exec/exec.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "region/region.h"

#define PG 4096u
#define SRC_PAGES 4096u          /* 16 MiB of source */

static uint8_t *src;

static void set_team(const char *n)
{
    cr_copy_team_stop();         /* joins the helpers and forgets the size */
    CU_ASSERT_EQUAL_FATAL(setenv("CRMPI_STAGE_THREADS", n, 1), 0);
    CU_ASSERT_EQUAL_FATAL(cr_config_reload(), 0);
}

/* Random extents over the source, in address order: mostly single pages,
 * some runs of up to 300 pages (longer than a chunk), some zero. */
static size_t make_extents(struct cr_extent *x, size_t max, unsigned seed, size_t *bytes)
{
    srand(seed);
    size_t n = 0, page = (size_t)(rand() % 8);
    *bytes = 0;
    while (n < max && page < SRC_PAGES) {
        int r = rand() % 100;
        size_t len = r < 80 ? 1 : r < 95 ? 1 + (size_t)(rand() % 40) : 1 + (size_t)(rand() % 300);
        if (page + len > SRC_PAGES)
            len = SRC_PAGES - page;
        unsigned flags = rand() % 10 == 0 ? CR_EXTENT_ZERO : 0;
        x[n++] = (struct cr_extent){ .addr = (uintptr_t)src + page * PG, .len = len * PG,
                                     .flags = flags };
        if (!flags)
            *bytes += len * PG;
        page += len + (size_t)(rand() % 6);
    }
    return n;
}

static void check_copy(const struct cr_extent *x, size_t n, const uint8_t *dst)
{
    size_t off = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (x[i].flags & CR_EXTENT_ZERO)
            continue;
        bad += memcmp(dst + off, (const void *)x[i].addr, x[i].len) != 0;
        off += x[i].len;
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static uint8_t *map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(p != MAP_FAILED);
    return p;
}

static void copy_jobs(const char *team, int jobs)
{
    set_team(team);
    enum { MAXX = 4096 };
    struct cr_extent *x = malloc(MAXX * sizeof *x);
    uint8_t *dst[2] = { map((size_t)SRC_PAGES * PG), map((size_t)SRC_PAGES * PG) };
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    for (int j = 0; j < jobs; j++) {
        size_t bytes, n = make_extents(x, MAXX, 1000u + (unsigned)j, &bytes);
        /* New source bytes every job: stale ones would show. */
        for (size_t p = 0; p < SRC_PAGES; p += 1 + (size_t)(j % 3))
            memset(src + p * PG, (int)(j * 7 + p), 64);
        memset(dst[j & 1], 0xee, bytes);
        cr_copy_team_stage(dst[j & 1], x, n);
        check_copy(x, n, dst[j & 1]);
    }
    munmap(dst[0], (size_t)SRC_PAGES * PG);
    munmap(dst[1], (size_t)SRC_PAGES * PG);
    free(x);
}

static void test_alone(void) { copy_jobs("1", 50); }
static void test_two(void) { copy_jobs("2", 300); }
static void test_three(void) { copy_jobs("3", 300); }
/* More threads than this machine's PUs: helpers that get no CPU take no
 * chunk, and the copy is still whole. */
static void test_oversubscribed(void) { copy_jobs("9", 100); }

/* Exactly one chunk boundary inside one long extent, and an extent that
 * ends on a boundary. */
static void test_chunk_edges(void)
{
    set_team("2");
    for (size_t pages = 63; pages <= 65; pages++) {
        struct cr_extent x[3] = {
            { (uintptr_t)src, pages * PG, 0 },
            { (uintptr_t)src + 100 * PG, PG, CR_EXTENT_ZERO },
            { (uintptr_t)src + 200 * PG, 130 * PG, 0 },
        };
        for (size_t p = 0; p < 330; p++)
            memset(src + p * PG, (int)(p * 13 + pages), PG);
        uint8_t *dst = map(400 * PG);
        cr_copy_team_stage(dst, x, 3);
        check_copy(x, 3, dst);
        munmap(dst, 400 * PG);
    }
}

static void test_nothing_to_copy(void)
{
    set_team("2");
    struct cr_extent z = { (uintptr_t)src, 8 * PG, CR_EXTENT_ZERO };
    cr_copy_team_stage(NULL, &z, 1);
    cr_copy_team_stage(NULL, NULL, 0);
    CU_PASS("no bytes, no access");
}

/* A fork() child has no helpers; it starts its own and copies correctly. */
static void test_fork_child(void)
{
#ifdef __SANITIZE_THREAD__
    /* ThreadSanitizer cannot start threads in the child of a multithreaded
     * fork() (it exits with 66): not testable there. */
    CU_PASS("fork child: not under ThreadSanitizer");
    return;
#endif
    copy_jobs("2", 3);           /* the parent's helpers are running */
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        struct cr_extent x[4096];
        size_t bytes, n = make_extents(x, 4096, 77, &bytes);
        uint8_t *dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
        if (dst == MAP_FAILED)
            _exit(3);
        cr_copy_team_stage(dst, x, n);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            if (x[i].flags & CR_EXTENT_ZERO)
                continue;
            if (memcmp(dst + off, (const void *)x[i].addr, x[i].len))
                _exit(4);
            off += x[i].len;
        }
        _exit(cr_copy_team_size() == 2 ? 0 : 5);
    }
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status));
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
}

/* The automatic size: the PUs of the process's binding, shared among the
 * node's ranks only when it is not bound, at most 4. */
static void test_auto_size(void)
{
    cpu_set_t all, one;
    CU_ASSERT_EQUAL_FATAL(sched_getaffinity(0, sizeof all, &all), 0);
    int pus = CPU_COUNT(&all);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsetenv("MPI_LOCALNRANKS");
    unsetenv("SLURM_STEP_TASKS_PER_NODE");
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "1", 1);
    set_team("0");
    int expect = pus < 4 ? pus : 4;
    CU_ASSERT_EQUAL(cr_copy_team_size(), (unsigned)expect);
    if (pus == online) {         /* unbound: shared among the node's ranks */
        setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "1000", 1);
        set_team("0");
        CU_ASSERT_EQUAL(cr_copy_team_size(), 1);
    }
    /* Bound to one PU: alone, however few ranks share the node. */
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all)) {
            CPU_SET(c, &one);
            break;
        }
    CU_ASSERT_EQUAL_FATAL(sched_setaffinity(0, sizeof one, &one), 0);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "1", 1);
    set_team("0");
    CU_ASSERT_EQUAL(cr_copy_team_size(), 1);
    CU_ASSERT_EQUAL(sched_setaffinity(0, sizeof all, &all), 0);
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
}

static int setup(void)
{
    src = mmap(NULL, (size_t)SRC_PAGES * PG, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return src == MAP_FAILED;
}

static int teardown(void)
{
    cr_copy_team_stop();
    munmap(src, (size_t)SRC_PAGES * PG);
    return 0;
}

static CU_TestInfo tests[] = {
    { "a team of one copies every extent", test_alone },
    { "a team of two, 300 jobs in a row", test_two },
    { "a team of three, 300 jobs in a row", test_three },
    { "more threads than PUs still copy everything", test_oversubscribed },
    { "chunk boundaries inside and at the end of extents", test_chunk_edges },
    { "no bytes to copy", test_nothing_to_copy },
    { "a fork child starts its own helpers", test_fork_child },
    { "automatic size follows the PUs the process owns", test_auto_size },
    CU_TEST_INFO_NULL,
};
static CU_SuiteInfo suites[] = {
    { "copy_team", setup, teardown, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv) { return cutest_main(argc, argv, suites); }
