/*
 * soak_app.c - the workload of the soak test (tests/mpi/soak.py).
 *
 *   soak_app STEPS [SEED]
 *
 * Every step each rank sends a random number (0-4) of messages of random
 * sizes (8 B - 256 KiB) to random ranks with MPI_Isend, calls
 * crmpi_checkpoint() while they are in flight, then receives what it is owed
 * with MPI_ANY_SOURCE and checks every message against what its
 * sender must have sent. The traffic is a pure function of (SEED, step,
 * sender), so every rank knows what it is owed and what each payload must
 * be: a message lost, duplicated, reordered per sender or corrupted across a
 * kill and restart counts as bad. The persistent heap is churned too (blocks
 * allocated and freed every step), so a leak would grow the ranks' memory.
 *
 * Rank 0 prints one line at the end, "soak ranks=N steps=S msgs=M bad=B
 * checksum=X", which depends only on SEED, N and S: a run killed and
 * restarted any number of times must print the same line as an
 * uninterrupted one, with bad=0. After every checkpoint rank 0 writes
 * "soak: checkpoint epoch E" to stderr (the driver counts them).
 */
#include <crmpi.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_OUT 4
#define MAX_LEN (256 << 10)
#define CHURN 16

struct msg { int dst, len; uint64_t seed; };

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* What rank `src` sends in `step`: the same on every rank. */
static int plan(uint64_t seed, int step, int src, int size, struct msg *m)
{
    uint64_t s = seed ^ ((uint64_t)step << 20) ^ (uint64_t)src * 0x51ed27ull;
    int n = (int)(splitmix(&s) % (MAX_OUT + 1));
    for (int i = 0; i < n; i++) {
        m[i].dst = (int)(splitmix(&s) % (uint64_t)size);
        int shift = (int)(splitmix(&s) % 16);             /* 8 B .. 256 KiB */
        m[i].len = (int)(8 + splitmix(&s) % ((uint64_t)8 << shift));
        if (m[i].len > MAX_LEN)
            m[i].len = MAX_LEN;
        m[i].seed = splitmix(&s);
    }
    return n;
}

static void fill(unsigned char *b, int n, uint64_t seed)
{
    for (int i = 0; i < n; i += 8) {
        uint64_t v = splitmix(&seed);
        memcpy(b + i, &v, (size_t)(n - i < 8 ? n - i : 8));
    }
}

