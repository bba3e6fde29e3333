/*
 * fault.h - named fault points for tests, driven by CRMPI_FAULT.
 *
 *   CRMPI_FAULT=POINT[@N][#R][:ACTION][,POINT[@N][#R][:ACTION]...]
 *
 * POINT names a place in the code (below); N (default 1) selects the Nth
 * time this process reaches it; R restricts it to the process of that rank
 * (as the launcher numbers it: OMPI_COMM_WORLD_RANK, PMIX_RANK, PMI_RANK or
 * SLURM_PROCID - the same grammar as the MPI layer's points in
 * mpi-wrap/protocol.h); ACTION is
 *   kill    (default) SIGKILL this process there - the crash tests
 *   eio     the system call at that point fails with EIO
 *   enospc  the system call at that point fails with ENOSPC
 * Each spec fires once per process (at hit N). An error action at a point
 * that has no system call to fail (the step points) does nothing.
 *
 * Points of the store (src/store):
 *   system calls:  epoch-create (H5Fcreate of an epoch file), store-pwrite
 *                  (every pwrite of page data, tables and header),
 *                  epoch-fsync, index-write, index-fsync, index-rename,
 *                  dir-fsync
 *   steps (kill):  epoch-begun, epoch-put, epoch-finished, index-written,
 *                  index-synced, index-renamed, index-committed
 * Points of the background writer (src/exec/writer.c, kill only; they fire
 * on the writer thread while the application runs):
 *                  writer-put (after each extent), writer-finished
 *                  (epoch fsynced, commit not yet agreed); the store's
 *                  points of put/finish and of the index write also fire
 *                  there in async mode
 * Points of the MPI layer (mpi-wrap, kill only):
 *                  mpi-drain-exchanged, mpi-drain-queued, mpi-quiesced
 *
 * Cost when CRMPI_FAULT is empty (production): one load and compare.
 * The configuration is re-read when CRMPI_FAULT changes (cr_config_reload),
 * and hit counters start again from zero then.
 */
#ifndef CR_FAULT_H
#define CR_FAULT_H

/* Reached POINT: 0 to go on, or -EIO / -ENOSPC to fail the system call
 * there (kill never returns). */
int cr_fault(const char *point);

/* For "x = cr_fault_errno(P) ? -1 : syscall(...)": 1 with errno set when
 * an error is injected at P, else 0. */
int cr_fault_errno(const char *point);

/* Times POINT was reached since CRMPI_FAULT was (re)parsed, if a spec
 * names it (a spec with a large N counts without firing); else 0. */
unsigned long cr_fault_hits(const char *point);

/* Forget the hit counts (tests that reuse a spec in one process). */
void cr_fault_reset(void);

#endif
