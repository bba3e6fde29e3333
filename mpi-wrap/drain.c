/*
 * drain.c - channel draining at a checkpoint (see drain.h).
 *
 * This is the bookmark exchange of LAM/MPI and MANA: counters say how many
 * messages each peer sent us; what MPI has not yet handed to the
 * application is received now, as raw bytes with its envelope, into the
 * persistent drain queue. The receive uses the count MPI_Iprobe reports for
 * MPI_BYTE, so any sender datatype is stored as its packed byte stream.
 */
#include "drain.h"
#include "polite.h"
#include "p2p.h"
#include "protocol.h"
#include "wrap_support.h"

#include <stdlib.h>
#include <string.h>

MPI_Comm crmpi_proto_comm = MPI_COMM_NULL;
static struct crmpi_drain_stats last;

void crmpi_drain_last_stats(struct crmpi_drain_stats *out)
{
    *out = last;
}

/* Step 1 for one receive: completed, or cancelled and deferred. */
static int settle_recv(struct vreq *r)
{
    MPI_Status st;
    int flag = 0;
    if (PMPI_Test(&r->h.real.req, &flag, &st) != MPI_SUCCESS)
        return -EIO;
    if (flag) {
        vreq_complete(r, &st, MPI_SUCCESS);
        return 0;
    }
    /* Cancel fails for a receive MPI already matched: then Wait completes it
     * (the sender is in this drain too and progresses the transfer). */
    if (PMPI_Cancel(&r->h.real.req) != MPI_SUCCESS ||
        PMPI_Wait(&r->h.real.req, &st) != MPI_SUCCESS)
        return -EIO;
    int cancelled = 0;
    PMPI_Test_cancelled(&st, &cancelled);
    if (cancelled) {
        r->state = VREQ_DEFERRED;
        if (!r->persistent)    /* a persistent one is started again */
            r->h.real.req = MPI_REQUEST_NULL;
        last.deferred_recvs++;
    } else {
        vreq_complete(r, &st, MPI_SUCCESS);
    }
    return 0;
}

static int settle_requests(void)
{
    struct vh *next;
    for (struct vh *v = crmpi_st->live[VH_REQ].head; v; v = next) {
        struct vreq *r = (struct vreq *)v;
        next = v->next;
        if (r->state != VREQ_ACTIVE)
            continue;
        int rc = 0;
        if (r->kind == VREQ_RECV) {
            rc = settle_recv(r);
        } else if (r->kind == VREQ_MRECV) {
            MPI_Status st;
            rc = PMPI_Wait(&r->h.real.req, &st) == MPI_SUCCESS ? 0 : -EIO;
            if (!rc)
                vreq_complete(r, &st, MPI_SUCCESS);
        }   /* VREQ_OTHER: settle_collectives */
        if (rc)
            return rc;
        if (r->detached && r->state == VREQ_DONE)
            vreq_release(r);
    }
    return 0;
}

/* Non-blocking collectives (requests that are neither sends nor receives,
 * MPI_Comm_idup included) still pending. One completes once every rank of
 * its communicator has posted its part, which no rank can know alone: all
 * ranks test theirs and agree, rounds of MPI_Test and an MPI_Allreduce on
 * the protocol's communicator, until none is pending anywhere. A collective
 * that some rank posts only after the checkpoint never completes here:
 * after NBC_WAIT_S seconds (agreed, so every rank leaves the loop in the
 * same round) the checkpoint fails, as it always did, and the job goes on.
 * A rank whose MPI_Test fails stops testing but keeps taking part in the
 * rounds: the others are waiting for its vote. */
#define NBC_WAIT_S 5.0

