/*
 * test_rollback.c - unit tests of cr_rollback() (src/exec/rollback.c).
 *
 * Linked with the shared libcr like an application: main, hence every test,
 * runs on a persistent stack, and malloc() serves the persistent heap
 * (transparent mode). CUnit keeps its own records in that heap too, so no
 * assertion runs between a checkpoint and the rollback that undoes it: each
 * test records what it saw in memory outside the region (mmap'd, which a
 * rollback does not touch) and asserts after the rollback.
 *
 * Needs an empty checkpoint directory (CRMPI_DIR): the first test checks
 * that a rollback before any checkpoint is refused.
 */
#include "cutest.h"

#include <cr.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096

/* Outside the region: survives rollbacks. */
static struct outside {
    int rc[16];
    int n;
    int passes;
    int thread_rc[8];
    int thread_ok[8];
    int thread_runs[8];
    volatile int go;             /* main is about to roll back */
} *O;

static uint8_t g_bytes[3 * PAGE];         /* globals: put back by transparent mode */
static const char *app_path;

static void outside_reset(void)
{
    memset(O, 0, sizeof *O);
}

/* ---- misuse -------------------------------------------------------------------- */

static void *plain_thread(void *p)
{
    *(int *)p = cr_rollback();
    return NULL;
}

static void test_refused_before_any_checkpoint(void)
{
    CU_ASSERT_EQUAL(cr_rollback(), CR_ENOCKPT);
    int rc = 0;
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, plain_thread, &rc), 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(rc, CR_ESTATE);
}

/* ---- heap, globals, locals --------------------------------------------------------- */

static uint8_t pat(size_t i, int salt) { return (uint8_t)(i * 131 + (size_t)salt * 7 + (i >> 12)); }

static void test_heap_globals_locals_back(void)
{
    outside_reset();
    const size_t n = 256 * PAGE;
    uint8_t *a = crmalloc(n), *b = malloc(n);
    CU_ASSERT_FATAL(a && b);
    for (size_t i = 0; i < n; i++) {
        a[i] = pat(i, 1);
        b[i] = pat(i, 2);
    }
    for (size_t i = 0; i < sizeof g_bytes; i++)
        g_bytes[i] = pat(i, 3);
    uint8_t *c = malloc(10 * PAGE);        /* freed after the checkpoint */
    CU_ASSERT_FATAL(c != NULL);
    memset(c, 0x3C, 10 * PAGE);
    long local = 12345;
    struct cr_checkpoint_stats before, after;
    CU_ASSERT_EQUAL(cr_checkpoint_stats(&before, sizeof before), 0);
    int rc = cr_checkpoint();
    O->rc[O->n++] = rc;
    if (rc == CR_CHECKPOINTED) {
        for (int k = 0; k < 8; k++)               /* k pages of each */
            memset(a + (size_t)(k * 31 % 256) * PAGE, 0xFF, PAGE);
        for (size_t i = 0; i < n; i += 3 * PAGE)
            b[i] ^= 1;
        memset(g_bytes, 0, sizeof g_bytes);
        free(c);
        void *d = malloc(100 * PAGE);
        if (d)
            memset(d, 9, 100 * PAGE);
        crfree(a);
        a = NULL;
        local = -1;
        int r = cr_rollback();                   /* returns only on failure */
        O->rc[O->n++] = r;
        return;
    }
    CU_ASSERT_EQUAL(O->n, 2);
    CU_ASSERT_EQUAL(O->rc[0], CR_CHECKPOINTED);
    CU_ASSERT_EQUAL(rc, CR_ROLLEDBACK);
    CU_ASSERT_EQUAL(local, 12345);
    CU_ASSERT_FATAL(a != NULL);
    size_t bad_a = 0, bad_b = 0, bad_g = 0, bad_c = 0;
    for (size_t i = 0; i < n; i++) {
        bad_a += a[i] != pat(i, 1);
        bad_b += b[i] != pat(i, 2);
    }
    for (size_t i = 0; i < sizeof g_bytes; i++)
        bad_g += g_bytes[i] != pat(i, 3);
    for (size_t i = 0; i < 10 * PAGE; i++)
        bad_c += c[i] != 0x3C;
    CU_ASSERT_EQUAL(bad_a, 0);
    CU_ASSERT_EQUAL(bad_b, 0);
    CU_ASSERT_EQUAL(bad_g, 0);
    CU_ASSERT_EQUAL(bad_c, 0);
    CU_ASSERT_EQUAL(cr_checkpoint_stats(&after, sizeof after), 0);
    CU_ASSERT_EQUAL(after.rollbacks, before.rollbacks + 1);
    /* the pages written since, not the heap: 8 + 86 + globals + churn */
    CU_ASSERT(after.last_rollback_pages >= 8);
    CU_ASSERT(after.last_rollback_pages < 256 + 200);
    free(c);
    free(b);
    crfree(a);
}

