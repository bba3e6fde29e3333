/*
 * test_drain.c - channel draining within one run, under mpirun.
 *
 * Each test leaves messages in flight (sent, not yet received: eager 1 B,
 * 64 KiB, and rendezvous 4 MiB), runs the drain half of a checkpoint
 * (crmpi_quiesce + crmpi_resume, exactly what crmpi_checkpoint does around
 * the runtime's save), then receives them through every receive-side path
 * and checks contents and MPI_Status (source, tag, count). The drain
 * statistics prove that messages really went through the queue: a test
 * whose messages were all delivered by MPI itself would not test the
 * queue, so each asserts drained > 0 summed over ranks.
 */
#include "cutest_mpi.h"
#include "drain.h"
#include "protocol.h"
#include "wrap_support.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

static int rank, size, left, right;
static const int sizes[] = { 1, 64 << 10, 4 << 20 };

static void fill(unsigned char *b, size_t n, int seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 12));
}

static int check(const unsigned char *b, size_t n, int seed)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed * 131 + i * 7 + (i >> 12)))
            return 0;
    return 1;
}

/* Run the drain; returns messages drained over all ranks. */
static unsigned long long checkpoint_drain(void)
{
    CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);
    struct crmpi_drain_stats st;
    crmpi_drain_last_stats(&st);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    unsigned long long mine = st.drained_msgs, all = 0;
    PMPI_Allreduce(&mine, &all, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    return all;
}

static void test_ring_messages_in_flight_all_sizes_delivered_after_drain(void)
{
    MPI_Request sreq[3];
    unsigned char *sb[3], *rb[3];
    for (int i = 0; i < 3; i++) {
        sb[i] = malloc((size_t)sizes[i]);
        rb[i] = calloc(1, (size_t)sizes[i]);
        fill(sb[i], (size_t)sizes[i], rank * 10 + i);
        MPI_Isend(sb[i], sizes[i], MPI_BYTE, right, 100 + i, MPI_COMM_WORLD, &sreq[i]);
    }
    CU_ASSERT_TRUE(checkpoint_drain() >= (unsigned long long)size);
    /* Sends completed in the drain: Waitall returns at once. */
    CU_ASSERT_EQUAL(MPI_Waitall(3, sreq, MPI_STATUSES_IGNORE), MPI_SUCCESS);
    for (int i = 2; i >= 0; i--) {   /* reverse order: matching by tag */
        MPI_Status st;
        CU_ASSERT_EQUAL(MPI_Recv(rb[i], sizes[i], MPI_BYTE, left, 100 + i, MPI_COMM_WORLD, &st),
                        MPI_SUCCESS);
        int n = -1;
        MPI_Get_count(&st, MPI_BYTE, &n);
        CU_ASSERT_EQUAL(n, sizes[i]);
        CU_ASSERT_EQUAL(st.MPI_SOURCE, left);
        CU_ASSERT_EQUAL(st.MPI_TAG, 100 + i);
        CU_ASSERT_TRUE(check(rb[i], (size_t)sizes[i], left * 10 + i));
        free(sb[i]);
        free(rb[i]);
    }
    CU_ASSERT_TRUE(mq_empty(&crmpi_st->queue));
}

