/*
 * bench_mpi.c - cost of libcrmpi's MPI layer: ping-pong latency/bandwidth
 * (1 B - 4 MiB) between ranks 0 and 1, a 2-D halo-exchange loop, and the
 * time of crmpi_checkpoint() itself.
 *
 * Built twice from this file: bench_mpi_plain (Open MPI alone) and
 * bench_mpi_crmpi (linked with libcrmpi, every MPI call through its
 * wrappers). Prints CSV lines "kind,param,value" on rank 0:
 *   pingpong,<bytes>,<one-way microseconds (median of reps)>
 *   halo,<ckpt_every>,<microseconds per step (median of reps)>
 *   ckpt,<ranks>,<microseconds per crmpi_checkpoint (median)>
 *   ckpt_status,<ranks>,<status returned>
 *   poll_np<ranks>,<imbalance %>,<microseconds per step (median of reps)>
 * "poll": the loop of an application that asks every step whether to
 * checkpoint - compute (rank r busy for STEP_US * (1 + imb * r / (ranks-1)),
 * imb = --imbalance percent), then crmpi_need_checkpoint() (with an interval
 * it never reaches, so it always answers no); plain, the same 2-int
 * MPI_Allreduce(MAX) the call is made of, called by the program itself.
 * With --gap-ms G the checkpoints are G ms apart (ranks idle meanwhile: an
 * application computes between checkpoints) and the kind is "ckptgap":
 * back to back, each call waits for the previous epoch's background write
 * (its fsync) to commit it; G ms apart, that write is done by then.
 * and "burst": rank 1 sends bursts of 1-byte messages that rank 0 receives
 * only after a barrier, so every receive finds its message already arrived
 * and no time is spent polling: run under callgrind (wrapper_cost.sh), the
 * instructions per MPI_Send/MPI_Recv are the layer's cost, independent of
 * machine load.
 * Usage: bench_mpi pingpong|halo|ckpt|poll [--quick] [--ckpt-every K] [--max-bytes B]
 *                  [--gap-ms G] [--imbalance PCT]
 */
