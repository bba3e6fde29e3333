/*
 * wrap_support.h - what every MPI_* wrapper of libcrmpi needs: the mode
 * switch, the refusal of uncheckpointable calls, handle translation.
 *
 * Wrappers are pass-through (straight to PMPI_*) when checkpointing is
 * disabled (CRMPI_DISABLE=1), before MPI_Init has completed, and while the
 * runtime itself uses MPI (the checkpoint container's parallel HDF5 calls
 * MPI_* functions from inside the protocol: those must reach MPI untouched).
 */
#ifndef CRMPI_WRAP_SUPPORT_H
#define CRMPI_WRAP_SUPPORT_H

#include <mpi.h>
#include <errno.h>

#include "common/log.h"
#include "common/compiler.h"
#include "common/errors.h"
#include "vhandle.h"
#include "interpose/interpose.h"

/* Every MPI_* wrapper body runs "in library" (interpose.h): what MPI
 * allocates for itself goes to the C library's heap, never the persistent
 * one, and files it opens are not the application's. */
static inline void crmpi_scope_leave_(int *unused) { (void)unused; cr_lib_leave(); }
#define CRMPI_LIB_SCOPE \
    int crmpi_scope_ __attribute__((cleanup(crmpi_scope_leave_), unused)) = (cr_lib_enter(), 0)

extern int crmpi_enabled_;               /* set by MPI_Init when active */
/* >0: the runtime is calling MPI. Process-wide, not per thread: the
 * checkpoint is written by whichever persistent thread arrives last at the
 * rendezvous, while every application thread is stopped. */
extern int crmpi_internal_;

static inline int crmpi_passthrough(void)
{
    return !crmpi_enabled_ || crmpi_internal_;
}
static inline void crmpi_internal_enter(void) { crmpi_internal_++; }
static inline void crmpi_internal_leave(void) { crmpi_internal_--; }

/* Refuse an MPI call that cannot be checkpointed: logs its name and returns
 * MPI_ERR_UNSUPPORTED_OPERATION. */
int crmpi_refuse(const char *name);
void crmpi_log_refusal(const char *what);

#endif