static void test_any_source_any_tag_keep_per_sender_order(void)
{
    /* Every rank sends 3 ordered messages to rank 0 with varying tags. */
    int v[3];
    MPI_Request rq[3];
    for (int k = 0; k < 3; k++) {
        v[k] = rank * 1000 + k;
        MPI_Isend(&v[k], 1, MPI_INT, 0, 7 + k % 2, MPI_COMM_WORLD, &rq[k]);
    }
    checkpoint_drain();
    MPI_Waitall(3, rq, MPI_STATUSES_IGNORE);
    if (rank == 0) {
        int next[64] = { 0 }, ok = 1;
        for (int m = 0; m < 3 * size; m++) {
            int x;
            MPI_Status st;
            int flag = 0;
            MPI_Status pst;
            MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &pst);
            MPI_Recv(&x, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
            if (flag)
                ok &= pst.MPI_SOURCE == st.MPI_SOURCE && pst.MPI_TAG == st.MPI_TAG;
            ok &= x == st.MPI_SOURCE * 1000 + next[st.MPI_SOURCE];
            ok &= st.MPI_TAG == 7 + next[st.MPI_SOURCE] % 2;
            next[st.MPI_SOURCE]++;
        }
        CU_ASSERT_TRUE(ok);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

static void test_pending_irecv_completes_or_is_reposted(void)
{
    /* A: message arrives before the checkpoint (completed in the drain);
     * B: message sent only after the checkpoint (deferred, re-posted). */
    int a = -1, b = -1, va = rank + 1, vb = rank + 2;
    MPI_Request ra, rb, sa, sb;
    MPI_Irecv(&a, 1, MPI_INT, left, 70, MPI_COMM_WORLD, &ra);
    MPI_Irecv(&b, 1, MPI_INT, left, 71, MPI_COMM_WORLD, &rb);
    MPI_Isend(&va, 1, MPI_INT, right, 70, MPI_COMM_WORLD, &sa);
    MPI_Barrier(MPI_COMM_WORLD);
    CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);
    struct crmpi_drain_stats st;
    crmpi_drain_last_stats(&st);
    CU_ASSERT_EQUAL(st.deferred_recvs, 1);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    MPI_Isend(&vb, 1, MPI_INT, right, 71, MPI_COMM_WORLD, &sb);
    MPI_Status s1, s2;
    MPI_Wait(&ra, &s1);
    MPI_Wait(&rb, &s2);
    CU_ASSERT_EQUAL(a, left + 1);
    CU_ASSERT_EQUAL(b, left + 2);
    CU_ASSERT_TRUE(s1.MPI_SOURCE == left && s1.MPI_TAG == 70);
    CU_ASSERT_TRUE(s2.MPI_SOURCE == left && s2.MPI_TAG == 71);
    MPI_Wait(&sa, MPI_STATUS_IGNORE);
    MPI_Wait(&sb, MPI_STATUS_IGNORE);
}

static void test_large_pending_irecv_completed_by_drain(void)
{
    /* A posted 4 MiB receive whose rendezvous transfer is in progress at
     * the checkpoint: the drain cannot cancel a matched receive and must
     * complete it; Waitany afterwards reports it at its own index. (When
     * the message arrives only after the cancel, the re-post serves it
     * from the queue instead: that is crmpi_repost's queue path.) */
    int n = 4 << 20;
    unsigned char *sbuf = malloc((size_t)n), *rbuf = calloc(1, (size_t)n);
    fill(sbuf, (size_t)n, rank);
    MPI_Request rr, sr;
    MPI_Irecv(rbuf, n, MPI_BYTE, left, 81, MPI_COMM_WORLD, &rr);
    MPI_Isend(sbuf, n, MPI_BYTE, right, 81, MPI_COMM_WORLD, &sr);
    checkpoint_drain();
    MPI_Status st;
    int idx = -1;
    MPI_Request both[2] = { MPI_REQUEST_NULL, rr };
    CU_ASSERT_EQUAL(MPI_Waitany(2, both, &idx, &st), MPI_SUCCESS);
    CU_ASSERT_EQUAL(idx, 1);
    int cnt;
    MPI_Get_count(&st, MPI_BYTE, &cnt);
    CU_ASSERT_EQUAL(cnt, n);
    CU_ASSERT_TRUE(check(rbuf, (size_t)n, left));
    MPI_Wait(&sr, MPI_STATUS_IGNORE);
    free(sbuf);
    free(rbuf);
}

static void test_split_and_dup_comms_traffic_isolated(void)
{
    MPI_Comm half, dup;
    MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &half);
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    int hn, hr;
    MPI_Comm_size(half, &hn);
    MPI_Comm_rank(half, &hr);
    int x = 500 + rank, y = 900 + rank, gx = -1, gy = -1, gw = -1, w = 300 + rank;
    MPI_Request r[3];
    /* Same tag on three communicators: each must land on its own. */
    MPI_Isend(&x, 1, MPI_INT, (hr + 1) % hn, 5, half, &r[0]);
    MPI_Isend(&y, 1, MPI_INT, right, 5, dup, &r[1]);
    MPI_Isend(&w, 1, MPI_INT, right, 5, MPI_COMM_WORLD, &r[2]);
    CU_ASSERT_TRUE(checkpoint_drain() >= (unsigned long long)(3 * size));
    MPI_Status st;
    MPI_Recv(&gy, 1, MPI_INT, MPI_ANY_SOURCE, 5, dup, &st);
    CU_ASSERT_EQUAL(gy, 900 + left);
    MPI_Recv(&gw, 1, MPI_INT, left, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
    CU_ASSERT_EQUAL(gw, 300 + left);
    MPI_Recv(&gx, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, half, &st);
    int hleft = (hr - 1 + hn) % hn;
    CU_ASSERT_EQUAL(st.MPI_SOURCE, hleft);
    int wl;
    MPI_Group hg, wg;
    MPI_Comm_group(half, &hg);
    MPI_Comm_group(MPI_COMM_WORLD, &wg);
    MPI_Group_translate_ranks(hg, 1, &hleft, wg, &wl);
    CU_ASSERT_EQUAL(gx, 500 + wl);
    MPI_Waitall(3, r, MPI_STATUSES_IGNORE);
    MPI_Group_free(&hg);
    MPI_Group_free(&wg);
    MPI_Comm_free(&half);
    MPI_Comm_free(&dup);
}

static void test_derived_datatype_message_unpacked_into_other_layout(void)
{
    /* Send a column (vector type), receive it as contiguous ints and as a
     * column of another matrix: the queue holds packed bytes. */
    MPI_Datatype col;
    MPI_Type_vector(8, 1, 8, MPI_DOUBLE, &col);
    MPI_Type_commit(&col);
    double m[64], got[8], m2[64];
    for (int i = 0; i < 64; i++) {
        m[i] = rank * 1000 + i;
        m2[i] = -1;
    }
    MPI_Request r[2];
    MPI_Isend(m + 3, 1, col, right, 11, MPI_COMM_WORLD, &r[0]);
    MPI_Isend(m + 5, 1, col, right, 12, MPI_COMM_WORLD, &r[1]);
    checkpoint_drain();
    MPI_Status st;
    MPI_Recv(got, 8, MPI_DOUBLE, left, 11, MPI_COMM_WORLD, &st);
    int cnt, ok = 1;
    MPI_Get_count(&st, MPI_DOUBLE, &cnt);
    CU_ASSERT_EQUAL(cnt, 8);
    for (int i = 0; i < 8; i++)
        ok &= got[i] == left * 1000 + i * 8 + 3;
    MPI_Recv(m2 + 1, 1, col, left, 12, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, col, &cnt);
    CU_ASSERT_EQUAL(cnt, 1);
    for (int i = 0; i < 64; i++)
        ok &= m2[i] == (i % 8 == 1 ? left * 1000 + (i - 1) + 5 : -1);
    CU_ASSERT_TRUE(ok);
    MPI_Waitall(2, r, MPI_STATUSES_IGNORE);
    MPI_Type_free(&col);
}

static void test_probe_mprobe_sendrecv_testany_served_from_queue(void)
{
    int v[4] = { rank, rank + 10, rank + 20, rank + 30 };
    MPI_Request r[4];
    for (int k = 0; k < 4; k++)
        MPI_Isend(&v[k], 1, MPI_INT, right, 40 + k, MPI_COMM_WORLD, &r[k]);
    CU_ASSERT_TRUE(checkpoint_drain() >= (unsigned long long)(4 * size));
    MPI_Status st;
    MPI_Probe(left, 40, MPI_COMM_WORLD, &st);
    int cnt;
    MPI_Get_count(&st, MPI_INT, &cnt);
    CU_ASSERT_TRUE(cnt == 1 && st.MPI_TAG == 40);
    MPI_Message msg;
    int x = -1;
    MPI_Mprobe(left, 41, MPI_COMM_WORLD, &msg, &st);
    MPI_Mrecv(&x, 1, MPI_INT, &msg, &st);
    CU_ASSERT_EQUAL(x, left + 10);
    CU_ASSERT_PTR_EQUAL(msg, MPI_MESSAGE_NULL);
    int y = -1, out = rank;
    MPI_Sendrecv(&out, 1, MPI_INT, right, 99, &y, 1, MPI_INT, left, 42, MPI_COMM_WORLD, &st);
    CU_ASSERT_EQUAL(y, left + 20);
    /* the tag-99 message goes through MPI, not the queue */
    int z = -1;
    MPI_Recv(&z, 1, MPI_INT, left, 99, MPI_COMM_WORLD, &st);
    CU_ASSERT_EQUAL(z, left);
    int a = -1, b = -1, idx = -1, flag = 0;
    MPI_Request rr[2];
    MPI_Irecv(&a, 1, MPI_INT, left, 40, MPI_COMM_WORLD, &rr[0]);   /* from the queue */
    MPI_Irecv(&b, 1, MPI_INT, left, 43, MPI_COMM_WORLD, &rr[1]);   /* from the queue */
    MPI_Testany(2, rr, &idx, &flag, &st);
    CU_ASSERT_TRUE(flag && idx == 0 && a == left && st.MPI_TAG == 40);
    MPI_Wait(&rr[1], &st);
    CU_ASSERT_EQUAL(b, left + 30);
    MPI_Waitall(4, r, MPI_STATUSES_IGNORE);
}

static void test_truncation_reported_from_queue(void)
{
    int v[4] = { 1, 2, 3, 4 }, got[2] = { 0, 0 };
    MPI_Request r;
    MPI_Isend(v, 4, MPI_INT, right, 55, MPI_COMM_WORLD, &r);
    checkpoint_drain();
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Status st;
    int rc = MPI_Recv(got, 2, MPI_INT, left, 55, MPI_COMM_WORLD, &st);
    CU_ASSERT_EQUAL(rc, MPI_ERR_TRUNCATE);
    CU_ASSERT_TRUE(got[0] == 1 && got[1] == 2);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Wait(&r, MPI_STATUS_IGNORE);
}

static void test_collectives_and_empty_drain_every_step(void)
{
    /* Nothing in flight: the drain must find nothing and cost nothing. */
    for (int step = 0; step < 20; step++) {
        int s = 0, one = 1;
        MPI_Allreduce(&one, &s, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        CU_ASSERT_EQUAL(s, size);
        CU_ASSERT_EQUAL(checkpoint_drain(), 0);
    }
}

static void test_freed_isend_request_is_settled_by_drain(void)
{
    int v = rank;
    MPI_Request r;
    MPI_Isend(&v, 1, MPI_INT, right, 66, MPI_COMM_WORLD, &r);
    MPI_Request_free(&r);
    CU_ASSERT_PTR_EQUAL(r, MPI_REQUEST_NULL);
    checkpoint_drain();
    int got = -1;
    MPI_Recv(&got, 1, MPI_INT, left, 66, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    CU_ASSERT_EQUAL(got, left);
    /* no request object is left behind */
    size_t live = 0;
    for (struct vh *h = crmpi_st->live[VH_REQ].head; h; h = h->next)
        live++;
    CU_ASSERT_EQUAL(live, 0);
}

/* Persistent requests (MPI_Send_init/MPI_Recv_init) across drains, reused
 * every round: round 0 starts only the sends before the checkpoint (the
 * messages wait in the queue, the receives started after it are served
 * from there); round 1 starts everything before it (receives completed or
 * deferred and started again); round 2 starts only the receives (every
 * one deferred by the drain, started again after it, matched by sends
 * made after it). */
static void test_persistent_requests_across_drains_every_round(void)
{
    MPI_Request sreq[3], rreq[3];
    unsigned char *sb[3], *rb[3];
    for (int i = 0; i < 3; i++) {
        sb[i] = malloc((size_t)sizes[i]);
        rb[i] = malloc((size_t)sizes[i]);
        CU_ASSERT_EQUAL_FATAL(MPI_Send_init(sb[i], sizes[i], MPI_BYTE, right, 200 + i,
                                            MPI_COMM_WORLD, &sreq[i]), MPI_SUCCESS);
        CU_ASSERT_EQUAL_FATAL(MPI_Recv_init(rb[i], sizes[i], MPI_BYTE, left, 200 + i,
                                            MPI_COMM_WORLD, &rreq[i]), MPI_SUCCESS);
    }
    unsigned long long drained[3] = { 0, 0, 0 }, deferred = 0;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++) {
            fill(sb[i], (size_t)sizes[i], rank * 10 + i + round * 100);
            memset(rb[i], 0, (size_t)sizes[i]);
        }
        if (round <= 1)
            CU_ASSERT_EQUAL(MPI_Startall(3, sreq), MPI_SUCCESS);
        if (round >= 1)
            CU_ASSERT_EQUAL(MPI_Startall(3, rreq), MPI_SUCCESS);
        MPI_Barrier(MPI_COMM_WORLD);
        CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);
        struct crmpi_drain_stats ds;
        crmpi_drain_last_stats(&ds);
        CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
        drained[round] = ds.drained_msgs;
        if (round == 2)
            deferred = ds.deferred_recvs;
        if (round == 0)
            CU_ASSERT_EQUAL(MPI_Startall(3, rreq), MPI_SUCCESS);
        if (round == 2)
            CU_ASSERT_EQUAL(MPI_Startall(3, sreq), MPI_SUCCESS);
        MPI_Status st[3];
        CU_ASSERT_EQUAL(MPI_Waitall(3, rreq, st), MPI_SUCCESS);
        CU_ASSERT_EQUAL(MPI_Waitall(3, sreq, MPI_STATUSES_IGNORE), MPI_SUCCESS);
        for (int i = 0; i < 3; i++) {
            int cnt = -1;
            MPI_Get_count(&st[i], MPI_BYTE, &cnt);
            CU_ASSERT_EQUAL(cnt, sizes[i]);
            CU_ASSERT_EQUAL(st[i].MPI_SOURCE, left);
            CU_ASSERT_EQUAL(st[i].MPI_TAG, 200 + i);
            CU_ASSERT_TRUE(check(rb[i], (size_t)sizes[i], left * 10 + i + round * 100));
            CU_ASSERT_PTR_NOT_EQUAL(rreq[i], MPI_REQUEST_NULL);
            CU_ASSERT_PTR_NOT_EQUAL(sreq[i], MPI_REQUEST_NULL);
        }
    }
    /* the queue and the re-start really were used */
    unsigned long long all = 0;
    PMPI_Allreduce(&drained[0], &all, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    CU_ASSERT_TRUE(all > 0);
    CU_ASSERT_EQUAL(deferred, 3);
    CU_ASSERT_EQUAL(drained[2], 0);
    for (int i = 0; i < 3; i++) {
        MPI_Request_free(&sreq[i]);
        MPI_Request_free(&rreq[i]);
        free(sb[i]);
        free(rb[i]);
    }
}

/* Non-blocking collectives every rank posted before the checkpoint are
 * completed by the drain (nobody tested them before: it is the drain that
 * completes them) and hand their results over afterwards. */
static void test_pending_collectives_posted_everywhere_complete_in_drain(void)
{
    long v = rank + 1, sum = 0;
    int got[64] = { 0 };
    MPI_Request r[3];
    MPI_Iallreduce(&v, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD, &r[0]);
    MPI_Ibarrier(MPI_COMM_WORLD, &r[1]);
    MPI_Iallgather(&rank, 1, MPI_INT, got, 1, MPI_INT, MPI_COMM_WORLD, &r[2]);
    CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);
    struct crmpi_drain_stats ds;
    crmpi_drain_last_stats(&ds);
    CU_ASSERT_EQUAL(ds.completed_colls, 3);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    CU_ASSERT_EQUAL(MPI_Waitall(3, r, MPI_STATUSES_IGNORE), MPI_SUCCESS);
    CU_ASSERT_EQUAL(sum, (long)size * (size + 1) / 2);
    int ok = 1;
    for (int i = 0; i < size; i++)
        ok &= got[i] == i;
    CU_ASSERT_TRUE(ok);
}