static void test_repeated_rollbacks(void)
{
    outside_reset();
    const size_t n = 64 * PAGE;
    uint8_t *a = malloc(n);
    CU_ASSERT_FATAL(a != NULL);
    for (size_t i = 0; i < n; i++)
        a[i] = pat(i, 4);
    int rc = cr_checkpoint();
    O->passes++;
    if (O->passes <= 10) {
        O->rc[O->passes - 1] = rc;
        for (size_t i = (size_t)O->passes * PAGE; i < n; i += 5 * PAGE)
            a[i] = (uint8_t)~a[i];
        free(a);
        O->rc[15] = cr_rollback();            /* not reached */
        return;
    }
    CU_ASSERT_EQUAL(O->rc[0], CR_CHECKPOINTED);
    for (int i = 1; i < 10; i++)
        CU_ASSERT_EQUAL(O->rc[i], CR_ROLLEDBACK);
    CU_ASSERT_EQUAL(rc, CR_ROLLEDBACK);
    CU_ASSERT_EQUAL(O->rc[15], 0);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += a[i] != pat(i, 4);
    CU_ASSERT_EQUAL(bad, 0);
    /* and a checkpoint after rollbacks, then one more rollback to it */
    a[7] = 77;
    rc = cr_checkpoint();
    if (rc == CR_CHECKPOINTED) {
        a[7] = 0;
        O->rc[14] = cr_rollback();
        return;
    }
    CU_ASSERT_EQUAL(rc, CR_ROLLEDBACK);
    CU_ASSERT_EQUAL(a[7], 77);
    free(a);
}

/* ---- threads ------------------------------------------------------------------------ */

#define TW 1500

/* Persistent thread: its stack array must come back. */
static void *stacker(void *p)
{
    int id = (int)(intptr_t)p;
    uint64_t s[TW];
    for (int i = 0; i < TW; i++)
        s[i] = (uint64_t)id * 7919 + (uint64_t)i;
    O->thread_runs[id]++;
    int rc = cr_checkpoint();
    O->thread_rc[id] = rc;
    if (rc == CR_CHECKPOINTED) {
        for (int i = 0; i < TW; i += 10)
            s[i] = 0;
        if (id == 3)
            return NULL;              /* finishes after the checkpoint */
        /* Arrive only once main rolls back: arriving earlier could complete
         * a checkpoint round with main waiting somewhere. */
        while (!O->go)
            usleep(1000);
        O->thread_ok[id] = cr_checkpoint() - 1000;   /* the rollback round: not reached */
        return NULL;
    }
    int ok = 1;
    for (int i = 0; i < TW; i++)
        ok &= s[i] == (uint64_t)id * 7919 + (uint64_t)i;
    O->thread_ok[id] = ok;
    return (void *)(intptr_t)(ok ? 100 + id : 0);
}

/* Created after the checkpoint: must end with the rollback. */
static void *latecomer(void *p)
{
    O->thread_runs[5]++;
    while (!O->go)
        usleep(1000);
    for (;;)
        if (cr_checkpoint() < 0)
            O->thread_ok[5] = -3;
    return NULL;
}

static void *quick(void *p)
{
    return p;
}

static void test_threads_back(void)
{
    outside_reset();
    crthread_t t[4];
    for (int i = 1; i <= 3; i++)
        CU_ASSERT_EQUAL_FATAL(crthread_create(&t[i], stacker, (void *)(intptr_t)i), 0);
    uint64_t mine[TW];
    for (int i = 0; i < TW; i++)
        mine[i] = (uint64_t)i * 3;
    int rc = cr_checkpoint();
    O->rc[O->n++] = rc;
    if (rc == CR_CHECKPOINTED) {
        /* Thread 3 finishes meanwhile (not joined: the rollback starts it
         * again on a new pthread); a latecomer is created. */
        crthread_t late;
        if (crthread_create(&late, latecomer, NULL) != 0)
            O->thread_ok[5] = -2;
        for (int i = 0; i < TW; i += 7)
            mine[i] = 1;
        O->go = 1;
        int rr = cr_rollback();
        O->rc[O->n++] = rr;
        return;
    }
    O->go = 0;
    CU_ASSERT_EQUAL(rc, CR_ROLLEDBACK);
    CU_ASSERT_EQUAL(O->n, 2);
    int ok = 1;
    for (int i = 0; i < TW; i++)
        ok &= mine[i] == (uint64_t)i * 3;
    CU_ASSERT(ok);
    for (int i = 1; i <= 3; i++) {
        void *r = NULL;
        CU_ASSERT_EQUAL(crthread_join(t[i], &r), 0);
        CU_ASSERT_EQUAL((intptr_t)r, 100 + i);
        CU_ASSERT_EQUAL(O->thread_rc[i], CR_ROLLEDBACK);
        CU_ASSERT_EQUAL(O->thread_ok[i], 1);
        CU_ASSERT_EQUAL(O->thread_runs[i], 1);     /* resumed, not started again */
    }
    CU_ASSERT_EQUAL(O->thread_runs[5], 1);
    CU_ASSERT_EQUAL(O->thread_ok[5], 0);
    /* The latecomer's slot is usable again. */
    for (int k = 0; k < 4; k++) {
        crthread_t x;
        CU_ASSERT_EQUAL_FATAL(crthread_create(&x, quick, (void *)(intptr_t)(7 + k)), 0);
        void *r = NULL;
        CU_ASSERT_EQUAL(crthread_join(x, &r), 0);
        CU_ASSERT_EQUAL((intptr_t)r, 7 + k);
    }
}

