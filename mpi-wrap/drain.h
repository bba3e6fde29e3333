/*
 * drain.h - empty every channel of the job into the drain queue.
 *
 * Called collectively (every rank of MPI_COMM_WORLD, from crmpi_checkpoint)
 * when no application thread is inside MPI. In order:
 *   1. settle pending requests: receives that completed are completed (and
 *      counted), the others are cancelled and become DEFERRED (re-posted by
 *      crmpi_repost() with the same buffer); messages matched by Mprobe but
 *      not yet received are received into their message object;
 *   1b. complete pending non-blocking collectives, testing and agreeing in
 *      rounds until none is pending on any rank; one still pending after a
 *      few seconds (posted by some ranks only) cannot be checkpointed:
 *      CR_EUNSUPPORTED, logged;
 *   2. exchange the per-rank message counters (MPI_Alltoall on a private
 *      duplicate of MPI_COMM_WORLD) and compute what each peer still owes;
 *   3. MPI_Iprobe every live communicator with MPI_ANY_SOURCE/MPI_ANY_TAG
 *      and receive what arrives, as bytes, into the queue, until nothing is
 *      owed (MPI_Iprobe also drives the progress of rendezvous transfers);
 *   4. wait for every pending send (its message is now received);
 *   5. reset the counters: every channel is empty.
 * Returns 0 or a negative code (local: the caller agrees on a status).
 */
#ifndef CRMPI_DRAIN_H
#define CRMPI_DRAIN_H

#include <mpi.h>

/* Private communicator of the protocol (a PMPI duplicate of MPI_COMM_WORLD
 * made at MPI_Init; never seen by the counters). */
extern MPI_Comm crmpi_proto_comm;

int crmpi_drain(void);
/* Re-post the receives the drain deferred (serving them from the queue when
 * a queued message matches). Called after the checkpoint in the running job
 * and after the rebuild in a restarted one. */
int crmpi_repost(void);

struct crmpi_drain_stats {
    unsigned long long drained_msgs, drained_bytes, deferred_recvs, completed_sends,
        completed_colls;
    /* Agreed: some rank has a window whose synchronisation cannot be
     * checkpointed (the checkpoint fails; no window is fenced or flushed). */
    int windows_blocked;
};
/* Statistics of the last drain (tests and benchmarks). */
void crmpi_drain_last_stats(struct crmpi_drain_stats *out);

#endif
