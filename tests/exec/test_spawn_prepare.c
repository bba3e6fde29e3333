/*
 * test_spawn_prepare.c - a persistent thread whose pthread cannot be
 * prepared for a persistent stack is never started (src/exec/thread.c).
 *
 * Under the mprotect tracker (CRMPI_TRACKER=mprotect) every thread that
 * runs on a stack in the region needs an alternate signal stack: a write
 * fault on its own write-protected stack could not be handled otherwise,
 * and the process would die at the thread's first such write. Here the
 * signal stack's mmap fails (RLIMIT_AS just above the process's size):
 * crthread_create must return the error without the thread having run,
 * checkpoints must go on (no rendezvous waits for a thread that never
 * started), and with the limit lifted threads are created as usual.
 *
 * Linked with the shared libcr like an application (main on a persistent
 * stack); needs an empty checkpoint directory (CRMPI_DIR).
 */
#include "cutest.h"

#include <cr.h>
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

static void *worker(void *arg)
{
    *(volatile int *)arg += 1;
    return arg;
}

static unsigned long vm_bytes(void)
{
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * (unsigned long)sysconf(_SC_PAGESIZE);
}

static void test_unprepared_thread_is_not_started(void)
{
    volatile int ran = 0;
    crthread_t t;
    struct rlimit old, lim;
    CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_AS, &old), 0);
    unsigned long vm = vm_bytes();
    CU_ASSERT_FATAL(vm > 0);
    lim.rlim_cur = vm + 16384;   /* less than any signal stack */
    lim.rlim_max = old.rlim_max;
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_AS, &lim), 0);
    int rc = crthread_create(&t, worker, (void *)&ran);
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_AS, &old), 0);
    CU_ASSERT_EQUAL(rc, -ENOMEM);
    usleep(100000);              /* a thread that was started anyway would have run */
    CU_ASSERT_EQUAL(ran, 0);
    CU_ASSERT(cr_checkpoint() >= 0);
    rc = crthread_create(&t, worker, (void *)&ran);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    void *ret = NULL;
    CU_ASSERT_EQUAL(crthread_join(t, &ret), 0);
    CU_ASSERT_EQUAL(ran, 1);
    CU_ASSERT(cr_checkpoint() >= 0);
}

static CU_TestInfo tests[] = {
    CUTEST(test_unprepared_thread_is_not_started),
    CU_TEST_INFO_NULL,
};
static CU_SuiteInfo suites[] = {
    { "spawn_prepare", NULL, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv) { return cutest_main(argc, argv, suites); }
