/*
 * p2p.h - message accounting and the drain queue as seen by the
 * point-to-point wrappers (p2p.c, requests.c) and the drain (drain.c).
 *
 * Every message the application sends or receives is counted per peer, by
 * MPI_COMM_WORLD rank, over all communicators: at a checkpoint, rank j owes
 * rank i  sent_j[i] - recvd_i[j]  messages, which the drain receives into
 * the queue. The counters are not persistent: they are zero right after
 * every drain (every channel is then empty), which is the only moment a
 * checkpoint captures.
 */
#ifndef CRMPI_P2P_H
#define CRMPI_P2P_H

#include "vhandle.h"

extern uint64_t *crmpi_sent_;     /* [world size] messages sent to each rank   */
extern uint64_t *crmpi_recvd_;    /* [world size] messages received from each   */

static inline void crmpi_count_sent(MPI_Comm c, int dest)
{
    int w = vh_world_of(c, dest);
    if (w >= 0)
        crmpi_sent_[w]++;
}
static inline void crmpi_count_recvd(MPI_Comm c, int source)
{
    int w = vh_world_of(c, source);
    if (w >= 0)
        crmpi_recvd_[w]++;
}
int crmpi_counters_init(int nranks);
void crmpi_counters_reset(void);

/* Take the oldest queued message matching a receive, or NULL. */
struct mq_msg *crmpi_queue_take(MPI_Comm comm, int source, int tag);
struct mq_msg *crmpi_queue_peek(MPI_Comm comm, int source, int tag);
/* Copy a queued message into the receive buffer (unpacking it into the
 * datatype), fill *status (may be MPI_STATUS_IGNORE), free the message.
 * Returns MPI_SUCCESS or MPI_ERR_TRUNCATE. */
int crmpi_deliver(struct mq_msg *m, void *buf, int count, MPI_Datatype type, MPI_Status *status);
/* Status of a queued message as a probe reports it. */
void crmpi_probe_status(const struct mq_msg *m, MPI_Status *status);

/* Requests: bookkeeping when MPI reports a request complete with *st;
 * err is the request's error code (stored in the status). */
void vreq_complete(struct vreq *r, const MPI_Status *st, int err);
/* Serve a receive request from the queue (DONE) or post it in MPI (ACTIVE:
 * MPI_Irecv, or MPI_Start of a persistent one). Returns an MPI error code. */
int vreq_post_recv(struct vreq *r);
/* A persistent request back to INACTIVE, with the empty status. */
void vreq_make_inactive(struct vreq *r);

#endif
