/*
 * test_jobctl.c - job control (mpi-wrap/jobctl.c): checkpoint interval from
 * the environment and from Young/Daly, agreement of every rank on a stop
 * signal that reached one rank, the marker files for the launcher, and
 * chaining of the program's own signal handler.
 *
 * Runs as an MPI singleton (ctest test_jobctl) and with 2 ranks under
 * mpirun (test_jobctl_2ranks): the signal is raised on the last rank only,
 * so with 2 ranks rank 0 learns of it through the agreement.
 */
#include "cutest.h"
#include "jobctl.h"
#include "common/config.h"

#include <dirent.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rank, size;
static char dir[4096];

static void set_env(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
    (void)cr_config_reload();
}

/* Same answer on every rank? Returns the value if so, -999 otherwise. */
static int agreed(int v)
{
    int lo = v, hi = v;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi ? v : -999;
}

static int file_has(const char *name, const char *line)
{
    char path[4200], buf[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int found = 0;
    while (!found && fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        found = !strcmp(buf, line);
    }
    fclose(f);
    return found;
}

static void remove_files(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/crmpi-job.last", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/crmpi-job.stopped", dir);
    unlink(path);
}

static void fresh(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        remove_files();
    crmpi_jobctl_reset();
    MPI_Barrier(MPI_COMM_WORLD);
}

static void test_interval_from_ckpt_interval(void)
{
    set_env("CRMPI_CKPT_INTERVAL", "7");
    crmpi_jobctl_record_cost(100.0);     /* ignored when an interval is set */
    CU_ASSERT_DOUBLE_EQUAL(crmpi_jobctl_interval(), 7.0, 1e-9);
    set_env("CRMPI_CKPT_INTERVAL", NULL);
    fresh();
}

static void test_interval_young_daly_from_measured_cost(void)
{
    set_env("CRMPI_MTBF", "200");
    fresh();
    /* No cost measured yet: C = 1 s. */
    CU_ASSERT_DOUBLE_EQUAL(crmpi_jobctl_interval(), sqrt(2.0 * 1.0 * 200), 1e-9);
    crmpi_jobctl_record_cost(4.0);
    CU_ASSERT_DOUBLE_EQUAL(crmpi_jobctl_interval(), 40.0, 1e-9);
    crmpi_jobctl_record_cost(-1.0);      /* nonsense cost: ignored */
    CU_ASSERT_DOUBLE_EQUAL(crmpi_jobctl_interval(), 40.0, 1e-9);
    set_env("CRMPI_MTBF", NULL);
    CU_ASSERT_DOUBLE_EQUAL(crmpi_jobctl_interval(), sqrt(2.0 * 4.0 * 86400), 1e-6);
    fresh();
}

static void test_cost_agreed_is_largest_of_ranks(void)
{
    fresh();
    set_env("CRMPI_MTBF", "1000");
    crmpi_jobctl_record_cost(rank == size - 1 ? 8.0 : 2.0);
    CU_ASSERT_EQUAL(crmpi_jobctl_after_checkpoint(1), 0);
    CU_ASSERT_DOUBLE_EQUAL(crmpi_jobctl_interval(), sqrt(2.0 * 8.0 * 1000), 1e-6);
    CU_ASSERT_EQUAL(agreed(crmpi_should_exit()), 0);
    set_env("CRMPI_MTBF", NULL);
    fresh();
}

static void test_not_due_before_interval(void)
{
    set_env("CRMPI_CKPT_INTERVAL", "3600");
    fresh();
    CU_ASSERT_EQUAL(agreed(crmpi_need_checkpoint()), 0);
    set_env("CRMPI_CKPT_INTERVAL", NULL);
}