/* An MPI_Comm_idup every rank started before the checkpoint is completed
 * by the drain (its communicator is not probed while pending), and the new
 * communicator carries traffic that is in flight across the next drain. */
static void test_pending_comm_idup_completes_in_drain(void)
{
    MPI_Comm d;
    MPI_Request r;
    CU_ASSERT_EQUAL_FATAL(MPI_Comm_idup(MPI_COMM_WORLD, &d, &r), MPI_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);
    struct crmpi_drain_stats ds;
    crmpi_drain_last_stats(&ds);
    CU_ASSERT_EQUAL(ds.completed_colls, 1);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    CU_ASSERT_EQUAL(MPI_Wait(&r, MPI_STATUS_IGNORE), MPI_SUCCESS);
    int v = rank * 3, got = -1;
    MPI_Request s;
    MPI_Isend(&v, 1, MPI_INT, right, 5, d, &s);
    CU_ASSERT_TRUE(checkpoint_drain() > 0);
    MPI_Recv(&got, 1, MPI_INT, left, 5, d, MPI_STATUS_IGNORE);
    MPI_Wait(&s, MPI_STATUS_IGNORE);
    CU_ASSERT_EQUAL(got, left * 3);
    MPI_Comm_free(&d);
}

/* A collective only rank 0 posted before the checkpoint cannot complete in
 * it: every rank gets CR_EUNSUPPORTED (after the drain's few seconds), no
 * rank hangs, and the collective completes normally once the others post
 * it after the failed checkpoint. */
