/*
 * requests.c - the completion family (Wait*, Test*, Request_*, Cancel) over
 * virtual requests.
 *
 * A virtual request is ACTIVE (its real request is pending in MPI) or DONE
 * (completed from the drain queue, or by the checkpoint protocol, with its
 * status stored). DONE requests are reported before MPI is asked, so a
 * Waitany/Testany served from the queue reports the index the application
 * gave. For the array calls the real requests are gathered into a scratch
 * array (MPI_REQUEST_NULL for DONE ones, which MPI treats as inactive) and
 * the results scattered back. Completion of a receive counts the message
 * (p2p.h); a cancelled send un-counts it.
 */
#include "p2p.h"
#include "wrap_support.h"

#include <stdlib.h>
#include <string.h>

#define REQ_STACK 64

void vreq_complete(struct vreq *r, const MPI_Status *st, int err)
{
    int cancelled = 0;
    r->status = *st;
    r->status.MPI_ERROR = err;   /* single-completion calls leave it unset */
    r->state = VREQ_DONE;
    if (!r->persistent)          /* a persistent one stays, inactive, in MPI */
        r->h.real.req = MPI_REQUEST_NULL;
    PMPI_Test_cancelled(st, &cancelled);
    if (r->kind == VREQ_IDUP)
        ((struct vh *)r->comm)->flags &= ~VH_PENDING;
    if (r->kind == VREQ_RECV && !cancelled)
        crmpi_count_recvd(r->comm, st->MPI_SOURCE);
    else if (r->kind == VREQ_SEND && cancelled && r->peer_world >= 0)
        crmpi_sent_[r->peer_world]--;
}

/* Give a DONE request back to the application: status out, handle nulled
 * - or, for a persistent request, the request made inactive (an inactive
 * one gives the empty status). Returns the error recorded in the status. */
static int hand_back(struct vreq *r, MPI_Request *slot, MPI_Status *status)
{
    int err = r->status.MPI_ERROR;
    if (status != MPI_STATUS_IGNORE)
        *status = r->status;
    if (r->persistent) {
        vreq_make_inactive(r);
        return err;
    }
    vreq_release(r);
    *slot = MPI_REQUEST_NULL;
    return err;
}

static inline struct vreq *vreq_of(MPI_Request h) { return (struct vreq *)vh_get(h, VH_REQ); }

struct scratch {
    MPI_Request rs_stack[REQ_STACK];
    MPI_Status ss_stack[REQ_STACK];
    MPI_Request *rs;
    MPI_Status *ss;
};

/* Real requests of reqs[0..n) into s->rs; returns -1 out of memory, else
 * whether any request is virtual. */
static int gather(struct scratch *s, int n, const MPI_Request reqs[])
{
    s->rs = s->rs_stack;
    s->ss = s->ss_stack;
    if (n > REQ_STACK) {
        s->rs = malloc((size_t)n * sizeof *s->rs);
        s->ss = malloc((size_t)n * sizeof *s->ss);
        if (!s->rs || !s->ss)
            return -1;
    }
    int any = 0;
    for (int i = 0; i < n; i++) {
        struct vreq *r = vreq_of(reqs[i]);
        if (r) {
            any = 1;
            s->rs[i] = r->state == VREQ_ACTIVE ? r->h.real.req : MPI_REQUEST_NULL;
        } else {
            s->rs[i] = vh_in_req(reqs[i]);
        }
    }
    return any;
}

static void scratch_free(struct scratch *s)
{
    if (s->rs != s->rs_stack)
        free(s->rs);
    if (s->ss != s->ss_stack)
        free(s->ss);
}

/* Request i finished inside MPI with status st (s->rs[i] is now NULL). */
static int finish(MPI_Request reqs[], int i, MPI_Request real_after, const MPI_Status *st,
                  MPI_Status *out)
{
    struct vreq *r = vreq_of(reqs[i]);
    if (!r) {
        reqs[i] = real_after;
        if (out != MPI_STATUS_IGNORE)
            *out = *st;
        return st->MPI_ERROR;
    }
    if (r->state == VREQ_ACTIVE)
        vreq_complete(r, st, st->MPI_ERROR);
    return hand_back(r, &reqs[i], out);
}

static MPI_Status *status_at(MPI_Status *arr, int i)
{
    return arr == MPI_STATUSES_IGNORE ? MPI_STATUS_IGNORE : &arr[i];
}

int MPI_Wait(MPI_Request *req, MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    struct vreq *r = crmpi_passthrough() ? NULL : vreq_of(*req);
    if (!r)
        return PMPI_Wait(req, status);
    if (r->state == VREQ_ACTIVE) {
        MPI_Status st;
        int rc = PMPI_Wait(&r->h.real.req, &st);
        vreq_complete(r, &st, rc);
    }
    return hand_back(r, req, status);
}