/* ---- refused with open files -------------------------------------------------------- */

static void test_refused_with_open_files(void)
{
    char *dir = cutest_tmpdir("rollback_files");
    char path[4200];
    snprintf(path, sizeof path, "%s/f", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("before\n", f);
    int *x = malloc(sizeof *x);
    CU_ASSERT_FATAL(x != NULL);
    *x = 1;
    CU_ASSERT_EQUAL(cr_checkpoint(), CR_CHECKPOINTED);
    *x = 2;
    CU_ASSERT_EQUAL(cr_rollback(), CR_EUNSUPPORTED);   /* nothing changed */
    CU_ASSERT_EQUAL(*x, 2);
    fclose(f);
    /* closed now, but open at the last checkpoint: still refused */
    CU_ASSERT_EQUAL(cr_rollback(), CR_EUNSUPPORTED);
    CU_ASSERT_EQUAL(*x, 2);
    /* a checkpoint without open files makes it possible again */
    int rc = cr_checkpoint();
    O->rc[0] = rc;
    if (rc == CR_CHECKPOINTED) {
        *x = 3;
        O->rc[1] = cr_rollback();
    }
    CU_ASSERT_EQUAL(rc, CR_ROLLEDBACK);
    CU_ASSERT_EQUAL(*x, 2);
    free(x);
    cutest_rmtree(dir);
    free(dir);
}

/* ---- across restarts (rollback_app) ---------------------------------------------------- */

static int run_app(const char *dir, const char *mode, int *killed)
{
    char env_dir[4200];
    snprintf(env_dir, sizeof env_dir, "CRMPI_DIR=%s", dir);
    char env_mode[64];
    snprintf(env_mode, sizeof env_mode, "CRMPI_CKPT_MODE=%s", mode);
    char *envp[] = { env_dir, env_mode, "CRMPI_LOG=warn", NULL };
    char *argv[] = { (char *)app_path, "48", NULL };
    pid_t pid;
    if (posix_spawn(&pid, app_path, NULL, NULL, argv, envp) != 0)
        return -1;
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    *killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void across_restarts(const char *mode)
{
    char *dir = cutest_tmpdir("rollback_app");
    int killed;
    CU_ASSERT_EQUAL(run_app(dir, mode, &killed), -1);   /* run 1: killed at A */
    CU_ASSERT(killed);
    CU_ASSERT_EQUAL(run_app(dir, mode, &killed), -1);   /* run 2: rollbacks, killed at B */
    CU_ASSERT(killed);
    CU_ASSERT_EQUAL(run_app(dir, mode, &killed), 0);    /* run 3: restarted at B */
    cutest_rmtree(dir);
    free(dir);
}

static void test_across_restarts_async(void) { across_restarts("async"); }
static void test_across_restarts_sync(void) { across_restarts("sync"); }

static CU_TestInfo tests[] = {
    CUTEST(test_refused_before_any_checkpoint),
    CUTEST(test_heap_globals_locals_back),
    CUTEST(test_repeated_rollbacks),
    CUTEST(test_threads_back),
    CUTEST(test_refused_with_open_files),
    CUTEST(test_across_restarts_async),
    CUTEST(test_across_restarts_sync),
    CU_TEST_INFO_NULL,
};
static CU_SuiteInfo suites[] = {
    { "rollback", NULL, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    O = mmap(NULL, sizeof *O, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (O == MAP_FAILED)
        return 1;
    app_path = getenv("ROLLBACK_APP");
    if (!app_path) {
        fprintf(stderr, "test_rollback: set ROLLBACK_APP to the rollback_app program\n");
        return 1;
    }
    return cutest_main(argc, argv, suites);
}