static void test_due_after_interval_then_clock_restarts(void)
{
    set_env("CRMPI_CKPT_INTERVAL", "1");
    fresh();
    CU_ASSERT_EQUAL(agreed(crmpi_need_checkpoint()), 0);
    usleep(1100 * 1000);
    CU_ASSERT_EQUAL(agreed(crmpi_need_checkpoint()), 1);
    CU_ASSERT_EQUAL(crmpi_jobctl_after_checkpoint(3), 0);
    CU_ASSERT_EQUAL(agreed(crmpi_need_checkpoint()), 0);
    CU_ASSERT_EQUAL(agreed(crmpi_should_exit()), 0);
    CU_ASSERT_EQUAL(crmpi_exit_code(), 0);
    if (rank == 0) {
        CU_ASSERT(file_has("crmpi-job.last", "epoch=3"));
        char want[64];
        snprintf(want, sizeof want, "ranks=%d", size);
        CU_ASSERT(file_has("crmpi-job.last", want));
        CU_ASSERT(!file_has("crmpi-job.stopped", "epoch=3"));
    }
    set_env("CRMPI_CKPT_INTERVAL", NULL);
    fresh();
}

static void test_stop_signal_on_last_rank_agreed_by_all(void)
{
    set_env("CRMPI_CKPT_INTERVAL", "3600");
    fresh();
    if (rank == size - 1)
        raise(SIGUSR1);
    CU_ASSERT_EQUAL(agreed(crmpi_need_checkpoint()), 1);
    /* Not yet: the checkpoint following the signal is not committed. */
    CU_ASSERT_EQUAL(agreed(crmpi_should_exit()), 0);
    CU_ASSERT_EQUAL(crmpi_jobctl_after_checkpoint(5), 0);
    CU_ASSERT_EQUAL(agreed(crmpi_should_exit()), 1);
    CU_ASSERT_EQUAL(crmpi_exit_code(), CRMPI_EXIT_STOPPED);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        CU_ASSERT(file_has("crmpi-job.stopped", "signal=USR1"));
        CU_ASSERT(file_has("crmpi-job.stopped", "epoch=5"));
        CU_ASSERT(file_has("crmpi-job.last", "epoch=5"));
    }
    set_env("CRMPI_CKPT_INTERVAL", NULL);
    fresh();
}

static void test_stop_without_need_checkpoint_call(void)
{
    /* A program that calls crmpi_checkpoint() every step and never asks. */
    fresh();
    if (rank == 0)
        raise(SIGUSR1);
    CU_ASSERT_EQUAL(crmpi_jobctl_after_checkpoint(6), 0);
    CU_ASSERT_EQUAL(agreed(crmpi_should_exit()), 1);
    fresh();
    CU_ASSERT_EQUAL(agreed(crmpi_should_exit()), 0);
}