static void test_collective_posted_by_one_rank_fails_checkpoint_everywhere(void)
{
    MPI_Request r = MPI_REQUEST_NULL;
    if (rank == 0)
        MPI_Ibarrier(MPI_COMM_WORLD, &r);
    CU_ASSERT_EQUAL(crmpi_quiesce(), CR_EUNSUPPORTED);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    if (rank != 0)
        MPI_Ibarrier(MPI_COMM_WORLD, &r);
    CU_ASSERT_EQUAL(MPI_Wait(&r, MPI_STATUS_IGNORE), MPI_SUCCESS);
    CU_ASSERT_EQUAL(checkpoint_drain(), 0);   /* and the next checkpoint is clean */
}

/* A pending MPI_Irecv whose derived datatype the application freed (legal
 * MPI) is deferred by the drain and re-posted with that type. */
static void test_deferred_irecv_keeps_its_freed_datatype(void)
{
    MPI_Datatype pair;
    MPI_Type_vector(2, 1, 3, MPI_INT, &pair);
    MPI_Type_commit(&pair);
    int in[4] = { -1, -1, -1, -1 }, out[2] = { rank, rank + 7 };
    MPI_Request rr, sr;
    MPI_Irecv(in, 1, pair, left, 68, MPI_COMM_WORLD, &rr);
    MPI_Type_free(&pair);
    MPI_Barrier(MPI_COMM_WORLD);
    CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);
    struct crmpi_drain_stats ds;
    crmpi_drain_last_stats(&ds);
    CU_ASSERT_EQUAL(ds.deferred_recvs, 1);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    MPI_Isend(out, 2, MPI_INT, right, 68, MPI_COMM_WORLD, &sr);   /* sent after it */
    CU_ASSERT_EQUAL(MPI_Wait(&rr, MPI_STATUS_IGNORE), MPI_SUCCESS);
    MPI_Wait(&sr, MPI_STATUS_IGNORE);
    CU_ASSERT_EQUAL(in[0], left);
    CU_ASSERT_EQUAL(in[1], -1);
    CU_ASSERT_EQUAL(in[3], left + 7);
}

