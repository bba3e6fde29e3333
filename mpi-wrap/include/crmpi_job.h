/*
 * crmpi_job.h - job control for crmpi programs: when to checkpoint, when to
 * stop. Part of the public API of libcrmpi (crmpi.h includes it).
 *
 * A typical time step loop:
 *
 *     for (; step < nsteps; step++) {
 *         compute(u);
 *         if (crmpi_need_checkpoint() == 1)
 *             (void)crmpi_checkpoint();
 *         if (crmpi_should_exit()) {        // checkpointed after a stop signal
 *             MPI_Finalize();
 *             return crmpi_exit_code();     // CRMPI_EXIT_STOPPED
 *         }
 *     }
 *
 * A checkpoint is due every CRMPI_CKPT_INTERVAL seconds when that is set,
 * otherwise at Young/Daly's optimum interval sqrt(2 * C * CRMPI_MTBF), C
 * being the measured cost of the previous checkpoint. A stop is requested
 * by a signal (CRMPI_STOP_SIGNALS, default SIGUSR1: Slurm's
 * `sbatch --signal=B:USR1@120` through crmpi-run, or `scancel -s USR1`)
 * arriving at any rank: the next crmpi_need_checkpoint() is true on every
 * rank, and once the checkpoint that follows is committed
 * crmpi_should_exit() is true on every rank.
 *
 * When that stop checkpoint is committed, rank 0 also writes the marker
 * file $CRMPI_DIR/crmpi-job.stopped ("signal=USR1", "epoch=N" lines); after
 * every committed checkpoint it rewrites $CRMPI_DIR/crmpi-job.last
 * (epoch, ranks, exe, slurm_job, time, cost). The launcher crmpi-run reads
 * them to tell "checkpointed and stopped: requeue me" from "finished" and
 * to name the job a checkpoint belongs to.
 */
#ifndef CRMPI_JOB_H
#define CRMPI_JOB_H

#include "cr.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exit status of a program that stopped after its stop checkpoint
 * (EX_TEMPFAIL of <sysexits.h>: "try again later"). */
#define CRMPI_EXIT_STOPPED 75

/* Collective over MPI_COMM_WORLD (every rank calls it, at the same point).
 * Returns 1 when a checkpoint is due (interval elapsed on any rank, or a
 * stop requested on any rank), 0 when not - the same answer on every rank -
 * or a negative code: CR_ESTATE before MPI_Init or after MPI_Finalize,
 * CR_EREMOTE when the agreement itself failed in MPI. */
CR_API CR_WUR int crmpi_need_checkpoint(void);

/* Not collective, no communication: 1 once a stop was requested and the
 * checkpoint following it has been committed (agreed inside that
 * checkpoint, so every rank sees the same value after the same
 * crmpi_checkpoint() call); 0 otherwise. The program should then call
 * MPI_Finalize() and exit with crmpi_exit_code(). */
CR_API int crmpi_should_exit(void);

/* CRMPI_EXIT_STOPPED when crmpi_should_exit() is true, else 0. */
CR_API int crmpi_exit_code(void);

#ifdef __cplusplus
}
#endif
#endif /* CRMPI_JOB_H */
