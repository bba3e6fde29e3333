/*
 * kill_app.c - MPI workloads for the kill/restart tests of libcrmpi.
 *
 *   kill_app SCENARIO [STEPS]
 *
 * Each scenario runs STEPS time steps and calls crmpi_checkpoint() once per
 * step while messages are in flight; all of its state lives in crmalloc()
 * memory (and on main's persistent stack). At the end rank 0 prints one line
 * with a checksum that depends only on the computation, never on timing, so
 * a run that was SIGKILLed and restarted any number of times must print the
 * same line as an uninterrupted run (tests/common/killrun.py compares them;
 * the same source built against Open MPI alone, kill_app_plain, must print
 * it too).
 *
 * Scenarios:
 *   ring     1 B, 64 KiB and 4 MiB messages to the right neighbour sent before
 *            the checkpoint and received after it
 *   halo     2-D halo exchange on a periodic Cartesian communicator, with a
 *            vector datatype for columns; sends posted before the checkpoint
 *   anysrc   every rank sends to rank 0 with varying tags; rank 0 receives
 *            with MPI_ANY_SOURCE/MPI_ANY_TAG, checks per-sender order
 *   comms    communicators from MPI_Comm_split and MPI_Comm_dup (made once,
 *            before the first checkpoint) carry the traffic, and one from
 *            an MPI_Comm_idup pending across the second checkpoint; a
 *            counter is cached on the split one as an attribute; after
 *            every checkpoint the names of a communicator and a datatype
 *            are read back, and error handlers are checked with sends to
 *            a missing rank: MPI_ERRORS_RETURN set on the dup and inherited
 *            by a split of it, a user handler freed at once on the split
 *            one (and inherited by the idup); a deviation aborts the job
 *   dtypes   struct/vector/resized datatypes in flight
 *   irecv    an MPI_Irecv posted before the checkpoint whose message is sent
 *            only after it (it is re-posted on restart)
 *   coll     Allreduce, Bcast, Alltoall, Allgather every step, and an
 *            Iallreduce pending across the checkpoint
 *   thread   MPI_THREAD_FUNNELED; a persistent worker thread per rank
 *            computes alongside main and joins every checkpoint rendezvous
 *   mpiio    a shared file written through interleaved views, collective
 *            and non-blocking writes around every checkpoint (MPI-IO); the
 *            info hint it was opened with, and a user error handler a file
 *            inherited from the files' default, are checked after every
 *            checkpoint
 *   persist  the halo exchange with persistent requests (MPI_Send_init,
 *            MPI_Ssend_init, MPI_Bsend_init, MPI_Recv_init, MPI_Startall) made once and
 *            started around every checkpoint, on MPI_Alloc_mem fields
 *   inter    an inter-communicator between even and odd ranks: messages in
 *            flight across every checkpoint, inter-collectives, a merge
 *   rma      one-sided windows with operations in flight at every
 *            checkpoint: a fence epoch, MPI_Win_lock_all (and an MPI_Rget),
 *            a shared lock on a dynamic window; a user error handler on a
 *            window is checked after every checkpoint
 *
 * KILL_APP_BALLAST_MIB=N: before the scenario each rank also allocates N
 * MiB with crmalloc and marks one word per MiB, which the checksum covers.
 * A heap that large uses heap page-map entries beyond the first part a
 * fresh heap leaves open (the rest is fenced off, src/heap/attach.c); the
 * restart must write them all back.
 */
#ifdef KILL_APP_PLAIN
#include "plain_compat.h"
#else
#include <crmpi.h>
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int rank, size, left, right;

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t hash_bytes(const unsigned char *b, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void fill(unsigned char *b, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x2545f4914f6cdd1dull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        b[i] = (unsigned char)x;
    }
}

static void who_am_i(void)
{
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    left = (rank - 1 + size) % size;
    right = (rank + 1) % size;
}

/* KILL_APP_TOLERATE=1: a failed checkpoint is counted and the job goes on
 * (the tests that fail one rank's checkpoint with an injected error), after
 * checking the API's promise that every rank got the same status. */
static int failures;