static int settle_collectives(void)
{
    double t0 = PMPI_Wtime();
    int err = 0;
    /* The same rounds agree on windows whose synchronisation cannot be
     * checkpointed (vwin_blocked): one anywhere fails the checkpoint before
     * any rank starts the fences and flushes of vwin_checkpoint. */
    int winblk = vwin_blocked();
    for (;;) {
        int mine[3] = { 0, PMPI_Wtime() - t0 > NBC_WAIT_S, winblk }, all[3];
        struct vh *next;
        for (struct vh *v = err ? NULL : crmpi_st->live[VH_REQ].head; v; v = next) {
            struct vreq *r = (struct vreq *)v;
            next = v->next;
            if ((r->kind != VREQ_OTHER && r->kind != VREQ_IDUP) || r->state != VREQ_ACTIVE)
                continue;
            int flag = 0;
            MPI_Status st;
            if (PMPI_Test(&r->h.real.req, &flag, &st) != MPI_SUCCESS) {
                cr_err("MPI_Test of a pending non-blocking collective failed");
                err = -EIO;
                mine[0] = 0;
                break;
            }
            if (!flag) {
                mine[0]++;
                continue;
            }
            vreq_complete(r, &st, MPI_SUCCESS);
            last.completed_colls++;
            if (r->detached)
                vreq_release(r);
        }
        MPI_Request ar;
        if (PMPI_Iallreduce(mine, all, 3, MPI_INT, MPI_MAX, crmpi_proto_comm, &ar) != MPI_SUCCESS ||
            crmpi_wait_polite(&ar) != MPI_SUCCESS) {
            cr_err("MPI_Allreduce agreeing on pending non-blocking collectives failed");
            last.windows_blocked = 1;
            return -EIO;
        }
        last.windows_blocked = all[2] != 0;
        if (!all[0])
            return err ? err : all[2] ? CR_EUNSUPPORTED : 0;
        if (all[1]) {
            if (mine[0])
                cr_err("%d non-blocking collective(s) still pending at crmpi_checkpoint() "
                       "after %.0f s: one that some rank posts only after the checkpoint "
                       "cannot be checkpointed; post it on every rank before, or complete it",
                       mine[0], NBC_WAIT_S);
            return CR_EUNSUPPORTED;
        }
    }
}

/* Messages matched by MPI_Mprobe but not received: receive them as bytes
 * into their message object (MPI_Mrecv serves them from there). They were
 * counted when matched. */
static int settle_messages(void)
{
    for (struct vh *v = crmpi_st->live[VH_MSG].head; v; v = v->next) {
        struct vmsg *m = (struct vmsg *)v;
        if (m->held || m->h.real.msg == MPI_MESSAGE_NULL)
            continue;
        struct mq_msg *q = mq_msg_new(&crmpi_st->queue, (uintptr_t)m->comm, m->source,
                                      m->tag, (size_t)m->bytes);
        if (!q)
            return -ENOMEM;
        if (PMPI_Mrecv(q->data, m->bytes, MPI_BYTE, &m->h.real.msg, MPI_STATUS_IGNORE)
            != MPI_SUCCESS) {
            mq_msg_free(&crmpi_st->queue, q);
            cr_err("receiving a matched message of %d bytes at the checkpoint failed", m->bytes);
            return -EIO;
        }
        m->held = q;
        m->h.real.msg = MPI_MESSAGE_NULL;
    }
    return 0;
}

/* One queued message from (comm, status) that MPI_Iprobe just reported. */
static int drain_one(MPI_Comm user, MPI_Comm real, const MPI_Status *pst, int64_t *owed)
{
    int n = 0;
    PMPI_Get_count(pst, MPI_BYTE, &n);
    int w = vh_world_of(user, pst->MPI_SOURCE);
    struct mq_msg *m = mq_msg_new(&crmpi_st->queue, (uintptr_t)user, pst->MPI_SOURCE,
                                  pst->MPI_TAG, (size_t)n);
    if (!m) {
        cr_err("out of persistent memory draining a message of %d bytes", n);
        return -ENOMEM;
    }
    if (PMPI_Recv(m->data, n, MPI_BYTE, pst->MPI_SOURCE, pst->MPI_TAG, real,
                  MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        mq_msg_free(&crmpi_st->queue, m);
        cr_err("receiving a drained message of %d bytes from rank %d failed", n, pst->MPI_SOURCE);
        return -EIO;
    }
    mq_push(&crmpi_st->queue, m);
    crmpi_fault("mpi-drain-queued");
    last.drained_msgs++;
    last.drained_bytes += (unsigned long long)n;
    if (w < 0 || owed[w] <= 0) {
        cr_err("drained a message nobody owed (world rank %d): counters are inconsistent", w);
        return -EPROTO;
    }
    owed[w]--;
    return 0;
}

/* Probe one communicator; returns messages drained (>= 0) or an error. */
static int drain_comm(MPI_Comm user, int64_t *owed)
{
    MPI_Comm real = vh_in_comm(user);
    int got = 0;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        if (PMPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, real, &flag, &st) != MPI_SUCCESS)
            return -EIO;
        if (!flag)
            return got;
        int rc = drain_one(user, real, &st, owed);
        if (rc)
            return rc;
        got++;
    }
}

