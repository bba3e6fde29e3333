/*
 * polite.h - waiting for the checkpoint protocol's own collectives without
 * taking a CPU from ranks that are still working.
 */
#ifndef CRMPI_POLITE_H
#define CRMPI_POLITE_H

#include <mpi.h>

/* Complete *req (a request of the protocol's own non-blocking collective):
 * poll it for CRMPI_COLL_SPIN_US microseconds, then sleep between polls.
 * Returns the MPI error code of PMPI_Test. */
int crmpi_wait_polite(MPI_Request *req);

#endif
