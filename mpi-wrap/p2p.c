/*
 * p2p.c - the point-to-point wrappers: sends are counted, receives are
 * counted and served from the drain queue first (see p2p.h).
 *
 * Serving from the queue before MPI keeps MPI's order: everything in the
 * queue was sent before the last checkpoint, everything still inside MPI
 * after it, and messages of one (comm, source) pair never overtake each
 * other across that line. A receive that matches nothing in the queue goes
 * to MPI with real handles. Queued messages were received as bytes; they
 * are unpacked into the receiver's datatype (Open MPI's pack format on a
 * homogeneous job is the plain byte stream a MPI_BYTE receive yields).
 */
#include "p2p.h"
#include "wrap_support.h"
#include "region/region.h"

#include <stdlib.h>
#include <string.h>

uint64_t *crmpi_sent_;
uint64_t *crmpi_recvd_;
static int counters_n;

int crmpi_counters_init(int nranks)
{
    free(crmpi_sent_);
    free(crmpi_recvd_);
    crmpi_sent_ = calloc((size_t)nranks, sizeof *crmpi_sent_);
    crmpi_recvd_ = calloc((size_t)nranks, sizeof *crmpi_recvd_);
    counters_n = nranks;
    return crmpi_sent_ && crmpi_recvd_ ? 0 : -ENOMEM;
}

void crmpi_counters_reset(void)
{
    memset(crmpi_sent_, 0, (size_t)counters_n * sizeof *crmpi_sent_);
    memset(crmpi_recvd_, 0, (size_t)counters_n * sizeof *crmpi_recvd_);
}

/* ---- the queue as receives see it ------------------------------------------- */

static inline int q_src(int s) { return s == MPI_ANY_SOURCE ? MQ_ANY_SOURCE : s; }
static inline int q_tag(int t) { return t == MPI_ANY_TAG ? MQ_ANY_TAG : t; }

struct mq_msg *crmpi_queue_take(MPI_Comm comm, int source, int tag)
{
    if (cr_likely(mq_empty(&crmpi_st->queue)) || source == MPI_PROC_NULL)
        return NULL;
    return mq_take(&crmpi_st->queue, (uintptr_t)comm, q_src(source), q_tag(tag));
}

struct mq_msg *crmpi_queue_peek(MPI_Comm comm, int source, int tag)
{
    if (cr_likely(mq_empty(&crmpi_st->queue)) || source == MPI_PROC_NULL)
        return NULL;
    return mq_peek(&crmpi_st->queue, (uintptr_t)comm, q_src(source), q_tag(tag));
}

static void fill_status(const struct mq_msg *m, size_t bytes, int err, MPI_Status *st)
{
    if (st == MPI_STATUS_IGNORE)
        return;
    st->MPI_SOURCE = m->source;
    st->MPI_TAG = m->tag;
    st->MPI_ERROR = err;
    PMPI_Status_set_elements_x(st, MPI_BYTE, (MPI_Count)bytes);
    PMPI_Status_set_cancelled(st, 0);
}

void crmpi_probe_status(const struct mq_msg *m, MPI_Status *st)
{
    fill_status(m, m->len, MPI_SUCCESS, st);
}

int crmpi_deliver(struct mq_msg *m, void *buf, int count, MPI_Datatype type, MPI_Status *st)
{
    MPI_Datatype rt = vh_in_type(type);
    int tsize = 0, err = MPI_SUCCESS;
    PMPI_Type_size(rt, &tsize);
    size_t cap = (size_t)(count > 0 ? count : 0) * (size_t)tsize;
    size_t n = m->len;
    if (n > cap) {
        err = MPI_ERR_TRUNCATE;
        n = cap;
    }
    if (tsize > 0 && n >= (size_t)tsize) {
        int pos = 0;
        int rc = PMPI_Unpack(m->data, (int)n, &pos, buf, (int)(n / (size_t)tsize), rt,
                             MPI_COMM_SELF);
        if (rc != MPI_SUCCESS) {
            cr_err("unpacking a drained message of %zu bytes failed (MPI error %d)", n, rc);
            err = rc;
        }
    }
    if (n % (tsize ? (size_t)tsize : 1))
        cr_warn("drained message of %zu bytes is not a whole number of %d-byte elements",
                m->len, tsize);
    fill_status(m, n, err, st);
    mq_msg_free(&crmpi_st->queue, m);
    return err;
}

