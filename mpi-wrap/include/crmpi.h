/*
 * crmpi.h - public API of libcrmpi: checkpoint/restart of MPI programs.
 *
 * Link with -lcrmpi (mpicc app.c -lcrmpi). Call crmpi_checkpoint()
 * collectively, e.g. once per time step; a job killed at any moment and
 * started again with the same mpirun command resumes every rank from the
 * last committed checkpoint, where crmpi_checkpoint() returns
 * CRMPI_RESTARTED. Keep persistent data in crmalloc() memory (cr.h).
 *
 * MPI support: every MPI call that takes a handle is wrapped; communicators,
 * groups, derived datatypes, user ops, infos, error handlers, requests and
 * matched messages are virtualised and rebuilt after a restart. Refused
 * (MPI_ERR_UNSUPPORTED_OPERATION, logged by name) while checkpointing is
 * enabled: one-sided windows (MPI_Win_*, MPI_Put/Get/...), MPI-IO
 * (MPI_File_*), dynamic processes (spawn/connect/accept/join, ports),
 * inter-communicators, persistent and generalized requests, MPI_Comm_idup,
 * MPI_Alloc_mem. MPI_THREAD_MULTIPLE is downgraded to MPI_THREAD_SERIALIZED
 * (reported in `provided` and logged at warn level). Attribute values
 * (MPI_Comm_set_attr, ...) and object names are not restored.
 * CRMPI_DISABLE=1 makes every wrapper a pass-through.
 */
#ifndef CRMPI_H
#define CRMPI_H

#include <mpi.h>
#include "cr.h"
#include "crmpi_job.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRMPI_CHECKPOINTED 0   /* a checkpoint was committed by every rank */
#define CRMPI_RESTARTED    1   /* the job resumed from a checkpoint here   */

/* Collective over MPI_COMM_WORLD, called by the thread that called MPI_Init
 * while no other thread of the rank is inside MPI. Returns, identically on
 * every rank, CRMPI_CHECKPOINTED, CRMPI_RESTARTED, or a negative code
 * (cr_strerror names it): then no new checkpoint was committed, the previous
 * one stays valid, and the job can continue. Errors: CR_ESTATE (called
 * before MPI_Init or after MPI_Finalize), CR_EUNSUPPORTED (a non-blocking
 * collective or a matched-but-unreceived message is pending), CR_EREMOTE
 * (another rank failed), -ENOMEM, -EIO, and the storage codes of cr.h.
 * With CRMPI_DISABLE=1 it does nothing and returns CRMPI_CHECKPOINTED. */
CR_API int crmpi_checkpoint(void) CR_WUR;

/* With CRMPI_CKPT_MODE=async (the default), crmpi_checkpoint() returns once
 * every rank has copied its dirty pages aside; a background thread per rank
 * writes them, and the checkpoint is committed (becomes the restart point)
 * by the next crmpi_checkpoint(), by crmpi_checkpoint_wait() or in
 * MPI_Finalize. A failed background write is returned, on every rank, by
 * the call that commits. crmpi_checkpoint_wait(): collective like
 * crmpi_checkpoint(); waits for the writes and commits. Returns 0
 * (committed, or nothing pending) or the agreed error (CR_EREMOTE, -EIO,
 * -ENOSPC, ...; the previous checkpoint stays valid). CR_ESTATE outside
 * MPI_Init..MPI_Finalize. */
CR_API int crmpi_checkpoint_wait(void) CR_WUR;

#ifdef __cplusplus
}
#endif
#endif /* CRMPI_H */