static int exchange_counts(int n, int64_t *owed)
{
    uint64_t *theirs = malloc((size_t)n * sizeof *theirs);
    if (!theirs)
        return -ENOMEM;
    MPI_Request r;
    int rc = PMPI_Ialltoall(crmpi_sent_, 1, MPI_UINT64_T, theirs, 1, MPI_UINT64_T,
                            crmpi_proto_comm, &r);
    if (rc == MPI_SUCCESS)
        rc = crmpi_wait_polite(&r);
    if (rc != MPI_SUCCESS) {
        free(theirs);
        cr_err("MPI_Alltoall of message counters failed (MPI error %d)", rc);
        return -EIO;
    }
    for (int j = 0; j < n; j++)
        owed[j] = (int64_t)(theirs[j] - crmpi_recvd_[j]);
    free(theirs);
    return 0;
}

static int64_t total_owed(const int64_t *owed, int n)
{
    int64_t t = 0;
    for (int j = 0; j < n; j++) {
        if (owed[j] < 0) {
            cr_err("rank %d received %lld more messages than were sent to it: counters corrupt",
                   j, (long long)-owed[j]);
            return -1;
        }
        t += owed[j];
    }
    return t;
}

static int drain_channels(int64_t *owed, int n)
{
    int64_t left = total_owed(owed, n);
    while (left > 0) {
        int rc = drain_comm(MPI_COMM_WORLD, owed);
        if (rc >= 0)
            rc = drain_comm(MPI_COMM_SELF, owed);
        for (struct vh *v = crmpi_st->live[VH_COMM].head; v && rc >= 0; v = v->next)
            if (!(v->flags & VH_PENDING))    /* not usable yet: nothing sent on it */
                rc = drain_comm((MPI_Comm)v, owed);
        if (rc < 0)
            return rc;
        left = total_owed(owed, n);
    }
    return left < 0 ? -EPROTO : 0;
}

static int complete_sends(void)
{
    struct vh *next;
    for (struct vh *v = crmpi_st->live[VH_REQ].head; v; v = next) {
        struct vreq *r = (struct vreq *)v;
        next = v->next;
        if (r->kind != VREQ_SEND || r->state != VREQ_ACTIVE)
            continue;
        MPI_Status st;
        if (PMPI_Wait(&r->h.real.req, &st) != MPI_SUCCESS) {
            cr_err("completing a pending send to world rank %d failed", r->peer_world);
            return -EIO;
        }
        vreq_complete(r, &st, MPI_SUCCESS);
        last.completed_sends++;
        if (r->detached)
            vreq_release(r);
    }
    return 0;
}

int crmpi_drain(void)
{
    int n = crmpi_st->nranks;
    memset(&last, 0, sizeof last);
    int rc = settle_requests();
    if (!rc)
        rc = settle_messages();
    /* Collective: every rank takes part, whatever its status. */
    int crc = settle_collectives();
    if (!rc)
        rc = crc;
    /* Even a rank that failed above must take part in the exchange and the
     * drain, or the others would wait for it forever. */
    int64_t *owed = calloc((size_t)n, sizeof *owed);
    if (!owed)
        return -ENOMEM;
    int xrc = exchange_counts(n, owed);
    if (!xrc)
        crmpi_fault("mpi-drain-exchanged");
    if (!xrc)
        xrc = drain_channels(owed, n);
    if (!xrc)
        xrc = complete_sends();
    free(owed);
    if (!xrc)
        crmpi_counters_reset();
    cr_dbg("drain: %llu messages (%llu bytes) queued, %llu receives deferred, "
           "%llu sends and %llu collectives completed; queue now %zu messages",
           last.drained_msgs, last.drained_bytes, last.deferred_recvs, last.completed_sends,
           last.completed_colls, crmpi_st->queue.count);
    return rc ? rc : xrc;
}

int crmpi_repost(void)
{
    for (struct vh *v = crmpi_st->live[VH_REQ].head; v; v = v->next) {
        struct vreq *r = (struct vreq *)v;
        if (r->state != VREQ_DEFERRED)
            continue;
        int rc = vreq_post_recv(r);
        if (rc != MPI_SUCCESS) {
            cr_err("re-posting a deferred %s (buffer %p, %d elements, source %d, "
                   "tag %d) failed: MPI error %d", r->persistent ? "persistent receive" : "MPI_Irecv",
                   r->buf, r->count, r->source, r->tag, rc);
            return -EIO;
        }
    }
    return 0;
}