/* ---- sends ------------------------------------------------------------------------ */

#define SEND_WRAPPER(NAME)                                                          \
    int MPI_##NAME(const void *buf, int count, MPI_Datatype type, int dest, int tag, \
                   MPI_Comm comm)                                                   \
    {                                                                               \
        if (crmpi_passthrough())                                                    \
            return PMPI_##NAME(buf, count, type, dest, tag, comm);                  \
        int rc = PMPI_##NAME(buf, count, vh_in_type(type), dest, tag,               \
                             vh_in_comm(comm));                                     \
        if (rc == MPI_SUCCESS)                                                      \
            crmpi_count_sent(comm, dest);                                           \
        return rc;                                                                  \
    }
SEND_WRAPPER(Send)
SEND_WRAPPER(Ssend)
SEND_WRAPPER(Bsend)
SEND_WRAPPER(Rsend)

#define ISEND_WRAPPER(NAME)                                                          \
    int MPI_##NAME(const void *buf, int count, MPI_Datatype type, int dest, int tag,  \
                   MPI_Comm comm, MPI_Request *req)                                  \
    {                                                                                \
        if (crmpi_passthrough())                                                     \
            return PMPI_##NAME(buf, count, type, dest, tag, comm, req);              \
        struct vreq *r = vreq_new(VREQ_SEND);                                        \
        if (!r)                                                                      \
            return MPI_ERR_NO_MEM;                                                   \
        int rc = PMPI_##NAME(buf, count, vh_in_type(type), dest, tag,                \
                             vh_in_comm(comm), &r->h.real.req);                      \
        if (rc != MPI_SUCCESS) {                                                     \
            vreq_release(r);                                                         \
            return rc;                                                               \
        }                                                                            \
        r->state = VREQ_ACTIVE;                                                      \
        r->peer_world = vh_world_of(comm, dest);                                     \
        crmpi_count_sent(comm, dest);                                                \
        *req = (MPI_Request)r;                                                       \
        return MPI_SUCCESS;                                                          \
    }
ISEND_WRAPPER(Isend)
ISEND_WRAPPER(Issend)
ISEND_WRAPPER(Ibsend)
ISEND_WRAPPER(Irsend)

/* The buffered-send buffer is the application's memory, but its attachment
 * is MPI's state: it is recorded and attached again after a restart
 * (vh_rebuild_all). Only a buffer in persistent memory can be: it still
 * holds nothing then (the drain delivered every buffered message). */
int MPI_Buffer_attach(void *buf, int size)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Buffer_attach(buf, size);
    int rc = PMPI_Buffer_attach(buf, size);
    if (rc != MPI_SUCCESS)
        return rc;
    if (!cr_region_is_open())
        return MPI_SUCCESS;        /* nothing of this process is restored */
    if (!cr_region_contains(buf, size > 0 ? (size_t)size : 1)) {
        cr_warn("MPI_Buffer_attach: the buffer %p (%d bytes) is not in persistent memory: "
                "it cannot be attached again after a restart, and buffered sends after "
                "one will fail", buf, size);
        return MPI_SUCCESS;
    }
    crmpi_st->bsend_buf = buf;
    crmpi_st->bsend_size = size;
    return MPI_SUCCESS;
}

int MPI_Buffer_detach(void *buf_addr, int *size)
{
    CRMPI_LIB_SCOPE;
    int rc = PMPI_Buffer_detach(buf_addr, size);
    if (rc == MPI_SUCCESS && !crmpi_passthrough()) {
        crmpi_st->bsend_buf = NULL;
        crmpi_st->bsend_size = 0;
    }
    return rc;
}

/* ---- receives ------------------------------------------------------------------- */

