/*
 * test_stats.c - unit tests of cr_checkpoint_stats() (src/exec/engine.c,
 * writer.c): each part of a checkpoint's cost is reported where it belongs.
 *
 * Linked with the shared libcr like an application (main on a persistent
 * stack). Needs an empty checkpoint directory (CRMPI_DIR); run in both
 * checkpoint modes (CRMPI_CKPT_MODE).
 */
#include "cutest.h"

#include <cr.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096
#define NPAGES 64

static int async_mode(void)
{
    const char *m = getenv("CRMPI_CKPT_MODE");
    return !m || strcmp(m, "sync") != 0;
}

static void test_misuse(void)
{
    struct cr_checkpoint_stats s;
    CU_ASSERT_EQUAL(cr_checkpoint_stats(NULL, sizeof s), -EINVAL);
    CU_ASSERT_EQUAL(cr_checkpoint_stats(&s, 0), -EINVAL);
}

/* A struct of an older caller (smaller) gets its prefix and nothing more. */
static void test_older_caller(void)
{
    union {
        struct cr_checkpoint_stats s;
        uint8_t b[sizeof(struct cr_checkpoint_stats) + 16];
    } u;
    memset(&u, 0xA5, sizeof u);
    size_t old = offsetof(struct cr_checkpoint_stats, last_rearm_seconds);
    CU_ASSERT_EQUAL(cr_checkpoint_stats(&u.s, old), 0);
    size_t untouched = 0;
    for (size_t i = old; i < sizeof u.b; i++)
        untouched += u.b[i] == 0xA5;
    CU_ASSERT_EQUAL(untouched, sizeof u.b - old);
}

/* Two checkpoints with pages written between them, then a wait. In async
 * mode the second call commits the first epoch without writing its index:
 * the writer's job for the second publishes it, then writes the second
 * epoch. The stats of the second commit must show the index publication
 * and the epoch write apart, both measured. */
static void test_writer_parts(void)
{
    uint8_t *a = crmalloc(NPAGES * PAGE);
    CU_ASSERT_FATAL(a != NULL);
    memset(a, 1, NPAGES * PAGE);
    struct cr_checkpoint_stats s0, s;
    CU_ASSERT_EQUAL_FATAL(cr_checkpoint_stats(&s0, sizeof s0), 0);
    CU_ASSERT_EQUAL_FATAL(cr_checkpoint(), CR_CHECKPOINTED);
    for (int k = 0; k < NPAGES; k += 2)
        a[(size_t)k * PAGE] = 2;
    CU_ASSERT_EQUAL_FATAL(cr_checkpoint(), CR_CHECKPOINTED);
    CU_ASSERT_EQUAL_FATAL(cr_checkpoint_stats(&s, sizeof s), 0);
    CU_ASSERT(s.last_bytes >= (NPAGES / 2) * PAGE);
    CU_ASSERT_EQUAL(s.last_full, 0);
    CU_ASSERT_EQUAL(s.last_async, async_mode());
    /* the scan for written pages is part of the call */
    CU_ASSERT(s.last_collect_seconds > 0);
    CU_ASSERT(s.last_collect_seconds <= s.last_seconds);
    CU_ASSERT_EQUAL(cr_checkpoint_wait(), 0);
    CU_ASSERT_EQUAL_FATAL(cr_checkpoint_stats(&s, sizeof s), 0);
    CU_ASSERT_EQUAL(s.checkpoints, s0.checkpoints + 2);
    CU_ASSERT_EQUAL(s.failures, s0.failures);
    CU_ASSERT_EQUAL(s.writing, 0);
    CU_ASSERT(s.last_write_seconds > 0);        /* puts, tables, fsync */
    CU_ASSERT(s.last_rearm_seconds >= 0);
    if (async_mode()) {
        CU_ASSERT(s.last_index_seconds > 0);    /* two fsyncs and a rename */
    } else {
        CU_ASSERT_EQUAL(s.last_index_seconds, 0);  /* written by each commit */
    }
    CU_ASSERT(s.total_write_seconds >= s.last_write_seconds);
    crfree(a);
}

/* The job of an asynchronous checkpoint waits until the call has returned
 * (writer.c), and then runs without anyone waiting for it: `writing` drops
 * on its own. (Without the release at the end of cr_checkpoint() it never
 * does: checked.) */
static void test_writer_runs_after_the_call(void)
{
    uint8_t *a = crmalloc(NPAGES * PAGE);
    CU_ASSERT_FATAL(a != NULL);
    memset(a, 3, NPAGES * PAGE);
    CU_ASSERT_EQUAL_FATAL(cr_checkpoint(), CR_CHECKPOINTED);
    struct cr_checkpoint_stats s;
    int i;
    for (i = 0; i < 3000; i++) {       /* a liveness bound (30 s), not a timing */
        CU_ASSERT_EQUAL_FATAL(cr_checkpoint_stats(&s, sizeof s), 0);
        if (!s.writing)
            break;
        usleep(10000);
    }
    CU_ASSERT_EQUAL(s.writing, 0);
    CU_ASSERT_EQUAL(cr_checkpoint_wait(), 0);
    crfree(a);
}

static CU_TestInfo tests[] = {
    CUTEST(test_misuse),
    CUTEST(test_older_caller),
    CUTEST(test_writer_parts),
    CUTEST(test_writer_runs_after_the_call),
    CU_TEST_INFO_NULL,
};
static CU_SuiteInfo suites[] = {
    { "stats", NULL, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv) { return cutest_main(argc, argv, suites); }