static void checkpoint(void)
{
    static int tolerate = -1;
    if (tolerate < 0) {
        const char *t = getenv("KILL_APP_TOLERATE");
        tolerate = t && t[0] == '1';
    }
    int rc = crmpi_checkpoint();
    if (tolerate) {
        int lo = rc, hi = rc;
        MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (lo != hi) {
            fprintf(stderr, "rank %d: crmpi_checkpoint returned %d here, between %d and %d "
                    "on the ranks\n", rank, rc, lo, hi);
            MPI_Abort(MPI_COMM_WORLD, 5);
        }
        if (rc < 0) {
            if (rank == 0)
                fprintf(stderr, "kill_app: checkpoint failed on every rank alike (%s); "
                        "going on\n", cr_strerror(rc));
            failures++;
            return;
        }
    }
    if (rc < 0) {
        fprintf(stderr, "rank %d: crmpi_checkpoint: %s\n", rank, cr_strerror(rc));
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    /* Globals are not persistent: a restarted process must set them again
     * (state that must survive lives in crmalloc memory or on the stack). */
    if (rc == CRMPI_RESTARTED)
        who_am_i();
}

static void *pmalloc(size_t n)
{
    void *p = crcalloc(1, n);
    if (!p) {
        fprintf(stderr, "rank %d: crcalloc(%zu) failed\n", rank, n);
        MPI_Abort(MPI_COMM_WORLD, 4);
    }
    return p;
}

/* ---- ring -------------------------------------------------------------------- */
static uint64_t ring(int steps)
{
    static const int sizes[3] = { 1, 64 << 10, 4 << 20 };
    struct { unsigned char *s[3], *r[3]; uint64_t h; int step; } *st = pmalloc(sizeof *st);
    for (int i = 0; i < 3; i++) {
        st->s[i] = pmalloc((size_t)sizes[i]);
        st->r[i] = pmalloc((size_t)sizes[i]);
    }
    for (st->step = 0; st->step < steps; st->step++) {
        MPI_Request rq[3];
        for (int i = 0; i < 3; i++) {
            fill(st->s[i], (size_t)sizes[i], (uint64_t)(st->step * 7919 + rank * 31 + i));
            MPI_Isend(st->s[i], sizes[i], MPI_BYTE, right, i, MPI_COMM_WORLD, &rq[i]);
        }
        checkpoint();
        for (int i = 2; i >= 0; i--) {
            MPI_Status s;
            MPI_Recv(st->r[i], sizes[i], MPI_BYTE, left, i, MPI_COMM_WORLD, &s);
            int n;
            MPI_Get_count(&s, MPI_BYTE, &n);
            st->h = mix(st->h, hash_bytes(st->r[i], (size_t)n) ^ (uint64_t)s.MPI_SOURCE);
        }
        MPI_Waitall(3, rq, MPI_STATUSES_IGNORE);
    }
    return st->h;
}

/* ---- halo -------------------------------------------------------------------- */
#define HN 64
#define AT(a, i, j) (a)[(size_t)(i) * (HN + 2) + (j)]
static uint64_t halo(int steps)
{
    struct { MPI_Comm cart; MPI_Datatype col; double *u, *v; int step, up, down, l, r; } *st =
        pmalloc(sizeof *st);
    int dims[2] = { 0, 0 }, periods[2] = { 1, 1 }, coords[2];
    MPI_Dims_create(size, 2, dims);
    MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &st->cart);
    MPI_Type_vector(HN, 1, HN + 2, MPI_DOUBLE, &st->col);
    MPI_Type_commit(&st->col);
    MPI_Cart_shift(st->cart, 0, 1, &st->up, &st->down);
    MPI_Cart_shift(st->cart, 1, 1, &st->l, &st->r);
    int me;
    MPI_Comm_rank(st->cart, &me);
    MPI_Cart_coords(st->cart, me, 2, coords);
    st->u = pmalloc(sizeof(double) * (HN + 2) * (HN + 2));
    st->v = pmalloc(sizeof(double) * (HN + 2) * (HN + 2));
    for (int i = 1; i <= HN; i++)
        for (int j = 1; j <= HN; j++)
            AT(st->u, i, j) = (coords[0] * HN + i) * 0.01 + (coords[1] * HN + j) * 0.001;
    for (st->step = 0; st->step < steps; st->step++) {
        double *u = st->u;
        MPI_Request rq[8];
        MPI_Isend(&AT(u, 1, 1), HN, MPI_DOUBLE, st->up, 1, st->cart, &rq[0]);
        MPI_Isend(&AT(u, HN, 1), HN, MPI_DOUBLE, st->down, 0, st->cart, &rq[1]);
        MPI_Isend(&AT(u, 1, 1), 1, st->col, st->l, 3, st->cart, &rq[2]);
        MPI_Isend(&AT(u, 1, HN), 1, st->col, st->r, 2, st->cart, &rq[3]);
        checkpoint();                        /* four messages in flight per rank */
        MPI_Irecv(&AT(u, 0, 1), HN, MPI_DOUBLE, st->up, 0, st->cart, &rq[4]);
        MPI_Irecv(&AT(u, HN + 1, 1), HN, MPI_DOUBLE, st->down, 1, st->cart, &rq[5]);
        MPI_Irecv(&AT(u, 1, 0), 1, st->col, st->l, 2, st->cart, &rq[6]);
        MPI_Irecv(&AT(u, 1, HN + 1), 1, st->col, st->r, 3, st->cart, &rq[7]);
        MPI_Waitall(8, rq, MPI_STATUSES_IGNORE);
        for (int i = 1; i <= HN; i++)
            for (int j = 1; j <= HN; j++)
                AT(st->v, i, j) = 0.25 * (AT(u, i - 1, j) + AT(u, i + 1, j) +
                                          AT(u, i, j - 1) + AT(u, i, j + 1));
        double *w = st->u; st->u = st->v; st->v = w;
    }
    uint64_t h = 0;
    for (int i = 1; i <= HN; i++)
        h = mix(h, hash_bytes((unsigned char *)&AT(st->u, i, 1), HN * sizeof(double)));
    return h;
}

/* ---- persist ------------------------------------------------------------------ */
/* The halo exchange with persistent requests, made once: one set per field
 * buffer (the fields swap every step; they come from MPI_Alloc_mem), columns through a vector type freed
 * right after the requests were made, the "down" rows in synchronous mode,
 * the "up" rows buffered, and a 64 KiB payload per step with MPI_Bsend (the
 * attached buffer must be attached again on restart).
 * Most steps start all 8 before the checkpoint; every third step starts
 * only the receives before it (the drain defers them, they are started
 * again) and the sends after it. */
