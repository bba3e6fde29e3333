/*
 * protocol.c - crmpi_checkpoint(): quiesce, save, resume (see protocol.h).
 *
 * Every step that can fail on one rank only is followed by an agreement
 * (MPI_Allreduce MIN over the private communicator), so all ranks take the
 * same branch and return the same status: a rank never writes an epoch that
 * another rank has abandoned, and a failed drain leaves the queue intact for
 * the running job (nothing was lost: drained messages are served from it).
 * The last agreement (the checkpoint's status and the re-posting's) rides
 * on job control's collective (crmpi_jobctl_checkpoint_agree): on a busy or
 * oversubscribed node every extra round costs a scheduling delay.
 */
#include "crmpi.h"
#include "protocol.h"
#include "jobctl.h"
#include "drain.h"
#include "p2p.h"
#include "wrap_support.h"

#include "common/config.h"
#include "common/fault.h"
#include "exec/exec.h"
#include "polite.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

int crmpi_thread_level_ = MPI_THREAD_SINGLE;

void crmpi_fault(const char *point)
{
    (void)cr_fault(point);   /* kill points: the action is SIGKILL */
}

int crmpi_agree(int status)
{
    int mine = status, all = status;
    MPI_Request r;
    if (PMPI_Iallreduce(&mine, &all, 1, MPI_INT, MPI_MIN, crmpi_proto_comm, &r) != MPI_SUCCESS ||
        crmpi_wait_polite(&r) != MPI_SUCCESS) {
        cr_err("MPI_Allreduce agreeing on the checkpoint status failed");
        return status ? status : -EIO;
    }
    return all;
}

int crmpi_quiesce(void)
{
    int rc = vh_snapshot();
    int drc = crmpi_drain();
    if (!drc)
        vop_release_retired();      /* no collective pending: freed ops' slots */
    /* After the drain, which completed pending file requests; collective. */
    int frc = vfile_checkpoint();
    if (!drc)
        drc = frc;
    /* RMA operations reach their targets; this agreement orders every
     * flush before any rank saves its memory. Skipped by all ranks when
     * the drain agreed that some window cannot be checkpointed. */
    struct crmpi_drain_stats ds;
    crmpi_drain_last_stats(&ds);
    int wrc = ds.windows_blocked ? 0 : vwin_checkpoint();
    if (!drc)
        drc = wrc;
    return crmpi_agree(rc ? rc : drc);
}

int crmpi_resume(void)
{
    return crmpi_repost();
}

int crmpi_after_restore(void)
{
    /* MPI_Init of this process ran before the restore and started the
     * layer (private communicator, counters); the state it attached was
     * replaced by the restored region: attach the restored one. */
    int n, me;
    PMPI_Comm_size(MPI_COMM_WORLD, &n);
    PMPI_Comm_rank(MPI_COMM_WORLD, &me);
    crmpi_st = NULL;
    int rc = crmpi_state_attach(n, me);
    if (rc)
        return rc;
    crmpi_counters_reset();
    size_t nobj = 0;
    for (int k = 0; k < VH_NKINDS; k++)
        nobj += crmpi_st->live[k].count;
    cr_info("restored MPI layer: %zu live objects, %zu drained messages (%zu bytes) queued",
            nobj, crmpi_st->queue.count, crmpi_st->queue.bytes);
    vh_forget_reals();
    rc = vh_rebuild_all();
    if (!rc)
        rc = crmpi_repost();
    if (!rc)
        crmpi_enabled_ = 1;
    return rc;
}

/* A checkpoint-and-stop must leave this checkpoint committed before the
 * program is told to exit and before the job files name it. */
static int settle(int stop, uint64_t *epoch, void *unused)
{
    int rc = stop ? crmpi_checkpoint_wait() : 0;
    struct cr_checkpoint_stats cs;
    *epoch = cr_checkpoint_stats(&cs, sizeof cs) == 0 ? cs.last_epoch : 0;
    return rc;
}

static int checkpoint(void);

/* The protocol runs on the caller's persistent stack (drain, agreements,
 * re-posting, job control): "in library" (interpose.h), so what MPI
 * allocates meanwhile stays out of the persistent heap. The depth to
 * return with is kept in this frame, which a restore brings back with the
 * stack: a resumed main leaves with the depth it had when it called. */
static int in_library(int (*fn)(void))
{
    int depth = cr_lib_depth;
    cr_lib_depth = depth + 1;
    int rc = fn();
    cr_lib_depth = depth;
    return rc;
}

int crmpi_checkpoint(void)
{
    return in_library(checkpoint);
}

static int checkpoint(void)
{
    if (cr_config()->disable)
        return CRMPI_CHECKPOINTED;
    if (!crmpi_enabled_) {
        cr_err("crmpi_checkpoint() called before MPI_Init or after MPI_Finalize");
        return CR_ESTATE;
    }
    double t0 = PMPI_Wtime();
    int rc = crmpi_quiesce();
    if (rc == 0)
        crmpi_fault("mpi-quiesced");
    if (rc == 0) {
        crmpi_internal_enter();
        rc = crmpi_engine_checkpoint();
        crmpi_internal_leave();
        if (rc == CR_RESTARTED) {
            rc = crmpi_agree(crmpi_after_restore());
            if (rc == 0)
                crmpi_fault("mpi-rebuilt");
            return rc ? rc : CRMPI_RESTARTED;
        }
    }
    /* Re-posting is local and needs no agreement first: the statuses of
     * both, the stop signal and the cost are agreed by one collective. */
    int rrc = crmpi_resume();
    if (rrc)
        cr_errc(rrc, "re-posting deferred receives after the checkpoint failed");
    rc = crmpi_jobctl_checkpoint_agree(rc ? rc : rrc, PMPI_Wtime() - t0, settle, NULL);
    /* The call is over on every rank but the slowest to notice: the
     * epoch's writer may start (writer.c says why not sooner). */
    cr_writer_release();
    return rc ? rc : CRMPI_CHECKPOINTED;
}

static int checkpoint_wait(void);

/* In library scope like crmpi_checkpoint: the commit's MPI calls allocate. */
int crmpi_checkpoint_wait(void)
{
    return in_library(checkpoint_wait);
}

static int checkpoint_wait(void)
{
    if (cr_config()->disable)
        return 0;
    if (!crmpi_enabled_) {
        cr_err("crmpi_checkpoint_wait() called before MPI_Init or after MPI_Finalize");
        return CR_ESTATE;
    }
    crmpi_internal_enter();
    int rc = cr_checkpoint_wait();    /* the commit agrees on its status */
    crmpi_internal_leave();
    return rc;
}
