/*
 * rollback_refused.c - cr_rollback() in an MPI job: refused on every rank
 * with CR_EUNSUPPORTED (a rank cannot roll back alone), and the job goes on:
 * the data is untouched and the next checkpoint works.
 */
#include <crmpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int *a = crmalloc(1000 * sizeof *a);
    for (int i = 0; i < 1000; i++)
        a[i] = i + rank;
    int rc = crmpi_checkpoint();
    for (int i = 0; i < 1000; i++)
        a[i] += 1;
    int rb = cr_rollback();
    int bad = rb != CR_EUNSUPPORTED;
    for (int i = 0; i < 1000; i++)
        bad |= a[i] != i + rank + 1;
    int rc2 = crmpi_checkpoint();
    int all;
    MPI_Allreduce(&bad, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0 || bad)
        printf("rank %d: checkpoint %d, rollback %d (%s), checkpoint after %d, bad %d\n", rank,
               rc, rb, cr_strerror(rb), rc2, bad);
    MPI_Finalize();
    return all || rc != CRMPI_CHECKPOINTED || rc2 != CRMPI_CHECKPOINTED;
}