static uint64_t persist(int steps)
{
    enum { PN = 8192, NR = 5, NS = 4 };      /* payload doubles (64 KiB); receives, sends per set */
    struct { MPI_Comm cart; double *f[2], *pout[2], *pin[2]; MPI_Request rq[2][NR + NS];
             int step, bsize; void *bbuf; uint64_t h; } *st = pmalloc(sizeof *st);
    int dims[2] = { 0, 0 }, periods[2] = { 1, 1 }, coords[2], up, down, l, r, me;
    MPI_Dims_create(size, 2, dims);
    MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &st->cart);
    MPI_Datatype col;
    MPI_Type_vector(HN, 1, HN + 2, MPI_DOUBLE, &col);
    MPI_Type_commit(&col);
    MPI_Cart_shift(st->cart, 0, 1, &up, &down);
    MPI_Cart_shift(st->cart, 1, 1, &l, &r);
    MPI_Comm_rank(st->cart, &me);
    MPI_Cart_coords(st->cart, me, 2, coords);
    for (int k = 0; k < 2; k++) {
        size_t bytes = sizeof(double) * (HN + 2) * (HN + 2);
        if (MPI_Alloc_mem((MPI_Aint)bytes, MPI_INFO_NULL, &st->f[k]) != MPI_SUCCESS) {
            fprintf(stderr, "rank %d: MPI_Alloc_mem failed\n", rank);
            MPI_Abort(MPI_COMM_WORLD, 4);
        }
        double *u = st->f[k];
        memset(u, 0, bytes);
        st->pout[k] = pmalloc(PN * sizeof(double));
        st->pin[k] = pmalloc(PN * sizeof(double));
        MPI_Request *q = st->rq[k];
        MPI_Recv_init(&AT(u, 0, 1), HN, MPI_DOUBLE, up, 0, st->cart, &q[0]);
        MPI_Recv_init(&AT(u, HN + 1, 1), HN, MPI_DOUBLE, down, 1, st->cart, &q[1]);
        MPI_Recv_init(&AT(u, 1, 0), 1, col, l, 2, st->cart, &q[2]);
        MPI_Recv_init(&AT(u, 1, HN + 1), 1, col, r, 3, st->cart, &q[3]);
        MPI_Recv_init(st->pin[k], PN, MPI_DOUBLE, down, 4, st->cart, &q[4]);
        MPI_Bsend_init(&AT(u, 1, 1), HN, MPI_DOUBLE, up, 1, st->cart, &q[5]);
        MPI_Ssend_init(&AT(u, HN, 1), HN, MPI_DOUBLE, down, 0, st->cart, &q[6]);
        MPI_Send_init(&AT(u, 1, 1), 1, col, l, 3, st->cart, &q[7]);
        MPI_Send_init(&AT(u, 1, HN), 1, col, r, 2, st->cart, &q[8]);
    }
    MPI_Type_free(&col);                     /* the requests keep it */
    /* The payloads are buffered sends (MPI_Bsend: Open MPI 4.1 sends stale
     * bytes when a persistent buffered send of this size is started again),
     * too large to go eagerly: without the attached buffer they fail. The
     * ranks stay within a step of each other (each waits for its
     * neighbours' messages), so at most two payloads and two rows of ours
     * are in the buffer at once; room for twice that. */
    st->bsize = 4 * ((int)((PN + HN) * sizeof(double)) + 2 * MPI_BSEND_OVERHEAD);
    st->bbuf = pmalloc((size_t)st->bsize);
    MPI_Buffer_attach(st->bbuf, st->bsize);
    for (int i = 1; i <= HN; i++)
        for (int j = 1; j <= HN; j++)
            AT(st->f[0], i, j) = (coords[0] * HN + i) * 0.01 + (coords[1] * HN + j) * 0.001;
    for (st->step = 0; st->step < steps; st->step++) {
        int k = st->step % 2;
        double *u = st->f[k], *v = st->f[1 - k];
        MPI_Request *q = st->rq[k];
        for (int i = 0; i < PN; i++)
            st->pout[k][i] = AT(u, 1 + i % HN, 1 + (i / HN) % HN) * (1 + st->step);
        if (st->step % 3 == 2) {
            MPI_Startall(NR, q);
            checkpoint();                    /* the receives pending */
            MPI_Startall(NS, q + NR);
            MPI_Bsend(st->pout[k], PN, MPI_DOUBLE, up, 4, st->cart);
        } else {
            MPI_Startall(NR + NS, q);
            MPI_Bsend(st->pout[k], PN, MPI_DOUBLE, up, 4, st->cart);
            checkpoint();                    /* receives pending, messages in flight */
        }
        MPI_Waitall(NR + NS, q, MPI_STATUSES_IGNORE);
        st->h = mix(st->h, hash_bytes((unsigned char *)st->pin[k], PN * sizeof(double)));
        for (int i = 1; i <= HN; i++)
            for (int j = 1; j <= HN; j++)
                AT(v, i, j) = 0.25 * (AT(u, i - 1, j) + AT(u, i + 1, j) +
                                      AT(u, i, j - 1) + AT(u, i, j + 1));
    }
    uint64_t h = st->h;
    for (int i = 1; i <= HN; i++)
        h = mix(h, hash_bytes((unsigned char *)&AT(st->f[steps % 2], i, 1), HN * sizeof(double)));
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < NR + NS; i++)
            MPI_Request_free(&st->rq[k][i]);
        MPI_Free_mem(st->f[k]);
    }
    void *b;
    int bn;
    MPI_Buffer_detach(&b, &bn);
    return h;
}

/* ---- mpiio ------------------------------------------------------------------- */
/* Every step each rank writes its block of the step into one shared file
 * (opened on a communicator freed right after) through an interleaved view (MPI_File_write_all, atomic mode), reads
 * back its block of the step before, and writes a record into a file of
 * its own (opened on MPI_COMM_SELF) with an MPI_File_iwrite pending across
 * the checkpoint. At the end the files are hashed: after any number of
 * kills they must be the uninterrupted run's, byte for byte (a restart
 * cuts each file back to its size at the checkpoint and the run writes the
 * rest again). (Open MPI 4.1 loses independent writes that run beside
 * other ranks' collective writes to the same file, plain MPI too: hence
 * the file of its own.) */
static uint64_t hash_file(MPI_Comm comm, const char *name)
{
    MPI_File f;
    MPI_Offset n = 0;
    MPI_File_open(comm, name, MPI_MODE_RDONLY, MPI_INFO_NULL, &f);
    MPI_File_get_size(f, &n);
    unsigned char *all = malloc((size_t)n + 1);
    MPI_File_read_at(f, 0, all, (int)n, MPI_BYTE, MPI_STATUS_IGNORE);
    uint64_t h = mix((uint64_t)n, hash_bytes(all, (size_t)n));
    free(all);
    MPI_File_close(&f);
    return h;
}

/* The hint the shared file was opened with (Open MPI 4.1's ompio reports
 * the hints given at open in MPI_File_get_info; none when opened without,
 * and not those of MPI_File_set_info). */
#define MPIIO_HINT_KEY "cb_buffer_size"
#define MPIIO_HINT_VAL "1048576"
static void mpiio_expect_hint(MPI_File fh)
{
    MPI_Info got = MPI_INFO_NULL;
    char val[MPI_MAX_INFO_VAL + 1] = "";
    int flag = 0, rc = MPI_File_get_info(fh, &got);
    if (rc == MPI_SUCCESS && got != MPI_INFO_NULL) {
        MPI_Info_get(got, MPIIO_HINT_KEY, MPI_MAX_INFO_VAL, val, &flag);
        MPI_Info_free(&got);
    }
    if (!flag || strcmp(val, MPIIO_HINT_VAL)) {
        fprintf(stderr, "rank %d: mpiio: MPI_File_get_info of the shared file gives %s=%s, "
                "not the %s it was opened with\n", rank, MPIIO_HINT_KEY,
                rc != MPI_SUCCESS ? "(call failed)" : flag ? val : "(none)", MPIIO_HINT_VAL);
        MPI_Abort(MPI_COMM_WORLD, 10);
    }
}

/* User error handlers of files and windows, their handles freed at once:
 * after every checkpoint MPI_*_call_errhandler must reach them, once, with
 * the handle the application holds. The record is in persistent memory;
 * the pointer to it is set again before each use. */
struct obj_errh { int calls; void *expect; int foreign; };
static struct obj_errh *obj_errh;

static void file_errh(MPI_File *f, int *code, ...)
{
    (void)code;
    obj_errh->calls++;
    obj_errh->foreign += (void *)*f != obj_errh->expect;
}

static void win_errh(MPI_Win *w, int *code, ...)
{
    (void)code;
    obj_errh->calls++;
    obj_errh->foreign += (void *)*w != obj_errh->expect;
}

static void expect_obj_errh(struct obj_errh *rec, void *obj, int (*call)(void *),
                            const char *what)
{
    int before = rec->calls;
    obj_errh = rec;
    rec->expect = obj;
    call(obj);
    if (rec->calls != before + 1 || rec->foreign) {
        fprintf(stderr, "rank %d: %s: the user error handler was %s\n", rank, what,
                rec->calls != before + 1 ? "not called once" : "given another handle");
        MPI_Abort(MPI_COMM_WORLD, 11);
    }
}