int MPI_Recv(void *buf, int count, MPI_Datatype type, int source, int tag, MPI_Comm comm,
             MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Recv(buf, count, type, source, tag, comm, status);
    struct mq_msg *m = crmpi_queue_take(comm, source, tag);
    if (m)
        return crmpi_deliver(m, buf, count, type, status);
    MPI_Status local, *st = status == MPI_STATUS_IGNORE ? &local : status;
    int rc = PMPI_Recv(buf, count, vh_in_type(type), source, tag, vh_in_comm(comm), st);
    if (rc == MPI_SUCCESS || rc == MPI_ERR_TRUNCATE)
        crmpi_count_recvd(comm, st->MPI_SOURCE);
    return rc;
}

int MPI_Irecv(void *buf, int count, MPI_Datatype type, int source, int tag, MPI_Comm comm,
              MPI_Request *req)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Irecv(buf, count, type, source, tag, comm, req);
    struct vreq *r = vreq_new(VREQ_RECV);
    if (!r)
        return MPI_ERR_NO_MEM;
    r->buf = buf;
    r->count = count;
    vreq_hold_type(r, type);
    r->source = source;
    r->tag = tag;
    vreq_hold_comm(r, comm);
    int rc = vreq_post_recv(r);
    if (rc != MPI_SUCCESS) {
        vreq_release(r);
        return rc;
    }
    *req = (MPI_Request)r;
    return MPI_SUCCESS;
}

int vreq_post_recv(struct vreq *r)
{
    struct mq_msg *m = crmpi_queue_take(r->comm, r->source, r->tag);
    if (m) {
        (void)crmpi_deliver(m, r->buf, r->count, r->type, &r->status);
        r->state = VREQ_DONE;
        return MPI_SUCCESS;
    }
    int rc = r->persistent
             ? PMPI_Start(&r->h.real.req)
             : PMPI_Irecv(r->buf, r->count, vh_in_type(r->type), r->source, r->tag,
                          vh_in_comm(r->comm), &r->h.real.req);
    if (rc == MPI_SUCCESS)
        r->state = VREQ_ACTIVE;
    return rc;
}

/* ---- persistent requests ------------------------------------------------------------ */
/* MPI_Send_init and its siblings make a virtual request around a real
 * persistent one and keep the recipe: a restarted job makes the real one
 * again (vh_rebuild_all), and the request goes on where it was - inactive,
 * or complete and not yet waited for, or (a receive) deferred by the drain
 * and started again. MPI_Start of a receive is served from the drain queue
 * first, exactly like MPI_Irecv; a started send is counted like MPI_Isend. */

int vreq_init_real(struct vreq *r)
{
    if (vh_is_dead(r->comm) || vh_is_dead(r->type)) {
        cr_err("a persistent request (%s %s rank %d, tag %d) outlived its %s: "
               "it cannot be made again after a restart; free the request first",
               r->persistent == VREQ_INIT_RECV ? "receive" : "send",
               r->persistent == VREQ_INIT_RECV ? "from" : "to",
               r->persistent == VREQ_INIT_RECV ? r->source : r->dest, r->tag,
               vh_is_dead(r->comm) ? "communicator" : "datatype");
        return MPI_ERR_REQUEST;
    }
    MPI_Datatype t = vh_in_type(r->type);
    MPI_Comm c = vh_in_comm(r->comm);
    MPI_Request *out = &r->h.real.req;
    switch (r->persistent) {
    case VREQ_INIT_SEND:  return PMPI_Send_init(r->buf, r->count, t, r->dest, r->tag, c, out);
    case VREQ_INIT_SSEND: return PMPI_Ssend_init(r->buf, r->count, t, r->dest, r->tag, c, out);
    case VREQ_INIT_RSEND: return PMPI_Rsend_init(r->buf, r->count, t, r->dest, r->tag, c, out);
    case VREQ_INIT_BSEND: return PMPI_Bsend_init(r->buf, r->count, t, r->dest, r->tag, c, out);
    case VREQ_INIT_RECV:  return PMPI_Recv_init(r->buf, r->count, t, r->source, r->tag, c, out);
    default:              return MPI_ERR_REQUEST;
    }
}

/* The empty status MPI reports for an inactive request. */
static void empty_status(MPI_Status *st)
{
    memset(st, 0, sizeof *st);
    st->MPI_SOURCE = MPI_ANY_SOURCE;
    st->MPI_TAG = MPI_ANY_TAG;
    st->MPI_ERROR = MPI_SUCCESS;
    PMPI_Status_set_elements_x(st, MPI_BYTE, 0);
    PMPI_Status_set_cancelled(st, 0);
}