/* Entries of the directory whose name starts with prefix. */
static int count_prefixed(const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += !strncmp(de->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

/* A writer killed between creating its temporary and the rename leaves the
 * temporary behind (planted here under the name rank 0 writes through):
 * the next write must take it over, not leave one more file in the
 * checkpoint directory for good. */
static void test_killed_writer_temporary_taken_over(void)
{
    fresh();
    if (rank == 0) {
        char path[4200];
        snprintf(path, sizeof path, "%s/crmpi-job.last.tmp", dir);
        FILE *f = fopen(path, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fputs("epoch=1\n", f);
        fclose(f);
    }
    CU_ASSERT_EQUAL(crmpi_jobctl_after_checkpoint(4), 0);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        CU_ASSERT(file_has("crmpi-job.last", "epoch=4"));
        CU_ASSERT_EQUAL(count_prefixed("crmpi-job.last.tmp"), 0);
        CU_ASSERT_EQUAL(count_prefixed("crmpi-job."), 1);
    }
    fresh();
}

static volatile sig_atomic_t program_handler_calls;
static void program_handler(int sig) { (void)sig; program_handler_calls++; }

static void test_program_handler_still_called(void)
{
    crmpi_jobctl_fini();
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = program_handler;
    sigemptyset(&sa.sa_mask);
    CU_ASSERT_EQUAL(sigaction(SIGUSR1, &sa, &old), 0);
    CU_ASSERT_EQUAL(crmpi_jobctl_init(), 0);
    fresh();
    raise(SIGUSR1);
    CU_ASSERT_EQUAL(program_handler_calls, 1);
    CU_ASSERT_EQUAL(agreed(crmpi_need_checkpoint()), 1);
    /* fini gives the program its handler back. */
    crmpi_jobctl_fini();
    struct sigaction cur;
    CU_ASSERT_EQUAL(sigaction(SIGUSR1, NULL, &cur), 0);
    CU_ASSERT(cur.sa_handler == program_handler);
    CU_ASSERT_EQUAL(sigaction(SIGUSR1, &old, NULL), 0);
    CU_ASSERT_EQUAL(crmpi_jobctl_init(), 0);
    fresh();
}

static void test_sigterm_only_when_configured(void)
{
    struct sigaction cur;
    crmpi_jobctl_fini();
    set_env("CRMPI_STOP_SIGNALS", NULL);
    CU_ASSERT_EQUAL(crmpi_jobctl_init(), 0);
    CU_ASSERT_EQUAL(sigaction(SIGTERM, NULL, &cur), 0);
    CU_ASSERT(!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL);
    crmpi_jobctl_fini();
    set_env("CRMPI_STOP_SIGNALS", "usr1,term");
    CU_ASSERT_EQUAL(crmpi_jobctl_init(), 0);
    fresh();
    if (rank == 0)
        raise(SIGTERM);
    CU_ASSERT_EQUAL(agreed(crmpi_need_checkpoint()), 1);
    CU_ASSERT_EQUAL(crmpi_jobctl_after_checkpoint(9), 0);
    CU_ASSERT_EQUAL(agreed(crmpi_should_exit()), 1);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        CU_ASSERT(file_has("crmpi-job.stopped", "signal=TERM"));
    crmpi_jobctl_fini();
    set_env("CRMPI_STOP_SIGNALS", NULL);
    CU_ASSERT_EQUAL(crmpi_jobctl_init(), 0);
    fresh();
}

static CU_TestInfo jobctl_tests[] = {
    CUTEST(test_interval_from_ckpt_interval),
    CUTEST(test_interval_young_daly_from_measured_cost),
    CUTEST(test_cost_agreed_is_largest_of_ranks),
    CUTEST(test_not_due_before_interval),
    CUTEST(test_due_after_interval_then_clock_restarts),
    CUTEST(test_stop_signal_on_last_rank_agreed_by_all),
    CUTEST(test_stop_without_need_checkpoint_call),
    CUTEST(test_killed_writer_temporary_taken_over),
    CUTEST(test_program_handler_still_called),
    CUTEST(test_sigterm_only_when_configured),
    CU_TEST_INFO_NULL,
};
static CU_SuiteInfo suites[] = {
    { "jobctl", NULL, NULL, NULL, NULL, jobctl_tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    /* Before MPI_Init the collective cannot run: an error, not a crash. */
    setenv("CRMPI_LOG", "none", 1);
    (void)cr_config_reload();
    int before = crmpi_need_checkpoint();
    unsetenv("CRMPI_LOG");
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank == 0) {
        char *d = cutest_tmpdir("jobctl");
        snprintf(dir, sizeof dir, "%s", d);
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    setenv("CRMPI_DIR", dir, 1);
    (void)cr_config_reload();
    int rc = 0;
    if (before != CR_ESTATE) {
        fprintf(stderr, "crmpi_need_checkpoint() before MPI_Init returned %d, want CR_ESTATE\n", before);
        rc = 1;
    }
    if (crmpi_jobctl_init() != 0)
        rc = 1;
    /* Only rank 0 reports through CUnit's summary; every rank asserts. */
    int fails = cutest_main(argc, argv, suites) != 0;
    MPI_Allreduce(MPI_IN_PLACE, &fails, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    crmpi_jobctl_fini();
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        cutest_rmtree(dir);
    MPI_Finalize();
    return rc || fails;
}