/* A persistent send freed while active (legal MPI) is completed and
 * forgotten by the next drain, its message delivered. */
static void test_freed_active_persistent_send_is_settled_by_drain(void)
{
    int v = rank + 5;
    MPI_Request r;
    MPI_Send_init(&v, 1, MPI_INT, right, 67, MPI_COMM_WORLD, &r);
    CU_ASSERT_EQUAL(MPI_Start(&r), MPI_SUCCESS);
    MPI_Request_free(&r);
    CU_ASSERT_PTR_EQUAL(r, MPI_REQUEST_NULL);
    checkpoint_drain();
    int got = -1;
    MPI_Recv(&got, 1, MPI_INT, left, 67, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    CU_ASSERT_EQUAL(got, left + 5);
    size_t live = 0;
    for (struct vh *h = crmpi_st->live[VH_REQ].head; h; h = h->next)
        live++;
    CU_ASSERT_EQUAL(live, 0);
}

static CU_TestInfo tests[] = {
    CUTEST(test_ring_messages_in_flight_all_sizes_delivered_after_drain),
    CUTEST(test_any_source_any_tag_keep_per_sender_order),
    CUTEST(test_pending_irecv_completes_or_is_reposted),
    CUTEST(test_large_pending_irecv_completed_by_drain),
    CUTEST(test_split_and_dup_comms_traffic_isolated),
    CUTEST(test_derived_datatype_message_unpacked_into_other_layout),
    CUTEST(test_probe_mprobe_sendrecv_testany_served_from_queue),
    CUTEST(test_truncation_reported_from_queue),
    CUTEST(test_collectives_and_empty_drain_every_step),
    CUTEST(test_freed_isend_request_is_settled_by_drain),
    CUTEST(test_persistent_requests_across_drains_every_round),
    CUTEST(test_freed_active_persistent_send_is_settled_by_drain),
    CUTEST(test_deferred_irecv_keeps_its_freed_datatype),
    CUTEST(test_pending_collectives_posted_everywhere_complete_in_drain),
    CUTEST(test_collective_posted_by_one_rank_fails_checkpoint_everywhere),
    CUTEST(test_pending_comm_idup_completes_in_drain),
    CU_TEST_INFO_NULL
};
static CU_SuiteInfo suites[] = {
    { "drain", NULL, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL
};

static void neighbours(void)
{
    left = (rank - 1 + size) % size;
    right = (rank + 1) % size;
}

int main(int argc, char **argv)
{
    return cutest_mpi_main(argc, argv, suites, "test_drain", &rank, &size, neighbours);
}
