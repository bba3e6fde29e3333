/*
 * test_polite.c - the checkpoint protocol's collectives wait without
 * spinning (mpi-wrap/polite.c), and still give the collective's result.
 *
 * Why it matters: where ranks share CPUs, a rank spinning in the protocol's
 * next collective takes the CPU from a rank still scanning and copying its
 * pages (perf/fast: four ranks' work done one after the other on two CPUs).
 * The behavioural check is the waiting rank's CPU time against its wall
 * time while one rank is late by 200 ms: a spinning rank that has a CPU
 * uses all of it, a napping one a small part (seen: 1-11%; with the naps
 * taken out of polite.c, 50-100%, and the test fails: checked). No timing
 * of the machine's speed is asserted.
 */
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "cutest_mpi.h"
#include "polite.h"
#include "protocol.h"

static int rank, size;

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void set_spin(const char *us)
{
    setenv("CRMPI_COLL_SPIN_US", us, 1);
    CU_ASSERT_EQUAL_FATAL(cr_config_reload(), 0);
}

/* Rank 0 comes 200 ms late; the others report the CPU share of their wait. */
static void late_barrier(double *cpu_share)
{
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        usleep(200000);
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    MPI_Request r;
    CU_ASSERT_EQUAL_FATAL(PMPI_Ibarrier(MPI_COMM_WORLD, &r), MPI_SUCCESS);
    CU_ASSERT_EQUAL(crmpi_wait_polite(&r), MPI_SUCCESS);
    CU_ASSERT_EQUAL(r, MPI_REQUEST_NULL);
    double wall = clock_s(CLOCK_MONOTONIC) - w0, cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    *cpu_share = wall > 0 ? cpu / wall : 0;
}

static void test_waiting_for_a_late_rank_leaves_the_cpu(void)
{
    set_spin("100");
    double share;
    late_barrier(&share);
    if (rank != 0) {
        fprintf(stderr, "rank %d: waited with %.0f%% of a CPU\n", rank, 100 * share);
        CU_ASSERT_TRUE(share < 0.5);
    }
}

static void test_result_is_the_collectives(void)
{
    for (int i = 0; i < 3; i++) {
        set_spin(i == 0 ? "0" : i == 1 ? "100" : "1000000");
        long mine[2] = { rank + 1, -rank }, all[2] = { 0, 0 };
        MPI_Request r;
        if (rank == size - 1)
            usleep(20000);      /* the others reach the nap phase */
        CU_ASSERT_EQUAL_FATAL(PMPI_Iallreduce(mine, all, 2, MPI_LONG, MPI_SUM, MPI_COMM_WORLD, &r),
                              MPI_SUCCESS);
        CU_ASSERT_EQUAL(crmpi_wait_polite(&r), MPI_SUCCESS);
        CU_ASSERT_EQUAL(all[0], (long)size * (size + 1) / 2);
        CU_ASSERT_EQUAL(all[1], -(long)size * (size - 1) / 2);
    }
    MPI_Request none = MPI_REQUEST_NULL;
    CU_ASSERT_EQUAL(crmpi_wait_polite(&none), MPI_SUCCESS);
}

/* The nap lowers the thread's timer slack; the application's must come back. */
static void test_timer_slack_is_restored(void)
{
    set_spin("0");
    int before = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(prctl(PR_SET_TIMERSLACK, 77777UL, 0, 0, 0), 0);
    double share;
    late_barrier(&share);
    CU_ASSERT_EQUAL(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), 77777);
    CU_ASSERT_EQUAL(prctl(PR_SET_TIMERSLACK, (unsigned long)before, 0, 0, 0), 0);
}

/* The protocol's agreement (crmpi_agree, the last step of the quiesce) goes
 * through the polite wait too, and still finds the worst status. */
static void test_agreement_with_a_late_rank(void)
{
    set_spin("100");
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        usleep(200000);
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    int got = crmpi_agree(rank == size - 1 ? -5 : 0);
    double wall = clock_s(CLOCK_MONOTONIC) - w0, cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    CU_ASSERT_EQUAL(got, -5);
    if (rank != 0)
        CU_ASSERT_TRUE(cpu < 0.5 * wall);
}

static CU_TestInfo tests[] = {
    CUTEST(test_waiting_for_a_late_rank_leaves_the_cpu),
    CUTEST(test_result_is_the_collectives),
    CUTEST(test_timer_slack_is_restored),
    CUTEST(test_agreement_with_a_late_rank),
    CU_TEST_INFO_NULL
};
static CU_SuiteInfo suites[] = {
    { "polite", NULL, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL
};

int main(int argc, char **argv)
{
    return cutest_mpi_main(argc, argv, suites, "test_polite", &rank, &size, NULL);
}