void vreq_make_inactive(struct vreq *r)
{
    r->state = VREQ_INACTIVE;
    empty_status(&r->status);
}

static int persistent_init(int how, void *buf, int count, MPI_Datatype type, int peer, int tag,
                           MPI_Comm comm, MPI_Request *req)
{
    struct vreq *r = vreq_new(how == VREQ_INIT_RECV ? VREQ_RECV : VREQ_SEND);
    if (!r)
        return MPI_ERR_NO_MEM;
    r->persistent = how;
    r->buf = buf;
    r->count = count;
    vreq_hold_type(r, type);
    r->tag = tag;
    vreq_hold_comm(r, comm);
    if (how == VREQ_INIT_RECV) {
        r->source = peer;
    } else {
        r->dest = peer;
        r->peer_world = vh_world_of(comm, peer);
    }
    int rc = vreq_init_real(r);
    if (rc != MPI_SUCCESS) {
        r->h.real.req = MPI_REQUEST_NULL;
        vreq_release(r);
        return rc;
    }
    vreq_make_inactive(r);
    *req = (MPI_Request)r;
    return MPI_SUCCESS;
}

#define PSEND_WRAPPER(NAME, HOW)                                                         \
    int MPI_##NAME(const void *buf, int count, MPI_Datatype type, int dest, int tag,      \
                   MPI_Comm comm, MPI_Request *req)                                      \
    {                                                                                    \
        CRMPI_LIB_SCOPE;                                                                 \
        if (crmpi_passthrough())                                                         \
            return PMPI_##NAME(buf, count, type, dest, tag, comm, req);                  \
        return persistent_init(HOW, (void *)buf, count, type, dest, tag, comm, req);     \
    }
PSEND_WRAPPER(Send_init, VREQ_INIT_SEND)
PSEND_WRAPPER(Ssend_init, VREQ_INIT_SSEND)
PSEND_WRAPPER(Rsend_init, VREQ_INIT_RSEND)
PSEND_WRAPPER(Bsend_init, VREQ_INIT_BSEND)
#undef PSEND_WRAPPER

int MPI_Recv_init(void *buf, int count, MPI_Datatype type, int source, int tag, MPI_Comm comm,
                  MPI_Request *req)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Recv_init(buf, count, type, source, tag, comm, req);
    return persistent_init(VREQ_INIT_RECV, buf, count, type, source, tag, comm, req);
}

static int start_one(MPI_Request *req)
{
    struct vreq *r = (struct vreq *)vh_get(*req, VH_REQ);
    if (!r)
        return PMPI_Start(req);
    if (!r->persistent || r->state != VREQ_INACTIVE) {
        cr_warn("MPI_Start of a request that is %s", !r->persistent ? "not persistent"
                : "still active (started and not completed by a wait or test)");
        return MPI_ERR_REQUEST;
    }
    if (r->kind == VREQ_RECV)
        return vreq_post_recv(r);
    int rc = PMPI_Start(&r->h.real.req);
    if (rc != MPI_SUCCESS)
        return rc;
    r->state = VREQ_ACTIVE;
    if (r->peer_world >= 0)
        crmpi_sent_[r->peer_world]++;
    return MPI_SUCCESS;
}

int MPI_Start(MPI_Request *req)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Start(req);
    return start_one(req);
}

int MPI_Startall(int n, MPI_Request reqs[])
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Startall(n, reqs);
    for (int i = 0; i < n; i++) {
        int rc = start_one(&reqs[i]);
        if (rc != MPI_SUCCESS)
            return rc;
    }
    return MPI_SUCCESS;
}