static int call_file_errh(void *f) { return MPI_File_call_errhandler((MPI_File)f, MPI_ERR_OTHER); }
static int call_win_errh(void *w) { return MPI_Win_call_errhandler((MPI_Win)w, MPI_ERR_OTHER); }

static uint64_t mpiio(int steps)
{
    enum { B = 512 };                        /* ints per rank per step */
    struct { MPI_File fh, own; int step; uint64_t h; int out[B], back[B], rec[B / 4];
             char name[32]; struct obj_errh eh; } *st = pmalloc(sizeof *st);
    snprintf(st->name, sizeof st->name, "mpiio-r%d.dat", rank);
    MPI_Comm d;                              /* freed while the file stays open */
    MPI_Comm_dup(MPI_COMM_WORLD, &d);
    MPI_Info hints;                          /* freed too: the file keeps its hints */
    MPI_Info_create(&hints);
    MPI_Info_set(hints, MPIIO_HINT_KEY, MPIIO_HINT_VAL);
    MPI_File_open(d, "mpiio.dat", MPI_MODE_CREATE | MPI_MODE_RDWR, hints, &st->fh);
    MPI_Info_free(&hints);
    MPI_Comm_free(&d);
    /* The per-rank file inherits a user handler set as the files' default
     * (freed at once, and the default put back after the open). */
    MPI_Errhandler eh;
    MPI_File_create_errhandler(file_errh, &eh);
    MPI_File_set_errhandler(MPI_FILE_NULL, eh);
    MPI_Errhandler_free(&eh);
    MPI_File_open(MPI_COMM_SELF, st->name, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL,
                  &st->own);
    MPI_File_set_errhandler(MPI_FILE_NULL, MPI_ERRORS_RETURN);
    MPI_File_set_size(st->fh, 0);            /* a fresh start: no leftover of a killed run */
    MPI_File_set_size(st->own, 0);
    MPI_Datatype blk, mine;
    MPI_Type_contiguous(B, MPI_INT, &blk);
    MPI_Type_create_resized(blk, 0, (MPI_Aint)size * B * (MPI_Aint)sizeof(int), &mine);
    MPI_Type_commit(&mine);
    MPI_File_set_view(st->fh, (MPI_Offset)rank * B * (MPI_Offset)sizeof(int), MPI_INT, mine,
                      "native", MPI_INFO_NULL);
    MPI_Type_free(&mine);
    MPI_Type_free(&blk);
    MPI_File_set_atomicity(st->fh, 1);
    for (st->step = 0; st->step < steps; st->step++) {
        for (int i = 0; i < B; i++)
            st->out[i] = (int)mix((uint64_t)rank * 1000003u + (uint64_t)st->step, (uint64_t)i);
        for (int i = 0; i < B / 4; i++)
            st->rec[i] = st->out[i] ^ st->step;
        MPI_File_write_all(st->fh, st->out, B, MPI_INT, MPI_STATUS_IGNORE);
        MPI_Request r;
        MPI_File_iwrite(st->own, st->rec, B / 4, MPI_INT, &r);
        checkpoint();                        /* the iwrite pending */
        MPI_Wait(&r, MPI_STATUS_IGNORE);
        mpiio_expect_hint(st->fh);           /* a restart reopened it with its hints */
        expect_obj_errh(&st->eh, st->own, call_file_errh, "mpiio: the per-rank file");
        if (st->step > 0) {
            MPI_File_read_at_all(st->fh, (MPI_Offset)(st->step - 1) * B, st->back, B, MPI_INT,
                                 MPI_STATUS_IGNORE);
            st->h = mix(st->h, hash_bytes((unsigned char *)st->back, sizeof st->back));
        }
    }
    MPI_File_close(&st->fh);
    MPI_File_close(&st->own);
    uint64_t h = mix(st->h, hash_file(MPI_COMM_SELF, st->name));
    if (rank == 0)
        h = mix(h, hash_file(MPI_COMM_SELF, "mpiio.dat"));
    return h;
}

/* ---- anysrc ------------------------------------------------------------------- */
static uint64_t anysrc(int steps)
{
    struct { int step; int64_t sum; int next[1024]; uint64_t bad; int val[4]; } *st = pmalloc(sizeof *st);
    for (st->step = 0; st->step < steps; st->step++) {
        MPI_Request rq[4];
        for (int k = 0; k < 4; k++) {
            st->val[k] = st->step * 4 + k;
            MPI_Isend(&st->val[k], 1, MPI_INT, 0, 10 + (st->step + k) % 3, MPI_COMM_WORLD, &rq[k]);
        }
        checkpoint();
        if (rank == 0) {
            for (int m = 0; m < 4 * size; m++) {
                int x;
                MPI_Status s;
                MPI_Recv(&x, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &s);
                /* Per-sender order and the tag that went with the value. A
                 * sender may already be one step ahead (plain MPI has no
                 * synchronisation between steps), so values are checked
                 * against each sender's own sequence, not the step. */
                if (x != st->next[s.MPI_SOURCE] || s.MPI_TAG != 10 + (x / 4 + x % 4) % 3)
                    st->bad++;
                st->next[s.MPI_SOURCE]++;
                st->sum += (int64_t)x * (s.MPI_SOURCE + 1);
            }
        }
        MPI_Waitall(4, rq, MPI_STATUSES_IGNORE);
    }
    return mix((uint64_t)st->sum, st->bad);
}

/* ---- comms -------------------------------------------------------------------- */
/* The user error handler of comms(): counts its calls and keeps the class
 * of the last error in the record comms() points it at (persistent memory;
 * the pointer is set again before every use, globals are not restored). */
struct errh_rec { int calls, last_class; MPI_Comm expect; int foreign; };
static struct errh_rec *errh_rec;

static void count_errors(MPI_Comm *comm, int *code, ...)
{
    if (*comm != errh_rec->expect)      /* the handle the application holds */
        errh_rec->foreign++;
    int cls = -1;
    MPI_Error_class(*code, &cls);
    errh_rec->calls++;
    errh_rec->last_class = cls;
}

static void comms_fail(const char *what, const char *detail)
{
    fprintf(stderr, "rank %d: comms: %s (%s)\n", rank, what, detail);
    MPI_Abort(MPI_COMM_WORLD, 9);
}

static void comms_expect_name(int got_rc, const char *got, const char *want, const char *what)
{
    if (got_rc != MPI_SUCCESS || strcmp(got, want))
        comms_fail(what, got_rc != MPI_SUCCESS ? "the get_name call failed" : got);
}

/* A send to a rank the communicator does not have must come back as
 * MPI_ERR_RANK through the communicator's error handler: MPI_ERRORS_RETURN
 * (set or inherited) returns it, MPI_ERRORS_ARE_FATAL would abort the job,
 * and the user handler must count it. */