int MPI_Test(MPI_Request *req, int *flag, MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    struct vreq *r = crmpi_passthrough() ? NULL : vreq_of(*req);
    if (!r)
        return PMPI_Test(req, flag, status);
    if (r->state == VREQ_ACTIVE) {
        MPI_Status st;
        int rc = PMPI_Test(&r->h.real.req, flag, &st);
        if (rc != MPI_SUCCESS)
            return rc;
        if (!*flag)
            return MPI_SUCCESS;
        vreq_complete(r, &st, MPI_SUCCESS);
    }
    *flag = 1;
    return hand_back(r, req, status);
}

/* After an error of a Waitall/Testall: request i did not complete. MPI
 * nulls a completed request, but leaves a completed persistent one. */
static int still_pending(const struct vreq *r, const struct scratch *s, int i, int rc)
{
    if (!r || r->state != VREQ_ACTIVE)
        return 0;
    if (r->persistent)
        return rc != MPI_SUCCESS && s->ss[i].MPI_ERROR == MPI_ERR_PENDING;
    return s->rs[i] != MPI_REQUEST_NULL;
}

static int all_done(int n, MPI_Request reqs[], struct scratch *s, MPI_Status *sts, int rc)
{
    int err = 0;
    for (int i = 0; i < n; i++) {
        struct vreq *r = vreq_of(reqs[i]);
        if (still_pending(r, s, i, rc))
            continue;
        if (finish(reqs, i, s->rs[i], &s->ss[i], status_at(sts, i)) != MPI_SUCCESS)
            err = 1;
    }
    if (rc == MPI_SUCCESS && err)
        rc = MPI_ERR_IN_STATUS;
    return rc;
}

int MPI_Waitall(int n, MPI_Request reqs[], MPI_Status sts[])
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Waitall(n, reqs, sts);
    struct scratch s;
    int any = gather(&s, n, reqs);
    if (any < 0) {
        scratch_free(&s);
        return MPI_ERR_NO_MEM;
    }
    if (!any) {
        scratch_free(&s);
        return PMPI_Waitall(n, reqs, sts);
    }
    int rc = PMPI_Waitall(n, s.rs, s.ss);
    if (rc == MPI_SUCCESS)
        for (int i = 0; i < n; i++)
            s.ss[i].MPI_ERROR = MPI_SUCCESS;
    rc = all_done(n, reqs, &s, sts, rc);
    scratch_free(&s);
    return rc;
}

int MPI_Testall(int n, MPI_Request reqs[], int *flag, MPI_Status sts[])
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Testall(n, reqs, flag, sts);
    struct scratch s;
    int any = gather(&s, n, reqs);
    if (any <= 0) {
        scratch_free(&s);
        return any < 0 ? MPI_ERR_NO_MEM : PMPI_Testall(n, reqs, flag, sts);
    }
    int rc = PMPI_Testall(n, s.rs, flag, s.ss);
    if (rc == MPI_SUCCESS && *flag) {
        for (int i = 0; i < n; i++)
            s.ss[i].MPI_ERROR = MPI_SUCCESS;
        rc = all_done(n, reqs, &s, sts, rc);
    }
    scratch_free(&s);
    return rc;
}

/* The first DONE virtual request, or -1. */
static int first_done(int n, MPI_Request reqs[])
{
    for (int i = 0; i < n; i++) {
        struct vreq *r = vreq_of(reqs[i]);
        if (r && r->state == VREQ_DONE)
            return i;
    }
    return -1;
}

static int any_common(int n, MPI_Request reqs[], int *index, int *flag, MPI_Status *status,
                      int blocking)
{
    int i = first_done(n, reqs);
    if (i >= 0) {
        *index = i;
        if (flag)
            *flag = 1;
        return hand_back(vreq_of(reqs[i]), &reqs[i], status);
    }
    struct scratch s;
    if (gather(&s, n, reqs) < 0) {
        scratch_free(&s);
        return MPI_ERR_NO_MEM;
    }
    MPI_Status st;
    int idx = MPI_UNDEFINED, f = 1;
    int rc = blocking ? PMPI_Waitany(n, s.rs, &idx, &st) : PMPI_Testany(n, s.rs, &idx, &f, &st);
    if (flag)
        *flag = f;
    *index = idx;
    if (rc == MPI_SUCCESS && f && idx != MPI_UNDEFINED) {
        st.MPI_ERROR = MPI_SUCCESS;
        rc = finish(reqs, idx, s.rs[idx], &st, status);
    } else if (rc == MPI_SUCCESS && f && status != MPI_STATUS_IGNORE) {
        *status = st;   /* no active request: the empty status */
    }
    scratch_free(&s);
    return rc;
}

