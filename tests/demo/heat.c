/*
 * heat.c - the demo job: explicit 1-D heat diffusion split over the ranks,
 * written as a user of crmpi would write it. The field lives in crmalloc()
 * memory and main's locals live on its persistent stack, so one
 * crmpi_checkpoint() call per step is all the program adds for
 * checkpoint/restart. Halo values travel with MPI_Sendrecv; the total heat
 * is reduced every 50 steps. The final line (a checksum of the whole field)
 * must be identical whether or not the job was killed and restarted.
 *
 *   heat [steps] [cells-per-rank] [delay-us-per-step]
 */
#include <crmpi.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long steps = argc > 1 ? atol(argv[1]) : 600;
    long n = argc > 2 ? atol(argv[2]) : 1 << 16;
    long delay = argc > 3 ? atol(argv[3]) : 5000;

    /* n interior cells plus one ghost cell on each side. */
    double *u = crmalloc((size_t)(n + 2) * sizeof *u);
    double *v = crmalloc((size_t)(n + 2) * sizeof *v);
    if (!u || !v) {
        fprintf(stderr, "heat: out of persistent memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (long i = 0; i < n + 2; i++)
        u[i] = (rank * n + i) % 97 == 0 ? 100.0 : 0.0;
    int left = rank > 0 ? rank - 1 : MPI_PROC_NULL;
    int right = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;

    for (long step = 0; step < steps; step++) {
        MPI_Sendrecv(&u[1], 1, MPI_DOUBLE, left, 0, &u[n + 1], 1, MPI_DOUBLE, right, 0,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Sendrecv(&u[n], 1, MPI_DOUBLE, right, 1, &u[0], 1, MPI_DOUBLE, left, 1,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (long i = 1; i <= n; i++)
            v[i] = u[i] + 0.25 * (u[i - 1] - 2 * u[i] + u[i + 1]);
        memcpy(&u[1], &v[1], (size_t)n * sizeof *u);
        if (delay)
            usleep((useconds_t)delay);   /* stands for a heavier physics step */
        if (step % 50 == 0) {
            double local = 0, total = 0;
            for (long i = 1; i <= n; i++)
                local += u[i];
            MPI_Reduce(&local, &total, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
            if (rank == 0)
                fprintf(stderr, "heat: step %ld total heat %.6f\n", step, total);
        }
        int rc = crmpi_checkpoint();
        if (rc == CRMPI_RESTARTED && rank == 0)
            fprintf(stderr, "heat: resumed from the checkpoint of step %ld\n", step);
        else if (rc < 0 && rank == 0)
            fprintf(stderr, "heat: checkpoint failed (%s); continuing\n", cr_strerror(rc));
    }

    uint64_t h = fnv1a(0xcbf29ce484222325ULL, &u[1], (size_t)n * sizeof *u), all = 0;
    MPI_Reduce(&h, &all, 1, MPI_UINT64_T, MPI_BXOR, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("heat: %ld steps on %d ranks, field checksum %016" PRIx64 "\n", steps, size, all);
    crfree(u);
    crfree(v);
    MPI_Finalize();
    return 0;
}