static void comms_expect_rank_error(MPI_Comm c, int n, struct errh_rec *rec, const char *what)
{
    int x = 0, cls = -1, before = rec ? rec->calls : 0;
    errh_rec = rec;
    if (rec)
        rec->expect = c;
    int rc = MPI_Send(&x, 1, MPI_INT, n + 5, 7, c);
    if (rc != MPI_SUCCESS)
        MPI_Error_class(rc, &cls);
    if (cls != MPI_ERR_RANK)
        comms_fail(what, rc == MPI_SUCCESS ? "the send to a missing rank succeeded"
                                           : "the send did not return MPI_ERR_RANK");
    if (rec && (rec->calls != before + 1 || rec->last_class != MPI_ERR_RANK))
        comms_fail(what, "the user error handler was not called once with MPI_ERR_RANK");
    if (rec && rec->foreign)
        comms_fail(what, "the user error handler got another communicator handle than "
                         "the application's");
}

static uint64_t comms(int steps)
{
    struct { MPI_Comm half, dup, hdup, ret; MPI_Request idreq; MPI_Datatype pair;
             int step, key; uint64_t h, *ctr; int out[2], in[2]; struct errh_rec uh; } *st =
        pmalloc(sizeof *st);
    MPI_Comm_split(MPI_COMM_WORLD, rank % 2, -rank, &st->half);   /* reversed rank order */
    MPI_Comm_dup(MPI_COMM_WORLD, &st->dup);
    /* Names on a communicator and on a derived datatype kept alive. */
    MPI_Comm_set_name(st->dup, "kill_app comms dup");
    MPI_Type_contiguous(2, MPI_INT, &st->pair);
    MPI_Type_commit(&st->pair);
    MPI_Type_set_name(st->pair, "kill_app int pair");
    /* Error handlers: a user one on `half` whose handle is freed at once
     * (the communicator keeps it; the MPI_Comm_idup of `half` inherits it),
     * and MPI_ERRORS_RETURN on `dup`, which `ret`, split from it, inherits. */
    MPI_Errhandler eh;
    MPI_Comm_create_errhandler(count_errors, &eh);
    MPI_Comm_set_errhandler(st->half, eh);
    MPI_Errhandler_free(&eh);
    MPI_Comm_set_errhandler(st->dup, MPI_ERRORS_RETURN);
    MPI_Comm_split(st->dup, 0, rank, &st->ret);
    /* A counter cached on `half` as an attribute, the way libraries keep
     * their state on communicators: found through the key every step. */
    MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, MPI_COMM_NULL_DELETE_FN, &st->key, NULL);
    st->ctr = pmalloc(sizeof *st->ctr);
    MPI_Comm_set_attr(st->half, st->key, st->ctr);
    int hn, hr;
    MPI_Comm_size(st->half, &hn);
    MPI_Comm_rank(st->half, &hr);
    for (st->step = 0; st->step < steps; st->step++) {
        MPI_Request rq[2];
        st->out[0] = rank * 100 + st->step;
        st->out[1] = rank * 100000 + st->step;
        MPI_Isend(&st->out[0], 1, MPI_INT, (hr + 1) % hn, 7, st->half, &rq[0]);
        MPI_Isend(&st->out[1], 1, MPI_INT, right, 7, st->dup, &rq[1]);
        if (st->step == 1)
            MPI_Comm_idup(st->half, &st->hdup, &st->idreq);
        checkpoint();                        /* step 1: the MPI_Comm_idup pending */
        if (st->step == 1)
            MPI_Wait(&st->idreq, MPI_STATUS_IGNORE);
        /* After every checkpoint (a restart too): the names, and the error
         * handlers, set, inherited and freed, still those of before. */
        char nm[MPI_MAX_OBJECT_NAME];
        int nl = 0;
        nm[0] = 0;
        comms_expect_name(MPI_Comm_get_name(st->dup, nm, &nl), nm, "kill_app comms dup",
                          "the name of the duplicated communicator changed");
        nm[0] = 0;
        comms_expect_name(MPI_Type_get_name(st->pair, nm, &nl), nm, "kill_app int pair",
                          "the name of the derived datatype changed");
        comms_expect_rank_error(st->dup, size, NULL, "MPI_ERRORS_RETURN set on dup");
        comms_expect_rank_error(st->ret, size, NULL,
                                "MPI_ERRORS_RETURN inherited by the split of dup");
        comms_expect_rank_error(st->half, hn, &st->uh, "the freed user error handler on half");
        if (st->step >= 1) {
            int before = st->uh.calls;
            errh_rec = &st->uh;
            st->uh.expect = st->hdup;
            MPI_Comm_call_errhandler(st->hdup, MPI_ERR_OTHER);
            if (st->uh.calls != before + 1 || st->uh.last_class != MPI_ERR_OTHER)
                comms_fail("the user error handler inherited by the MPI_Comm_idup of half",
                           "not called once with MPI_ERR_OTHER");
            if (st->uh.foreign)
                comms_fail("the user error handler inherited by the MPI_Comm_idup of half",
                           "it got another communicator handle than the application's");
        }
        st->h = mix(st->h, (uint64_t)st->uh.calls);
        int pin[2] = { -1, -1 }, me = 0;
        MPI_Comm_rank(st->ret, &me);
        MPI_Sendrecv(st->out, 1, st->pair, me, 9, pin, 2, MPI_INT, me, 9, st->ret,
                     MPI_STATUS_IGNORE);
        st->h = mix(st->h, (uint64_t)pin[0] ^ (uint64_t)pin[1] << 32);
        MPI_Status s;
        MPI_Recv(&st->in[1], 1, MPI_INT, MPI_ANY_SOURCE, 7, st->dup, &s);
        st->h = mix(st->h, (uint64_t)st->in[1] * 3 + (uint64_t)s.MPI_SOURCE);
        MPI_Recv(&st->in[0], 1, MPI_INT, (hr - 1 + hn) % hn, MPI_ANY_TAG, st->half, &s);
        st->h = mix(st->h, (uint64_t)st->in[0]);
        int sum = 0;
        MPI_Allreduce(&st->in[0], &sum, 1, MPI_INT, MPI_SUM, st->half);
        st->h = mix(st->h, (uint64_t)sum);
        uint64_t *c = NULL;
        int flag = 0;
        MPI_Comm_get_attr(st->half, st->key, &c, &flag);
        if (!flag || c != st->ctr) {
            fprintf(stderr, "rank %d: the attribute on the split communicator is %s\n", rank,
                    flag ? "another pointer" : "gone");
            MPI_Abort(MPI_COMM_WORLD, 8);
        }
        *c += (uint64_t)sum;
        st->h = mix(st->h, *c);
        if (st->step >= 1) {
            int mx = 0;
            MPI_Allreduce(&st->in[1], &mx, 1, MPI_INT, MPI_MAX, st->hdup);
            st->h = mix(st->h, (uint64_t)mx);
        }
        MPI_Waitall(2, rq, MPI_STATUSES_IGNORE);
    }
    MPI_Comm_free_keyval(&st->key);
    MPI_Type_free(&st->pair);
    MPI_Comm_free(&st->ret);
    return st->h;
}