int MPI_Waitany(int n, MPI_Request reqs[], int *index, MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Waitany(n, reqs, index, status);
    return any_common(n, reqs, index, NULL, status, 1);
}

int MPI_Testany(int n, MPI_Request reqs[], int *index, int *flag, MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Testany(n, reqs, index, flag, status);
    return any_common(n, reqs, index, flag, status, 0);
}

static int some_common(int n, MPI_Request reqs[], int *outcount, int indices[],
                       MPI_Status sts[], int blocking)
{
    int k = 0, err = 0;
    for (int i = 0; i < n; i++) {
        struct vreq *r = vreq_of(reqs[i]);
        if (r && r->state == VREQ_DONE) {
            indices[k] = i;
            err |= hand_back(r, &reqs[i], status_at(sts, k)) != MPI_SUCCESS;
            k++;
        }
    }
    if (k > 0) {
        *outcount = k;
        return err ? MPI_ERR_IN_STATUS : MPI_SUCCESS;
    }
    struct scratch s;
    if (gather(&s, n, reqs) < 0) {
        scratch_free(&s);
        return MPI_ERR_NO_MEM;
    }
    int rc = blocking ? PMPI_Waitsome(n, s.rs, outcount, indices, s.ss)
                      : PMPI_Testsome(n, s.rs, outcount, indices, s.ss);
    if (rc == MPI_SUCCESS && *outcount != MPI_UNDEFINED) {
        for (int j = 0; j < *outcount; j++) {
            int i = indices[j];
            s.ss[j].MPI_ERROR = MPI_SUCCESS;
            err |= finish(reqs, i, s.rs[i], &s.ss[j], status_at(sts, j)) != MPI_SUCCESS;
        }
        if (err)
            rc = MPI_ERR_IN_STATUS;
    }
    scratch_free(&s);
    return rc;
}

int MPI_Waitsome(int n, MPI_Request reqs[], int *outcount, int indices[], MPI_Status sts[])
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Waitsome(n, reqs, outcount, indices, sts);
    return some_common(n, reqs, outcount, indices, sts, 1);
}

int MPI_Testsome(int n, MPI_Request reqs[], int *outcount, int indices[], MPI_Status sts[])
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Testsome(n, reqs, outcount, indices, sts);
    return some_common(n, reqs, outcount, indices, sts, 0);
}

int MPI_Request_get_status(MPI_Request req, int *flag, MPI_Status *status)
{
    CRMPI_LIB_SCOPE;
    struct vreq *r = crmpi_passthrough() ? NULL : vreq_of(req);
    if (!r)
        return PMPI_Request_get_status(req, flag, status);
    if (r->state == VREQ_ACTIVE)
        return PMPI_Request_get_status(r->h.real.req, flag, status);
    *flag = 1;
    if (status != MPI_STATUS_IGNORE)
        *status = r->status;
    return MPI_SUCCESS;
}

/* A freed active request stays known (detached) until the next checkpoint
 * settles it: its message still has to be counted. (MPI lets a persistent
 * request be freed while active, too; its real request is freed with it.) */
int MPI_Request_free(MPI_Request *req)
{
    CRMPI_LIB_SCOPE;
    struct vreq *r = crmpi_passthrough() ? NULL : vreq_of(*req);
    if (!r)
        return PMPI_Request_free(req);
    if (r->state == VREQ_ACTIVE)
        r->detached = 1;
    else
        vreq_release(r);
    *req = MPI_REQUEST_NULL;
    return MPI_SUCCESS;
}

int MPI_Cancel(MPI_Request *req)
{
    CRMPI_LIB_SCOPE;
    struct vreq *r = crmpi_passthrough() ? NULL : vreq_of(*req);
    if (!r)
        return PMPI_Cancel(req);
    if (r->state == VREQ_ACTIVE)
        return PMPI_Cancel(&r->h.real.req);
    return MPI_SUCCESS;   /* already complete: cancel has no effect */
}

MPI_Fint MPI_Request_c2f(MPI_Request req)
{
    return PMPI_Request_c2f(crmpi_passthrough() ? req : vh_in_req(req));
}

MPI_Request MPI_Request_f2c(MPI_Fint req)
{
    MPI_Request r = PMPI_Request_f2c(req);
    return crmpi_passthrough() ? r : vh_back_req(r);
}

MPI_Fint MPI_Message_c2f(MPI_Message msg)
{
    return PMPI_Message_c2f(crmpi_passthrough() ? msg : vh_in_msg(msg));
}

MPI_Message MPI_Message_f2c(MPI_Fint msg)
{
    MPI_Message m = PMPI_Message_f2c(msg);
    return crmpi_passthrough() ? m : vh_back_msg(m);
}
