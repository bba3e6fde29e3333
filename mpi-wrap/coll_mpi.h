/*
 * coll_mpi.h - the container's collective operations (struct cr_coll,
 * src/store/store.h) for an MPI job, over a private duplicate of a
 * communicator so the store's traffic never matches the application's.
 * Only PMPI_* entry points are called, so the crmpi wrappers never see
 * (or count) these messages.
 */
#ifndef CR_COLL_MPI_H
#define CR_COLL_MPI_H

#include <mpi.h>

#include "store/store.h"

/* Collective over comm (normally MPI_COMM_WORLD). Returns 0 and *out, or
 * -ENOMEM / -EIO (an MPI error, logged). */
int cr_coll_mpi_create(MPI_Comm comm, struct cr_coll **out);
/* Collective: frees the duplicate communicator. */
void cr_coll_mpi_destroy(struct cr_coll *c);

#endif
