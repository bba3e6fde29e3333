/*
 * mc_proxy.c - a Monte Carlo neutron-transport proxy in the style of
 * XSBench/RSBench-like codes, written with plain malloc and globals. The
 * only crmpi change: one crmpi_checkpoint() call per batch (and -lcrmpi).
 *
 *   mc_proxy BATCHES HISTORIES_PER_BATCH GRIDPOINTS
 *
 * At start-up every rank builds a large lookup table: a unionized energy
 * grid of GRIDPOINTS sorted energies and, for each, cross sections of
 * NUC nuclides x 5 reaction channels. Each batch follows histories: a
 * random energy and material, a binary search in the grid, interpolation,
 * a macroscopic cross-section sum, a random collision outcome, tallies in a
 * malloc'd array. At the end the tallies are reduced and rank 0 prints them
 * with a checksum.
 */
#include <crmpi.h>
#include <mpi.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUC 24
#define CHAN 5
#define NMAT 4
#define NBINS 64

static double *egrid;                 /* GRIDPOINTS energies        */
static double *xs;                    /* GRIDPOINTS x NUC x CHAN    */
static double *density;               /* NMAT x NUC                 */
static long ngrid;
static double *tally;                 /* NMAT x NBINS x CHAN        */
static long collisions, leaks;
static uint64_t rng_state;

static double rn(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void build_tables(void)
{
    egrid = malloc((size_t)ngrid * sizeof *egrid);
    xs = malloc((size_t)ngrid * NUC * CHAN * sizeof *xs);
    density = malloc(NMAT * NUC * sizeof *density);
    tally = calloc(NMAT * NBINS * CHAN, sizeof *tally);
    if (!egrid || !xs || !density || !tally) {
        fprintf(stderr, "mc_proxy: cannot allocate the tables\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    uint64_t saved = rng_state;
    rng_state = 12345;                /* the same tables on every rank */
    for (long i = 0; i < ngrid; i++)
        egrid[i] = rn();
    qsort(egrid, (size_t)ngrid, sizeof *egrid, cmp);
    for (long i = 0; i < ngrid * NUC * CHAN; i++)
        xs[i] = rn();
    for (int i = 0; i < NMAT * NUC; i++)
        density[i] = rn() < 0.5 ? 0.0 : rn();
    rng_state = saved;
}

static long lookup(double e)
{
    long lo = 0, hi = ngrid - 1;
    while (hi - lo > 1) {
        long mid = lo + (hi - lo) / 2;
        if (egrid[mid] > e)
            hi = mid;
        else
            lo = mid;
    }
    return lo;
}

static void history(void)
{
    double e = rn();
    int mat = (int)(rn() * NMAT);
    for (int collision = 0; collision < 20; collision++) {
        long g = lookup(e);
        double f = (e - egrid[g]) / (egrid[g + 1] - egrid[g] + 1e-300);
        double macro[CHAN] = { 0 };
        for (int n = 0; n < NUC; n++) {
            double d = density[mat * NUC + n];
            if (d == 0.0)
                continue;
            const double *lo = &xs[(g * NUC + n) * CHAN], *hi = lo + NUC * CHAN;
            for (int c = 0; c < CHAN; c++)
                macro[c] += d * (lo[c] + f * (hi[c] - lo[c]));
        }
        int bin = (int)(e * NBINS);
        if (bin >= NBINS)
            bin = NBINS - 1;
        for (int c = 0; c < CHAN; c++)
            tally[(mat * NBINS + bin) * CHAN + c] += macro[c];
        collisions++;
        double total = macro[0] + macro[1] + macro[2] + macro[3] + macro[4];
        double u = rn() * total;
        if (u < macro[0] || total == 0) {    /* absorbed */
            return;
        }
        e *= 0.3 + 0.7 * rn();               /* scattered down */
        if (e < 1e-6) {
            leaks++;
            return;
        }
    }
}

int main(int argc, char **argv)
{
    int rank, nranks;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (argc < 4) {
        if (rank == 0)
            fprintf(stderr, "usage: mc_proxy BATCHES HISTORIES GRIDPOINTS\n");
        MPI_Finalize();
        return 2;
    }
    int batches = atoi(argv[1]);
    long histories = atol(argv[2]);
    ngrid = atol(argv[3]);
    rng_state = 0x853c49e6748fea9bULL ^ (uint64_t)rank * 0x9E3779B97F4A7C15ULL;
    build_tables();
    for (int b = 0; b < batches; b++) {
        for (long h = 0; h < histories; h++)
            history();
        if (crmpi_checkpoint() < 0 && rank == 0)
            fprintf(stderr, "mc_proxy: checkpoint after batch %d failed\n", b);
    }
    int nt = NMAT * NBINS * CHAN;
    double *sum = rank == 0 ? malloc((size_t)nt * sizeof *sum) : NULL;
    long counts[2] = { collisions, leaks }, tot[2];
    MPI_Reduce(tally, sum, nt, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(counts, tot, 2, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        uint64_t h = 1469598103934665603ULL;
        for (int m = 0; m < NMAT; m++) {
            double s[CHAN] = { 0 };
            for (int i = 0; i < NBINS; i++)
                for (int c = 0; c < CHAN; c++)
                    s[c] += sum[(m * NBINS + i) * CHAN + c];
            printf("material %d: %.10e %.10e %.10e %.10e %.10e\n", m, s[0], s[1], s[2], s[3], s[4]);
        }
        for (int i = 0; i < nt; i++) {
            uint64_t x;
            memcpy(&x, &sum[i], sizeof x);
            h = (h ^ x) * 1099511628211ULL;
        }
        printf("mc_proxy: %d batches x %ld histories x %d ranks: %ld collisions, %ld leaks, "
               "checksum %016llx\n", batches, histories, nranks, tot[0], tot[1],
               (unsigned long long)h);
        free(sum);
    }
    MPI_Finalize();
    return 0;
}