int MPI_Sendrecv(const void *sendbuf, int sendcount, MPI_Datatype sendtype, int dest,
                 int sendtag, void *recvbuf, int recvcount, MPI_Datatype recvtype,
                 int source, int recvtag, MPI_Comm comm, MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Sendrecv(sendbuf, sendcount, sendtype, dest, sendtag, recvbuf, recvcount,
                             recvtype, source, recvtag, comm, status);
    struct mq_msg *m = crmpi_queue_take(comm, source, recvtag);
    if (m) {
        /* The receive half is served here; the send half must still run
         * concurrently with the peer's receive, hence Isend + Wait. */
        MPI_Request sr;
        int rc = PMPI_Isend(sendbuf, sendcount, vh_in_type(sendtype), dest, sendtag,
                            vh_in_comm(comm), &sr);
        if (rc != MPI_SUCCESS) {
            mq_push(&crmpi_st->queue, m);   /* keep it: nothing was received */
            return rc;
        }
        crmpi_count_sent(comm, dest);
        int drc = crmpi_deliver(m, recvbuf, recvcount, recvtype, status);
        rc = PMPI_Wait(&sr, MPI_STATUS_IGNORE);
        return rc != MPI_SUCCESS ? rc : drc;
    }
    MPI_Status local, *st = status == MPI_STATUS_IGNORE ? &local : status;
    int rc = PMPI_Sendrecv(sendbuf, sendcount, vh_in_type(sendtype), dest, sendtag, recvbuf,
                           recvcount, vh_in_type(recvtype), source, recvtag, vh_in_comm(comm), st);
    if (rc == MPI_SUCCESS || rc == MPI_ERR_TRUNCATE) {
        crmpi_count_sent(comm, dest);
        crmpi_count_recvd(comm, st->MPI_SOURCE);
    }
    return rc;
}

int MPI_Sendrecv_replace(void *buf, int count, MPI_Datatype type, int dest, int sendtag,
                         int source, int recvtag, MPI_Comm comm, MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Sendrecv_replace(buf, count, type, dest, sendtag, source, recvtag, comm,
                                     status);
    struct mq_msg *m = crmpi_queue_take(comm, source, recvtag);
    if (m) {
        /* Send from buf first (it must leave before buf is overwritten). */
        MPI_Request sr;
        int rc = PMPI_Isend(buf, count, vh_in_type(type), dest, sendtag, vh_in_comm(comm), &sr);
        if (rc == MPI_SUCCESS)
            rc = PMPI_Wait(&sr, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            mq_push(&crmpi_st->queue, m);
            return rc;
        }
        crmpi_count_sent(comm, dest);
        return crmpi_deliver(m, buf, count, type, status);
    }
    MPI_Status local, *st = status == MPI_STATUS_IGNORE ? &local : status;
    int rc = PMPI_Sendrecv_replace(buf, count, vh_in_type(type), dest, sendtag, source, recvtag,
                                   vh_in_comm(comm), st);
    if (rc == MPI_SUCCESS || rc == MPI_ERR_TRUNCATE) {
        crmpi_count_sent(comm, dest);
        crmpi_count_recvd(comm, st->MPI_SOURCE);
    }
    return rc;
}

/* ---- probes and matched messages ---------------------------------------------------- */

int MPI_Iprobe(int source, int tag, MPI_Comm comm, int *flag, MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Iprobe(source, tag, comm, flag, status);
    struct mq_msg *m = crmpi_queue_peek(comm, source, tag);
    if (m) {
        *flag = 1;
        crmpi_probe_status(m, status);
        return MPI_SUCCESS;
    }
    return PMPI_Iprobe(source, tag, vh_in_comm(comm), flag, status);
}

int MPI_Probe(int source, int tag, MPI_Comm comm, MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Probe(source, tag, comm, status);
    struct mq_msg *m = crmpi_queue_peek(comm, source, tag);
    if (m) {
        crmpi_probe_status(m, status);
        return MPI_SUCCESS;
    }
    return PMPI_Probe(source, tag, vh_in_comm(comm), status);
}

/* A message matched inside MPI has left the channel: count it now, the
 * drain will not see it with MPI_Iprobe. */
