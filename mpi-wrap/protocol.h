/*
 * protocol.h - the coordinated checkpoint of an MPI job and the glue to the
 * per-rank runtime.
 *
 * crmpi_checkpoint() (protocol.c):
 *   quiesce   snapshot what cannot be read back (info keys), drain every
 *             channel into the persistent queue (drain.h); the outcome is
 *             agreed by all ranks before anything is written
 *   save      the runtime's checkpoint engine: rendezvous of the rank's
 *             persistent threads, collection of dirty pages and thread
 *             contexts, collective write of the epoch through the MPI
 *             collective (struct cr_coll over a private communicator),
 *             commit only if every rank succeeded
 *   resume    re-post the receives the drain deferred
 * A rank resumed from a checkpoint (restored from MPI_Init of a new process,
 * whose MPI is already initialised) comes back inside the save step with
 * CR_RESTARTED: it attaches the restored state, rebuilds every virtual
 * handle in creation order, re-posts deferred receives and returns
 * CRMPI_RESTARTED.
 */
#ifndef CRMPI_PROTOCOL_H
#define CRMPI_PROTOCOL_H

#include "vhandle.h"

extern int crmpi_thread_level_;   /* what MPI_Init(_thread) provided */

/* Where the MPI layer's state is found after a restart (the region's
 * CR_ROOT_MPI slot once the runtime provides it). */
struct crmpi_state *crmpi_persistent_root(void);
void crmpi_set_persistent_root(struct crmpi_state *st);

/* After PMPI_Init: private communicator, counters, persistent state. */
int crmpi_start_layer(void);

/* The drain half of a checkpoint and its undoing, agreed by all ranks
 * (exposed for tests of the drain within one run). */
int crmpi_quiesce(void);
int crmpi_resume(void);

/* Agree on a status over the private communicator: the most negative
 * status of all ranks, identical on every rank (the failing rank has logged
 * why). */
int crmpi_agree(int status);


/* The runtime (engine_glue.c). crmpi_runtime_start: from MPI_Init, after
 * the layer started: restore a committed checkpoint (does not return then)
 * or return 0 to start fresh; a refusal is returned (the caller must not
 * continue). crmpi_engine_checkpoint: the rendezvous + save, returning
 * CR_CHECKPOINTED, CR_RESTARTED or a negative status; -ENOSYS when
 * libcrmpi was built without the engine. */
int crmpi_runtime_start(void);
int crmpi_engine_checkpoint(void);
/* A rank resumed from a checkpoint: find the layer's restored state,
 * rebuild handles, re-post deferred receives. */
int crmpi_after_restore(void);

/* Fault injection for the kill tests: CRMPI_FAULT=POINT@N[#R] raises SIGKILL
 * the Nth time this process reaches POINT (only on world rank R if given).
 * Points of the MPI layer: mpi-drain-exchanged (counters exchanged, nothing
 * drained yet), mpi-drain-queued (a message was just queued), mpi-quiesced
 * (drain agreed, before the runtime writes the epoch). */
void crmpi_fault(const char *point);

#endif
