/*
 * leak_canary.c - an MPI program that leaks on purpose (ASan build only).
 *
 * tests/sanitizers/run.sh mpi runs it with the MPI leak suppressions
 * (lsan-mpi.supp) and requires LeakSanitizer to report the block that
 * leak_canary_main() allocates: the suppressions name only MPI, PMIx,
 * hwloc and HDF5 libraries and must never hide a leak of ours.
 */
#include <crmpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

__attribute__((noinline)) static void leak_canary_main(int rank)
{
    char *p = malloc(4096);
    if (p)
        memset(p, rank, 4096);
    sink = p;
    sink = NULL;            /* the only reference is gone: a leak */
}

int main(int argc, char **argv)
{
    int rank;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    leak_canary_main(rank);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}