#include <mpi.h>
#ifdef WITH_CRMPI
#include <crmpi.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int rank, size, quick, max_bytes = 4 << 20, gap_ms, imbalance;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void pingpong(void)
{
    const int reps = quick ? 3 : 7;
    char *buf = malloc(4 << 20);
    memset(buf, 1, 4 << 20);                       /* warm */
    for (int bytes = 1; bytes <= max_bytes; bytes *= 4) {
        int iters = bytes <= 4096 ? (quick ? 2000 : 10000) : bytes <= (256 << 10) ? 500 : 50;
        double t[16];
        for (int r = 0; r < reps + 1; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int i = 0; i < iters; i++) {
                if (rank == 0) {
                    MPI_Send(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
                    MPI_Recv(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                } else if (rank == 1) {
                    MPI_Recv(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    MPI_Send(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
                }
            }
            if (r > 0)                             /* first rep warms up */
                t[r - 1] = (MPI_Wtime() - t0) / iters / 2 * 1e6;
        }
        if (rank == 0)
            printf("pingpong,%d,%.3f\n", bytes, median(t, reps));
    }
    free(buf);
}

static void burst(void)
{
    enum { BURST = 64, ROUNDS = 50 };
    char b[BURST];
    for (int r = 0; r < ROUNDS; r++) {
        if (rank == 1)
            for (int i = 0; i < BURST; i++)
                MPI_Send(&b[i], 1, MPI_BYTE, 0, 7, MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        if (rank == 0)
            for (int i = 0; i < BURST; i++)
                MPI_Recv(&b[i], 1, MPI_BYTE, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    if (rank == 0)
        printf("burst,%d,%d\n", BURST, ROUNDS);
}

static int do_checkpoint(void)
{
#ifdef WITH_CRMPI
    return crmpi_checkpoint();
#else
    return 0;
#endif
}

static void halo(int ckpt_every)
{
    int dims[2] = { 0, 0 }, periods[2] = { 1, 1 };
    MPI_Dims_create(size, 2, dims);
    MPI_Comm cart;
    MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &cart);
    const int n = 512;                             /* local grid n x n doubles */
    double *u = calloc((size_t)(n + 2) * (n + 2), sizeof *u);
    double *v = calloc((size_t)(n + 2) * (n + 2), sizeof *v);
    MPI_Datatype col;
    MPI_Type_vector(n, 1, n + 2, MPI_DOUBLE, &col);
    MPI_Type_commit(&col);
    int up, down, lft, rgt;
    MPI_Cart_shift(cart, 0, 1, &up, &down);
    MPI_Cart_shift(cart, 1, 1, &lft, &rgt);
    const int steps = quick ? 40 : 200, reps = quick ? 3 : 5;
    double t[8];
    for (int r = 0; r < reps + 1; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int s = 0; s < steps; s++) {
            MPI_Request rq[8];
#define AT(a, i, j) (a)[(size_t)(i) * (n + 2) + (j)]
            MPI_Irecv(&AT(u, 0, 1), n, MPI_DOUBLE, up, 0, cart, &rq[0]);
            MPI_Irecv(&AT(u, n + 1, 1), n, MPI_DOUBLE, down, 1, cart, &rq[1]);
            MPI_Irecv(&AT(u, 1, 0), 1, col, lft, 2, cart, &rq[2]);
            MPI_Irecv(&AT(u, 1, n + 1), 1, col, rgt, 3, cart, &rq[3]);
            MPI_Isend(&AT(u, 1, 1), n, MPI_DOUBLE, up, 1, cart, &rq[4]);
            MPI_Isend(&AT(u, n, 1), n, MPI_DOUBLE, down, 0, cart, &rq[5]);
            MPI_Isend(&AT(u, 1, 1), 1, col, lft, 3, cart, &rq[6]);
            MPI_Isend(&AT(u, 1, n), 1, col, rgt, 2, cart, &rq[7]);
            MPI_Waitall(8, rq, MPI_STATUSES_IGNORE);
            for (int i = 1; i <= n; i++)
                for (int j = 1; j <= n; j++)
                    AT(v, i, j) = 0.25 * (AT(u, i - 1, j) + AT(u, i + 1, j) +
                                          AT(u, i, j - 1) + AT(u, i, j + 1)) + 1e-3;
            double *w = u; u = v; v = w;
            if (ckpt_every && (s + 1) % ckpt_every == 0)
                do_checkpoint();
        }
        if (r > 0)
            t[r - 1] = (MPI_Wtime() - t0) / steps * 1e6;
    }
    if (rank == 0)
        printf("halo,%d,%.3f\n", ckpt_every, median(t, reps));
    MPI_Type_free(&col);
    MPI_Comm_free(&cart);
    free(u);
    free(v);
}

static void ckpt(void)
{
    const int reps = quick ? 5 : 21;
    double t[64];
    int st = 0;
    for (int r = 0; r < reps + 1; r++) {
        if (gap_ms) {
            struct timespec ts = { gap_ms / 1000, (long)(gap_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        st = do_checkpoint();
        double dt = MPI_Wtime() - t0, mx;
        MPI_Allreduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (r > 0)
            t[r - 1] = mx * 1e6;
    }
    if (rank == 0) {
        printf("%s,%d,%.3f\n", gap_ms ? "ckptgap" : "ckpt", size, median(t, reps));
        printf("%s_status,%d,%d\n", gap_ms ? "ckptgap" : "ckpt", size, st);
    }
}

/* The per-step question of an application run by crmpi_need_checkpoint()
 * (or its plain equivalent), after busy work that differs between ranks:
 * a rank that finishes early waits in the question for the slowest, which
 * is where the way of waiting shows. */
static void busy_us(double us)
{
    double t0 = MPI_Wtime();
    volatile double x = 1;
    while ((MPI_Wtime() - t0) * 1e6 < us)
        for (int i = 0; i < 64; i++)
            x = x * 1.0000001 + 1e-9;
}

static void poll_loop(void)
{
    enum { STEP_US = 500 };
    const int steps = quick ? 200 : 1000, reps = quick ? 3 : 5;
    double work = STEP_US * (1 + (size > 1 ? imbalance / 100.0 * rank / (size - 1) : 0));
    double t[8];
    int answer = 0;
    for (int r = 0; r < reps + 1; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int s = 0; s < steps; s++) {
            busy_us(work);
#ifdef WITH_CRMPI
            answer |= crmpi_need_checkpoint();
#else
            int flags[2] = { 0, 0 };
            MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
            answer |= flags[0] | flags[1];
#endif
        }
        if (r > 0)
            t[r - 1] = (MPI_Wtime() - t0) / steps * 1e6;
    }
    if (answer)
        fprintf(stderr, "bench_mpi poll: a checkpoint was asked for (set CRMPI_CKPT_INTERVAL)\n");
    if (rank == 0)
        printf("poll_np%d,%d,%.3f\n", size, imbalance, median(t, reps));
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *what = argc > 1 ? argv[1] : "pingpong";
    int every = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--ckpt-every") && i + 1 < argc)
            every = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gap-ms") && i + 1 < argc)
            gap_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-bytes") && i + 1 < argc)
            max_bytes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--imbalance") && i + 1 < argc)
            imbalance = atoi(argv[++i]);
    }
    if (!strcmp(what, "pingpong"))
        pingpong();
    else if (!strcmp(what, "halo"))
        halo(every);
    else if (!strcmp(what, "ckpt"))
        ckpt();
    else if (!strcmp(what, "burst"))
        burst();
    else if (!strcmp(what, "poll"))
        poll_loop();
    MPI_Finalize();
    return 0;
}