static int wrap_matched(MPI_Comm comm, MPI_Message real, MPI_Status *st, MPI_Message *out)
{
    if (real == MPI_MESSAGE_NO_PROC || real == MPI_MESSAGE_NULL) {
        *out = real;
        return MPI_SUCCESS;
    }
    crmpi_count_recvd(comm, st->MPI_SOURCE);
    struct vmsg *v = vmsg_new(comm, real, NULL);
    if (!v) {
        cr_err("out of persistent memory for a matched message");
        return MPI_ERR_NO_MEM;
    }
    v->source = st->MPI_SOURCE;
    v->tag = st->MPI_TAG;
    PMPI_Get_count(st, MPI_BYTE, &v->bytes);
    *out = (MPI_Message)v;
    return MPI_SUCCESS;
}

static int take_matched(MPI_Comm comm, int source, int tag, MPI_Message *out, MPI_Status *status)
{
    struct mq_msg *m = crmpi_queue_take(comm, source, tag);
    if (!m)
        return 0;
    crmpi_probe_status(m, status);
    struct vmsg *v = vmsg_new(comm, MPI_MESSAGE_NULL, m);
    if (!v) {
        mq_push(&crmpi_st->queue, m);
        return -1;
    }
    *out = (MPI_Message)v;
    return 1;
}

int MPI_Mprobe(int source, int tag, MPI_Comm comm, MPI_Message *message, MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Mprobe(source, tag, comm, message, status);
    int t = take_matched(comm, source, tag, message, status);
    if (t)
        return t > 0 ? MPI_SUCCESS : MPI_ERR_NO_MEM;
    MPI_Status local, *st = status == MPI_STATUS_IGNORE ? &local : status;
    MPI_Message real;
    int rc = PMPI_Mprobe(source, tag, vh_in_comm(comm), &real, st);
    if (rc != MPI_SUCCESS)
        return rc;
    return wrap_matched(comm, real, st, message);
}

int MPI_Improbe(int source, int tag, MPI_Comm comm, int *flag, MPI_Message *message,
                MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Improbe(source, tag, comm, flag, message, status);
    int t = take_matched(comm, source, tag, message, status);
    if (t) {
        *flag = t > 0;
        return t > 0 ? MPI_SUCCESS : MPI_ERR_NO_MEM;
    }
    MPI_Status local, *st = status == MPI_STATUS_IGNORE ? &local : status;
    MPI_Message real = MPI_MESSAGE_NULL;
    int rc = PMPI_Improbe(source, tag, vh_in_comm(comm), flag, &real, st);
    if (rc != MPI_SUCCESS || !*flag)
        return rc;
    return wrap_matched(comm, real, st, message);
}

int MPI_Mrecv(void *buf, int count, MPI_Datatype type, MPI_Message *message, MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    struct vmsg *v = crmpi_passthrough() ? NULL : (struct vmsg *)vh_get(*message, VH_MSG);
    if (!v)
        return PMPI_Mrecv(buf, count, vh_in_type(type), message, status);
    int rc;
    if (v->held) {
        rc = crmpi_deliver(v->held, buf, count, type, status);
        v->held = NULL;
    } else {
        rc = PMPI_Mrecv(buf, count, vh_in_type(type), &v->h.real.msg, status);
    }
    vmsg_release(v);
    *message = MPI_MESSAGE_NULL;
    return rc;
}

int MPI_Imrecv(void *buf, int count, MPI_Datatype type, MPI_Message *message,
               MPI_Request *req)
{
    CRMPI_LIB_SCOPE;
    struct vmsg *v = crmpi_passthrough() ? NULL : (struct vmsg *)vh_get(*message, VH_MSG);
    if (!v)
        return PMPI_Imrecv(buf, count, vh_in_type(type), message, req);
    struct vreq *r = vreq_new(v->held ? VREQ_RECV : VREQ_MRECV);
    if (!r)
        return MPI_ERR_NO_MEM;
    if (v->held) {
        (void)crmpi_deliver(v->held, buf, count, type, &r->status);
        v->held = NULL;
        r->state = VREQ_DONE;
        r->comm = v->comm;
    } else {
        int rc = PMPI_Imrecv(buf, count, vh_in_type(type), &v->h.real.msg, &r->h.real.req);
        if (rc != MPI_SUCCESS) {
            vreq_release(r);
            return rc;
        }
        r->state = VREQ_ACTIVE;
    }
    vmsg_release(v);
    *message = MPI_MESSAGE_NULL;
    *req = (MPI_Request)r;
    return MPI_SUCCESS;
}