/* ---- dtypes -------------------------------------------------------------------- */
struct particle { double x[3]; int id; char tag; };
static uint64_t dtypes(int steps)
{
    struct { MPI_Datatype ptype, ptype_r, col; int step; uint64_t h;
             struct particle ps[16], pr[16]; double m[100], mr[100]; } *st = pmalloc(sizeof *st);
    int bl[3] = { 3, 1, 1 };
    MPI_Aint disp[3] = { offsetof(struct particle, x), offsetof(struct particle, id),
                         offsetof(struct particle, tag) };
    MPI_Datatype tys[3] = { MPI_DOUBLE, MPI_INT, MPI_CHAR };
    MPI_Type_create_struct(3, bl, disp, tys, &st->ptype);
    MPI_Type_create_resized(st->ptype, 0, sizeof(struct particle), &st->ptype_r);
    MPI_Type_commit(&st->ptype_r);
    MPI_Type_free(&st->ptype);              /* the resized type keeps it alive */
    MPI_Type_vector(10, 1, 10, MPI_DOUBLE, &st->col);
    MPI_Type_commit(&st->col);
    for (st->step = 0; st->step < steps; st->step++) {
        for (int i = 0; i < 16; i++) {
            st->ps[i].x[0] = st->step + i;
            st->ps[i].x[1] = rank * 0.5;
            st->ps[i].x[2] = i * 0.25;
            st->ps[i].id = rank * 1000 + i;
            st->ps[i].tag = (char)('a' + (st->step + i) % 26);
        }
        for (int i = 0; i < 100; i++)
            st->m[i] = rank * 1e4 + st->step * 100 + i;
        MPI_Request rq[2];
        MPI_Isend(st->ps, 16, st->ptype_r, right, 1, MPI_COMM_WORLD, &rq[0]);
        MPI_Isend(st->m + 3, 1, st->col, right, 2, MPI_COMM_WORLD, &rq[1]);
        checkpoint();
        memset(st->pr, 0, sizeof st->pr);
        MPI_Recv(st->pr, 16, st->ptype_r, left, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Recv(st->mr, 10, MPI_DOUBLE, left, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (int i = 0; i < 16; i++)
            st->h = mix(st->h, hash_bytes((unsigned char *)st->pr[i].x, sizeof st->pr[i].x) ^
                                   (uint64_t)st->pr[i].id ^ (uint64_t)st->pr[i].tag << 40);
        st->h = mix(st->h, hash_bytes((unsigned char *)st->mr, 10 * sizeof(double)));
        MPI_Waitall(2, rq, MPI_STATUSES_IGNORE);
    }
    return st->h;
}

/* ---- irecv --------------------------------------------------------------------- */
static uint64_t irecv(int steps)
{
    struct { int step; uint64_t h; int in, out; MPI_Request rr, sr; } *st = pmalloc(sizeof *st);
    for (st->step = 0; st->step < steps; st->step++) {
        st->in = -1;
        MPI_Irecv(&st->in, 1, MPI_INT, left, 5, MPI_COMM_WORLD, &st->rr);
        checkpoint();                        /* the receive is pending across it */
        st->out = rank * 7 + st->step;
        MPI_Isend(&st->out, 1, MPI_INT, right, 5, MPI_COMM_WORLD, &st->sr);
        MPI_Status s;
        MPI_Wait(&st->rr, &s);
        st->h = mix(st->h, (uint64_t)st->in * 13 + (uint64_t)s.MPI_SOURCE);
        MPI_Wait(&st->sr, MPI_STATUS_IGNORE);
    }
    return st->h;
}

/* ---- coll ----------------------------------------------------------------------- */
/* A user reduction on (int, int) pairs that checks it is given the
 * datatype handle the application holds (its own, not MPI's). */
static MPI_Datatype coll_pair;
static int coll_foreign;

static void pair_sum(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    coll_foreign += *dt != coll_pair;
    int *a = in, *b = inout;
    for (int i = 0; i < 2 * *len; i++)
        b[i] += a[i];
}

static uint64_t coll(int steps)
{
    struct { int step; uint64_t h; int *a, *b; long nv, ns; MPI_Datatype pair; MPI_Op op; } *st =
        pmalloc(sizeof *st);
    st->a = pmalloc(sizeof(int) * (size_t)size);
    st->b = pmalloc(sizeof(int) * (size_t)size);
    MPI_Type_contiguous(2, MPI_INT, &st->pair);
    MPI_Type_commit(&st->pair);
    MPI_Op_create(pair_sum, 1, &st->op);
    for (st->step = 0; st->step < steps; st->step++) {
        long v = rank + st->step, s = 0;
        MPI_Allreduce(&v, &s, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
        int root = st->step % size, bv = root == rank ? st->step * 3 : -1;
        MPI_Bcast(&bv, 1, MPI_INT, root, MPI_COMM_WORLD);
        for (int i = 0; i < size; i++)
            st->a[i] = rank * 100 + i + st->step;
        MPI_Alltoall(st->a, 1, MPI_INT, st->b, 1, MPI_INT, MPI_COMM_WORLD);
        MPI_Request nb;
        st->nv = (long)rank * st->step + 1;
        MPI_Iallreduce(&st->nv, &st->ns, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD, &nb);
        checkpoint();                        /* the Iallreduce pending on every rank */
        MPI_Wait(&nb, MPI_STATUS_IGNORE);
        MPI_Allgather(&st->b[0], 1, MPI_INT, st->a, 1, MPI_INT, MPI_COMM_WORLD);
        st->h = mix(st->h, (uint64_t)s ^ (uint64_t)bv << 20 ^ (uint64_t)st->ns << 40);
        int pv[2] = { rank, st->step }, ps[2] = { 0, 0 };
        coll_pair = st->pair;                /* globals: set again after a restart */
        coll_foreign = 0;
        MPI_Allreduce(pv, ps, 1, st->pair, st->op, MPI_COMM_WORLD);
        if (coll_foreign) {
            fprintf(stderr, "rank %d: coll: the user op got another datatype handle than the "
                    "application's\n", rank);
            MPI_Abort(MPI_COMM_WORLD, 12);
        }
        st->h = mix(st->h, (uint64_t)ps[0] ^ (uint64_t)ps[1] << 32);
        for (int i = 0; i < size; i++)
            st->h = mix(st->h, (uint64_t)st->b[i] ^ (uint64_t)st->a[i] << 32);
    }
    MPI_Op_free(&st->op);
    MPI_Type_free(&st->pair);
    return st->h;
}

/* ---- inter ------------------------------------------------------------------------ */
/* An inter-communicator between the even and the odd ranks: the even send
 * to odd ones (not the same local rank: the remote group's numbering)
 * before the checkpoint, the odd receive after it; an inter-collective and
 * a merged communicator every step. */
static uint64_t inter(int steps)
{
    struct { int step; uint64_t h; MPI_Comm half, ic, merged; int out, in; } *st =
        pmalloc(sizeof *st);
    int color = rank % 2;
    MPI_Comm_split(MPI_COMM_WORLD, color, rank, &st->half);
    MPI_Intercomm_create(st->half, 0, MPI_COMM_WORLD, 1 - color, 11, &st->ic);
    MPI_Intercomm_merge(st->ic, color, &st->merged);
    int lr, rs;
    MPI_Comm_rank(st->ic, &lr);
    MPI_Comm_remote_size(st->ic, &rs);
    for (st->step = 0; st->step < steps; st->step++) {
        MPI_Request r = MPI_REQUEST_NULL;
        st->out = rank * 1000 + st->step;
        if (color == 0)
            MPI_Isend(&st->out, 1, MPI_INT, rs - 1 - lr % rs, 5, st->ic, &r);
        checkpoint();                          /* the sends in flight */
        MPI_Wait(&r, MPI_STATUS_IGNORE);
        if (color == 1) {
            int n = 0;
            for (int q = 0; q < rs; q++)
                n += rs - 1 - q % rs == lr;
            for (int i = 0; i < n; i++) {
                MPI_Status s;
                MPI_Recv(&st->in, 1, MPI_INT, MPI_ANY_SOURCE, 5, st->ic, &s);
                st->h = mix(st->h, (uint64_t)st->in ^ (uint64_t)s.MPI_SOURCE << 40);
            }
        }
        int mine = rank + st->step, theirs = 0, all = 0;
        MPI_Allreduce(&mine, &theirs, 1, MPI_INT, MPI_SUM, st->ic);   /* the other group's */
        MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MAX, st->merged);
        st->h = mix(st->h, (uint64_t)theirs ^ (uint64_t)all << 32);
    }
    MPI_Comm_free(&st->merged);
    MPI_Comm_free(&st->ic);
    MPI_Comm_free(&st->half);
    return st->h;
}

/* ---- rma -------------------------------------------------------------------------- */
/* Three windows, each with operations not yet completed when the checkpoint
 * is taken: an allocated one in a fence epoch (puts and accumulates issued
 * just before), one under MPI_Win_lock_all for the whole run (fetch-and-op
 * on rank 0's counter and puts, completed by the checkpoint's flush), and
 * a dynamic one whose shared lock on the right neighbour is held across
 * the checkpoint. */
static uint64_t rma(int steps)
{
    struct {
        int step; uint64_t h;
        MPI_Win fw, lw, dw;
        long *fmem, *lmem, *dbuf;
        MPI_Aint *daddr;
        struct obj_errh eh;
        int key;
    } *st = pmalloc(sizeof *st);
    /* The fence window: a block of RMA_BLOCK longs from each rank (large
     * enough that Open MPI does not send it eagerly: it moves at the fence),
     * then n accumulation slots. */
    enum { RMA_BLOCK = 8192 };
    int n = size;
    size_t flen = ((size_t)n * RMA_BLOCK + (size_t)n) * sizeof(long);
    MPI_Win_allocate((MPI_Aint)flen, sizeof(long), MPI_INFO_NULL, MPI_COMM_WORLD, &st->fmem,
                     &st->fw);
    memset(st->fmem, 0, flen);
    long *block = pmalloc(RMA_BLOCK * sizeof(long));
    st->lmem = pmalloc(2 * sizeof(long));
    MPI_Win_create(st->lmem, 2 * sizeof(long), sizeof(long), MPI_INFO_NULL, MPI_COMM_WORLD,
                   &st->lw);
    st->dbuf = pmalloc(sizeof(long));
    st->daddr = pmalloc((size_t)n * sizeof(MPI_Aint));
#ifndef KILL_APP_PLAIN
    /* Memory no restart brings back (a mapping of its own) is refused by
     * name, and the job goes on. */
    void *anon = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MPI_Win refused = MPI_WIN_NULL;
    if (anon == MAP_FAILED ||
        MPI_Win_create(anon, 4096, 1, MPI_INFO_NULL, MPI_COMM_WORLD, &refused) !=
            MPI_ERR_UNSUPPORTED_OPERATION) {
        fprintf(stderr, "rank %d: rma: a window over unsaved memory was not refused\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 14);
    }
    munmap(anon, 4096);
#endif
    MPI_Win_create_dynamic(MPI_INFO_NULL, MPI_COMM_WORLD, &st->dw);
    MPI_Win_attach(st->dw, st->dbuf, sizeof(long));
    MPI_Aint mine;
    MPI_Get_address(st->dbuf, &mine);
    MPI_Allgather(&mine, 1, MPI_AINT, st->daddr, 1, MPI_AINT, MPI_COMM_WORLD);
    MPI_Errhandler eh;                         /* a user handler, its handle freed */
    MPI_Win_create_errhandler(win_errh, &eh);
    MPI_Win_set_errhandler(st->lw, eh);
    MPI_Errhandler_free(&eh);
    MPI_Win_create_keyval(MPI_WIN_NULL_COPY_FN, MPI_WIN_NULL_DELETE_FN, &st->key, NULL);
    MPI_Win_set_attr(st->lw, st->key, st->lmem);   /* found through the key every step */
    MPI_Win_fence(MPI_MODE_NOPRECEDE, st->fw);
    MPI_Win_lock_all(0, st->lw);
    MPI_Barrier(MPI_COMM_WORLD);              /* every window is ready */
    for (st->step = 0; st->step < steps; st->step++) {
        long v = (long)rank * 1000 + st->step, one = rank + 1, got = 0;
        for (int i = 0; i < RMA_BLOCK; i++)
            block[i] = v * RMA_BLOCK + i;
        MPI_Put(block, RMA_BLOCK, MPI_LONG, right, (MPI_Aint)rank * RMA_BLOCK, RMA_BLOCK,
                MPI_LONG, st->fw);
        MPI_Accumulate(&one, 1, MPI_LONG, 0, (MPI_Aint)n * RMA_BLOCK + st->step % n, 1,
                       MPI_LONG, MPI_SUM, st->fw);
        MPI_Fetch_and_op(&one, &got, MPI_LONG, 0, 0, MPI_SUM, st->lw);
        long w = v * 7, before = -1;
        MPI_Request rg;                        /* request-based, pending across it too */
        MPI_Rget(&before, 1, MPI_LONG, left, 1, 1, MPI_LONG, st->lw, &rg);
        MPI_Wait(&rg, MPI_STATUS_IGNORE);      /* nobody writes left's slot 1 yet: */
        MPI_Barrier(MPI_COMM_WORLD);           /* the last step's value */
        MPI_Put(&w, 1, MPI_LONG, right, 1, 1, MPI_LONG, st->lw);
        MPI_Request rq;
        long probe = -1;
        MPI_Rget(&probe, 1, MPI_LONG, rank, 0, 1, MPI_LONG, st->lw, &rq);
        MPI_Win_lock(MPI_LOCK_SHARED, right, 0, st->dw);
        MPI_Put(&v, 1, MPI_LONG, right, st->daddr[right], 1, MPI_LONG, st->dw);
        checkpoint();                          /* all of it still in flight */
        MPI_Wait(&rq, MPI_STATUS_IGNORE);
        expect_obj_errh(&st->eh, st->lw, call_win_errh, "rma: the lock_all window");
        void *found = NULL;
        int flag = 0;
        MPI_Win_get_attr(st->lw, st->key, &found, &flag);
        if (!flag || found != st->lmem) {
            fprintf(stderr, "rank %d: rma: the attribute on the lock_all window is %s\n", rank,
                    flag ? "another value" : "gone");
            MPI_Abort(MPI_COMM_WORLD, 13);
        }
        MPI_Win_unlock(right, st->dw);
        MPI_Win_fence(0, st->fw);
        MPI_Win_flush_all(st->lw);
        MPI_Barrier(MPI_COMM_WORLD);           /* every put and fetch-and-op is in */
        long counter = 0;
        MPI_Get(&counter, 1, MPI_LONG, 0, 0, 1, MPI_LONG, st->lw);
        MPI_Win_flush(0, st->lw);
        MPI_Win_sync(st->lw);
        st->h = mix(st->h, (uint64_t)counter ^ (uint64_t)st->lmem[1] << 24 ^
                               (uint64_t)*st->dbuf << 44);
        st->h = mix(st->h, hash_bytes((const unsigned char *)st->fmem, flen));
        st->h = mix(st->h, (uint64_t)before);
        MPI_Barrier(MPI_COMM_WORLD);           /* nobody adds before everyone read */
    }
    MPI_Win_unlock_all(st->lw);
    MPI_Win_fence(MPI_MODE_NOSUCCEED, st->fw);
    MPI_Win_detach(st->dw, st->dbuf);
    MPI_Win_free(&st->dw);
    MPI_Win_delete_attr(st->lw, st->key);
    MPI_Win_free_keyval(&st->key);
    MPI_Win_free(&st->lw);
    MPI_Win_free(&st->fw);
    return st->h;
}

/* ---- thread --------------------------------------------------------------------- */
struct worker { int steps; double acc; };

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->steps; i++) {
        for (int k = 0; k < 20000; k++)
            w->acc += 1.0 / (1.0 + i * 20000.0 + k);
        if (cr_checkpoint() < 0)             /* joins main's checkpoint rendezvous */
            return NULL;
    }
    return w;
}

static uint64_t thread(int steps)
{
    struct { int step; uint64_t h; crthread_t t; struct worker w; int out, in; } *st =
        pmalloc(sizeof *st);
    st->w.steps = steps;
    if (crthread_create(&st->t, worker_main, &st->w) != 0) {
        fprintf(stderr, "rank %d: crthread_create failed\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 5);
    }
    for (st->step = 0; st->step < steps; st->step++) {
        MPI_Request r;
        st->out = rank + st->step;
        MPI_Isend(&st->out, 1, MPI_INT, right, 0, MPI_COMM_WORLD, &r);
        checkpoint();
        MPI_Recv(&st->in, 1, MPI_INT, left, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Wait(&r, MPI_STATUS_IGNORE);
        st->h = mix(st->h, (uint64_t)st->in);
    }
    void *ret = NULL;
    if (crthread_join(st->t, &ret) != 0 || ret != &st->w) {
        fprintf(stderr, "rank %d: worker failed\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 6);
    }
    uint64_t bits;
    memcpy(&bits, &st->w.acc, sizeof bits);
    return mix(st->h, bits);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "ring";
    int steps = argc > 2 ? atoi(argv[2]) : 30;
    int provided;
    if (!strcmp(what, "thread")) {
        MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
        if (provided < MPI_THREAD_FUNNELED) {
            fprintf(stderr, "MPI_THREAD_FUNNELED not provided\n");
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    } else {
        MPI_Init(&argc, &argv);
    }
    who_am_i();
    static const struct { const char *name; uint64_t (*fn)(int); } sc[] = {
        { "ring", ring }, { "halo", halo }, { "anysrc", anysrc }, { "comms", comms },
        { "dtypes", dtypes }, { "irecv", irecv }, { "coll", coll }, { "thread", thread },
        { "persist", persist }, { "mpiio", mpiio }, { "rma", rma },
        { "inter", inter },
    };
    uint64_t (*fn)(int) = NULL;
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++)
        if (!strcmp(sc[i].name, what))
            fn = sc[i].fn;
    if (!fn) {
        if (rank == 0)
            fprintf(stderr, "kill_app: unknown scenario '%s'\n", what);
        MPI_Finalize();
        return 2;
    }
    const char *bm = getenv("KILL_APP_BALLAST_MIB");
    size_t ballast_mib = bm ? (size_t)strtoul(bm, NULL, 10) : 0;
    uint64_t *ballast = NULL;
    if (ballast_mib) {
        ballast = crmalloc(ballast_mib << 20);
        if (!ballast) {
            fprintf(stderr, "kill_app: cannot allocate %zu MiB of ballast\n", ballast_mib);
            MPI_Abort(MPI_COMM_WORLD, 7);
        }
        for (size_t i = 0; i < ballast_mib; i++)
            ballast[i << 17] = mix((uint64_t)rank, i);
    }
    uint64_t h = fn(steps), *all = malloc(sizeof *all * (size_t)size);
    for (size_t i = 0; i < ballast_mib; i++)
        h = mix(h, ballast[i << 17]);
    crfree(ballast);
    MPI_Gather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        uint64_t t = 0;
        for (int i = 0; i < size; i++)
            t = mix(t, all[i]);
        printf("%s ranks=%d steps=%d checksum=%016llx\n", what, size, steps,
               (unsigned long long)t);
        if (failures)     /* of this process (a restart counts again) */
            fprintf(stderr, "kill_app: %d checkpoint(s) failed\n", failures);
    }
    free(all);
    MPI_Finalize();
    return 0;
}