static uint64_t hash(const unsigned char *b, int n, uint64_t h)
{
    for (int i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

struct state {
    int step, nsend;
    uint64_t msgs, bad, sum;
    unsigned char *out[MAX_OUT], *in, *expect;
    void *churn[CHURN];
    MPI_Request rq[MAX_OUT];
    int nexp[1024];          /* messages owed by each sender this step */
    int seen[1024];
};

static void *must(void *p)
{
    if (!p) {
        fprintf(stderr, "soak_app: out of persistent memory\n");
        MPI_Abort(MPI_COMM_WORLD, 4);
    }
    return p;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 40;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : 1;
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1024) {
        fprintf(stderr, "soak_app: at most 1024 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    struct state *st = must(crcalloc(1, sizeof *st));
    for (int i = 0; i < MAX_OUT; i++)
        st->out[i] = must(crmalloc(MAX_LEN));
    st->in = must(crmalloc(MAX_LEN));
    st->expect = must(crmalloc(MAX_LEN));
    for (st->step = 0; st->step < steps; st->step++) {
        struct msg m[MAX_OUT];
        st->nsend = plan(seed, st->step, rank, size, m);
        for (int i = 0; i < st->nsend; i++) {
            fill(st->out[i], m[i].len, m[i].seed);
            MPI_Isend(st->out[i], m[i].len, MPI_BYTE, m[i].dst, st->step % 32768,
                      MPI_COMM_WORLD, &st->rq[i]);
        }
        /* Heap churn: replace a few blocks of random sizes. */
        uint64_t cs = seed * 31 + (uint64_t)st->step * 1009 + (uint64_t)rank;
        for (int k = 0; k < 4; k++) {
            int j = (int)(splitmix(&cs) % CHURN);
            crfree(st->churn[j]);
            size_t n = 16 + splitmix(&cs) % (64 << 10);
            st->churn[j] = must(crmalloc(n));
            memset(st->churn[j], st->step & 0xff, n);
        }
        int rc = crmpi_checkpoint();
        if (rc < 0) {
            fprintf(stderr, "rank %d: crmpi_checkpoint: %s\n", rank, cr_strerror(rc));
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
        if (rc == CRMPI_RESTARTED) {
            MPI_Comm_rank(MPI_COMM_WORLD, &rank);   /* locals survive; re-read anyway */
        }
        if (rank == 0) {
            struct cr_checkpoint_stats cst;
            if (cr_checkpoint_stats(&cst, sizeof cst) == 0 && rc == CRMPI_CHECKPOINTED)
                fprintf(stderr, "soak: checkpoint epoch %llu\n",
                        (unsigned long long)cst.last_epoch);
        }
        /* What is owed to me this step, from whom, in which order. */
        int owed = 0;
        for (int src = 0; src < size; src++) {
            struct msg pm[MAX_OUT];
            int n = plan(seed, st->step, src, size, pm);
            st->nexp[src] = 0;
            st->seen[src] = 0;
            for (int i = 0; i < n; i++)
                if (pm[i].dst == rank)
                    st->nexp[src]++;
            owed += st->nexp[src];
        }
        for (int k = 0; k < owed; k++) {
            MPI_Status s;
            /* ANY_SOURCE, but this step's tag: a sender may already have posted
             * the next step's messages. */
            MPI_Recv(st->in, MAX_LEN, MPI_BYTE, MPI_ANY_SOURCE, st->step % 32768,
                     MPI_COMM_WORLD, &s);
            int len, src = s.MPI_SOURCE;
            MPI_Get_count(&s, MPI_BYTE, &len);
            /* The seen[src]-th message from src to me must be this one. */
            struct msg pm[MAX_OUT];
            int n = plan(seed, st->step, src, size, pm), idx = -1, c = 0;
            for (int i = 0; i < n; i++)
                if (pm[i].dst == rank && c++ == st->seen[src]) {
                    idx = i;
                    break;
                }
            st->seen[src]++;
            if (idx < 0 || s.MPI_TAG != st->step % 32768 || len != pm[idx].len) {
                st->bad++;
                continue;
            }
            fill(st->expect, len, pm[idx].seed);
            if (memcmp(st->expect, st->in, (size_t)len))
                st->bad++;
            st->msgs++;
            /* A sum: ANY_SOURCE receives arrive in a timing-dependent order. */
            st->sum += hash(st->in, len < 64 ? len : 64, 1469598103934665603ull ^ (uint64_t)src);
        }
        MPI_Waitall(st->nsend, st->rq, MPI_STATUSES_IGNORE);
    }
    /* The last epoch's writer must run without anyone waiting for it: the
     * checkpoint call releases its job as it returns (src/exec/writer.c).
     * A job left held would only be written by the wait below. */
    struct cr_checkpoint_stats ws;
    for (int i = 0; i < 6000 && cr_checkpoint_stats(&ws, sizeof ws) == 0 && ws.writing; i++)
        usleep(10000);
    if (cr_checkpoint_stats(&ws, sizeof ws) != 0 || ws.writing) {
        fprintf(stderr, "rank %d: the last checkpoint's writer did not finish within 60 s "
                "of the call\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    /* Commit the last checkpoint now (async mode commits it at the next
     * checkpoint or in MPI_Finalize) and report it like the others, so the
     * driver sees every step's epoch committed. */
    int wrc = crmpi_checkpoint_wait();
    if (wrc != 0) {
        fprintf(stderr, "soak: crmpi_checkpoint_wait: %d\n", wrc);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    if (rank == 0) {
        struct cr_checkpoint_stats cst;
        if (cr_checkpoint_stats(&cst, sizeof cst) == 0)
            fprintf(stderr, "soak: checkpoint epoch %llu\n", (unsigned long long)cst.last_epoch);
    }
    uint64_t mine[3] = { st->msgs, st->bad, st->sum }, all[3] = { 0, 0, 0 }, x = 0;
    MPI_Reduce(mine, all, 2, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&mine[2], &x, 1, MPI_UINT64_T, MPI_BXOR, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("soak ranks=%d steps=%d msgs=%llu bad=%llu checksum=%016llx\n", size, steps,
               (unsigned long long)all[0], (unsigned long long)all[1], (unsigned long long)x);
    MPI_Finalize();
    return 0;
}
