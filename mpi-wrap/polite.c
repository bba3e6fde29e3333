/*
 * polite.c - how the checkpoint protocol waits for its own collectives.
 *
 * Inside crmpi_checkpoint() every rank does its own share of CPU work
 * (scanning for written pages, copying them to the staging buffer: ~2 ms a
 * rank at 1 GiB, 1% written) between collectives. A rank that reaches the
 * next collective first used to spin in it (Open MPI polls, and at best
 * calls sched_yield when oversubscribed), and where ranks share CPUs - 4
 * ranks on this 2-CPU machine, or any node running more ranks than cores -
 * the spinners took CPU time from the ranks still working: the debug log of
 * perf/fast showed the four ranks' work done one after the other (each
 * rank's scan + copy ~1.8 ms, entering begin 0.1, 2.1, 4.2 and 7.3 ms
 * apart), not two at a time.
 *
 * So the protocol's collectives are started non-blocking and waited for
 * here: polled for CRMPI_COLL_SPIN_US (the common case, ranks arriving
 * together on dedicated cores, completes within it and pays nothing), then
 * polled after short sleeps, which leave the CPU to whoever needs it. The
 * cost is at most one nap of latency per round of the collective, only in
 * waits that were already longer than the spin.
 *
 * The timer slack of the thread (50 us by default, which would make the
 * first 20 us nap 70 us) is lowered while it naps and restored after.
 */
#include "polite.h"

#include <sys/prctl.h>
#include <time.h>

#include "common/config.h"

/* Naps between polls once the spin is over: from 20 us, doubling up to
 * 160 us, so a long wait costs little CPU and the latency added to it stays
 * small beside what was already waited. */
#define NAP_FIRST_NS 20000L
#define NAP_MAX_NS 160000L

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

int crmpi_wait_polite(MPI_Request *req)
{
    double t0 = now_us(), spin = (double)cr_config()->coll_spin_us;
    int flag = 0, rc;
    while ((rc = PMPI_Test(req, &flag, MPI_STATUS_IGNORE)) == MPI_SUCCESS && !flag)
        if (now_us() - t0 >= spin)
            break;
    if (rc != MPI_SUCCESS || flag)
        return rc;
    int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    if (slack > 1000)
        (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    struct timespec nap = { 0, NAP_FIRST_NS };
    while ((rc = PMPI_Test(req, &flag, MPI_STATUS_IGNORE)) == MPI_SUCCESS && !flag) {
        nanosleep(&nap, NULL);
        if (nap.tv_nsec < NAP_MAX_NS)
            nap.tv_nsec = nap.tv_nsec * 2 < NAP_MAX_NS ? nap.tv_nsec * 2 : NAP_MAX_NS;
    }
    if (slack > 1000)
        (void)prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0);
    return rc;
}
