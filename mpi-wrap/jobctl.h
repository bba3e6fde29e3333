/*
 * jobctl.h - internal interface between the checkpoint protocol of the MPI
 * layer and job control (jobctl.c: checkpoint frequency, stop signals,
 * the files crmpi-run reads).
 *
 * The MPI layer calls, on every rank:
 *   crmpi_jobctl_init()              right after PMPI_Init succeeded
 *   crmpi_jobctl_checkpoint_agree(st, s, f, a) collectively, at the end of
 *                                    every checkpoint (not on the restart
 *                                    path), with this rank's status of it and
 *                                    the seconds it spent in
 *                                    crmpi_checkpoint() (the cost the
 *                                    application paid: the Young/Daly C)
 *   crmpi_jobctl_fini()              before PMPI_Finalize
 * jobctl calls the checkpoint protocol back only through settle; its collectives use
 * PMPI_* on MPI_COMM_WORLD directly.
 */
#ifndef CRMPI_JOBCTL_H
#define CRMPI_JOBCTL_H

#include <stdint.h>

#include "common/compiler.h"
#include "crmpi_job.h"

/* Not collective. Reads the configuration, installs the stop-signal
 * handlers (chaining any handler the program installed before) and starts
 * the checkpoint interval clock. Idempotent; the public functions call it
 * when the MPI layer has not. Returns 0 or -errno (sigaction failed). */
CR_MUST_CHECK int crmpi_jobctl_init(void);

/* Not collective. Cost in seconds of the checkpoint being committed (for
 * crmpi_jobctl_after_checkpoint). */
void crmpi_jobctl_record_cost(double seconds);
/* Collective over MPI_COMM_WORLD, after checkpoint `epoch` was committed on
 * every rank: crmpi_jobctl_checkpoint_agree(0, -1, ...) with a settle that
 * only names epoch. */
CR_MUST_CHECK int crmpi_jobctl_after_checkpoint(uint64_t epoch);
/* Collective over MPI_COMM_WORLD, at the end of every checkpoint: one
 * agreement of the checkpoint's status (this rank's: 0 or negative), of
 * whether a stop signal arrived anywhere and of the largest cost (seconds,
 * this rank's; < 0: the one crmpi_jobctl_record_cost recorded). If the
 * checkpoint failed on any rank, returns the most negative status,
 * identical everywhere, and changes nothing. Otherwise calls
 * settle(stop, &epoch, arg) - collectively, with the same stop everywhere -
 * which must commit a still pending (asynchronous) checkpoint when stop is
 * set and name the last committed epoch. Then crmpi_should_exit() becomes
 * true everywhere on a stop, the interval clock restarts, and rank 0
 * rewrites $CRMPI_DIR/crmpi-job.last (and writes crmpi-job.stopped on a
 * stop). Returns 0, settle's error (nothing changed then), or status /
 * CR_EREMOTE when the agreement failed in MPI (crmpi_should_exit() is then
 * unchanged). Failing to write the files is logged, not returned: they only
 * inform the launcher. */
CR_MUST_CHECK int crmpi_jobctl_checkpoint_agree(
    int status, double seconds, int (*settle)(int stop, uint64_t *epoch, void *arg), void *arg);
/* Not collective. Restores the signal handlers found at init. */
void crmpi_jobctl_fini(void);

/* Forget a stop request and its agreement, the measured cost, and restart
 * the interval clock (tests; a program never needs it). */
void crmpi_jobctl_reset(void);

/* The interval (seconds) after which the next checkpoint is due, as
 * crmpi_need_checkpoint() computes it now (tests, log lines). */
double crmpi_jobctl_interval(void);

#endif
