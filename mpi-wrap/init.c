/*
 * init.c - starting and stopping the MPI layer: MPI_Init, MPI_Init_thread,
 * MPI_Finalize, the persistent state of the layer, the allocation hook,
 * and the refusal of uncheckpointable calls.
 *
 * MPI_Init starts real MPI, then (unless CRMPI_DISABLE=1) makes the
 * protocol's private communicator, sizes the message counters and attaches
 * the persistent state. A restarted rank does not come through here: it
 * resumes inside crmpi_checkpoint(), which re-initialises MPI itself
 * (crmpi_reinit below) before rebuilding the virtual handles.
 *
 * Threads: wrappers keep unsynchronised state, so at most
 * MPI_THREAD_SERIALIZED is supported; MPI_THREAD_MULTIPLE is downgraded to
 * SERIALIZED (MPI allows `provided` < `required`), with a warning.
 */
#include "drain.h"
#include "p2p.h"
#include "protocol.h"
#include "wrap_support.h"

#include "common/config.h"

#include <stdlib.h>
#include <string.h>

int crmpi_enabled_;
__thread int crmpi_internal_;
struct crmpi_state *crmpi_st;

/* ---- allocation ---------------------------------------------------------------- */
/* Until the runtime's persistent heap is linked in, MPI-layer state lives in
 * the C heap: everything works except surviving a restart. This is the one
 * place that decides. */
void *crmpi_palloc(size_t size)
{
    return malloc(size ? size : 1);
}

void crmpi_pfree(void *p)
{
    free(p);
}

static void *q_alloc(size_t n) { return crmpi_palloc(n); }
static void q_free(void *p) { crmpi_pfree(p); }

/* ---- persistent state ------------------------------------------------------------ */

int crmpi_state_attach(int nranks, int world_rank)
{
    struct crmpi_state *st = crmpi_persistent_root();
    if (st && st->magic == CRMPI_STATE_MAGIC) {
        if (st->version != CRMPI_STATE_VERSION) {
            cr_err("MPI-layer state has format version %u, this library reads %u",
                   st->version, CRMPI_STATE_VERSION);
            return CR_EFORMAT;
        }
        if (st->nranks != nranks) {
            cr_err("checkpoint was written by a job of %d ranks; this job has %d "
                   "(restart with mpirun -np %d)", st->nranks, nranks, st->nranks);
            return CR_ERANKS;
        }
        st->world_rank = world_rank;
        crmpi_st = st;
        return 0;
    }
    st = crmpi_palloc(sizeof *st);
    if (!st)
        return -ENOMEM;
    memset(st, 0, sizeof *st);
    st->magic = CRMPI_STATE_MAGIC;
    st->version = CRMPI_STATE_VERSION;
    st->nranks = nranks;
    st->world_rank = world_rank;
    mq_init(&st->queue, q_alloc, q_free);
    crmpi_set_persistent_root(st);
    crmpi_st = st;
    return 0;
}

/* ---- refusals ---------------------------------------------------------------------- */

void crmpi_log_refusal(const char *what)
{
    cr_err("%s cannot be checkpointed by crmpi: refused (set CRMPI_DISABLE=1 to run "
           "without checkpoint/restart)", what);
}

int crmpi_refuse(const char *name)
{
    crmpi_log_refusal(name);
    return MPI_ERR_UNSUPPORTED_OPERATION;
}

/* ---- start ---------------------------------------------------------------------------- */

/* Everything after the real MPI_Init, shared by first start and restart. */
int crmpi_start_layer(void)
{
    int n, me;
    if (PMPI_Comm_size(MPI_COMM_WORLD, &n) != MPI_SUCCESS ||
        PMPI_Comm_rank(MPI_COMM_WORLD, &me) != MPI_SUCCESS)
        return -EIO;
    cr_log_set_rank(me);
    if (PMPI_Comm_dup(MPI_COMM_WORLD, &crmpi_proto_comm) != MPI_SUCCESS) {
        cr_err("MPI_Comm_dup(MPI_COMM_WORLD) for the checkpoint protocol failed");
        return -EIO;
    }
    int rc = crmpi_counters_init(n);
    if (rc)
        return rc;
    return crmpi_state_attach(n, me);
}

static int after_init(int rc)
{
    if (rc != MPI_SUCCESS || cr_config()->disable)
        return rc;
    int st = crmpi_start_layer();
    if (st) {
        cr_errc(st, "crmpi cannot start its MPI layer; running without checkpoint/restart");
        return MPI_SUCCESS;
    }
    crmpi_enabled_ = 1;
    return MPI_SUCCESS;
}

int MPI_Init(int *argc, char ***argv)
{
    crmpi_thread_level_ = MPI_THREAD_SINGLE;
    return after_init(PMPI_Init(argc, argv));
}

int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)
{
    int level = required;
    if (required > MPI_THREAD_SERIALIZED && !cr_config()->disable) {
        cr_warn("MPI_THREAD_MULTIPLE requested: crmpi supports up to MPI_THREAD_SERIALIZED; "
                "providing SERIALIZED");
        level = MPI_THREAD_SERIALIZED;
    }
    int rc = PMPI_Init_thread(argc, argv, level, provided);
    if (rc == MPI_SUCCESS && *provided > level)
        *provided = level;
    crmpi_thread_level_ = rc == MPI_SUCCESS ? *provided : level;
    return after_init(rc);
}

int MPI_Finalize(void)
{
    if (crmpi_enabled_) {
        crmpi_enabled_ = 0;
        if (crmpi_proto_comm != MPI_COMM_NULL)
            PMPI_Comm_free(&crmpi_proto_comm);
    }
    return PMPI_Finalize();
}
