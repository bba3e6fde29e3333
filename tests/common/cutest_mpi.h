/*
 * cutest_mpi.h - main() of a CUnit program that links the MPI layer's
 * objects (crmpi_objs) and runs under mpiexec:
 *
 *   int main(int argc, char **argv)
 *   {
 *       return cutest_mpi_main(argc, argv, suites, "test_x", &rank, &size, NULL);
 *   }
 *
 * MPI_Init (the layer's wrapper: it must have enabled the layer), then
 * setup() if given, the suites (only rank 0's stdout is kept), and one
 * result for the job: non-zero when any rank failed an assertion.
 */
#ifndef CUTEST_MPI_H
#define CUTEST_MPI_H

#include <mpi.h>
#include <stdio.h>

#include "cutest.h"
#include "wrap_support.h"

static inline int cutest_mpi_main(int argc, char **argv, CU_SuiteInfo *suites, const char *name,
                                  int *rank, int *size, void (*setup)(void))
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    if (!crmpi_enabled_) {
        fprintf(stderr, "%s: the MPI layer is not enabled\n", name);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (setup)
        setup();
    if (*rank != 0 && !freopen("/dev/null", "w", stdout))
        return 2;
    int rc = cutest_main(argc, argv, suites);
    int any = 0;
    MPI_Allreduce(&rc, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any ? 1 : 0;
}

#endif
