/*
 * jobctl.h - internal interface between the checkpoint protocol of the MPI
 * layer and job control (jobctl.c: checkpoint frequency, stop signals,
 * the files crmpi-run reads).
 *
 * The MPI layer calls, on every rank:
 *   crmpi_jobctl_init()              right after PMPI_Init succeeded
 *   crmpi_jobctl_record_cost(s)      when a checkpoint commit is agreed, with
 *                                    the seconds this rank spent in
 *                                    crmpi_checkpoint() for it (the cost the
 *                                    application paid: the Young/Daly C)
 *   crmpi_jobctl_after_checkpoint(e) collectively, after every committed
 *                                    checkpoint e (not after a failed one,
 *                                    not on the restart path)
 *   crmpi_jobctl_fini()              before PMPI_Finalize
 * jobctl never calls the checkpoint protocol back; its collectives use
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

/* Not collective. Cost in seconds of the checkpoint being committed. */
void crmpi_jobctl_record_cost(double seconds);

/* Collective over MPI_COMM_WORLD, after checkpoint `epoch` was committed on
 * every rank. Agrees on whether a stop signal arrived anywhere (then
 * crmpi_should_exit() becomes true everywhere), restarts the interval
 * clock, and has rank 0 rewrite $CRMPI_DIR/crmpi-job.last (and write
 * crmpi-job.stopped on a stop). Returns 0, or CR_EREMOTE when the agreement
 * failed in MPI (crmpi_should_exit() is then unchanged). Failing to write
 * the files is logged, not returned: they only inform the launcher. */
CR_MUST_CHECK int crmpi_jobctl_after_checkpoint(uint64_t epoch);

/* Not collective. Restores the signal handlers found at init. */
void crmpi_jobctl_fini(void);

/* Forget a stop request and its agreement, the measured cost, and restart
 * the interval clock (tests; a program never needs it). */
void crmpi_jobctl_reset(void);

/* The interval (seconds) after which the next checkpoint is due, as
 * crmpi_need_checkpoint() computes it now (tests, log lines). */
double crmpi_jobctl_interval(void);

#endif
