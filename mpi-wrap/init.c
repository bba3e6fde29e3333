/*
 * init.c - starting and stopping the MPI layer: MPI_Init, MPI_Init_thread,
 * MPI_Finalize, the persistent state of the layer, the allocation hook,
 * and the refusal of uncheckpointable calls.
 *
 * MPI_Init starts real MPI, then (unless CRMPI_DISABLE=1) makes the
 * protocol's private communicator, sizes the message counters, attaches
 * the persistent state and asks the runtime to restore a committed
 * checkpoint (engine_glue.c). If there is one, MPI_Init does not return:
 * main resumes inside crmpi_checkpoint(), which then rebuilds the virtual
 * handles over this process's MPI (crmpi_after_restore).
 *
 * Threads: wrappers keep unsynchronised state, so at most
 * MPI_THREAD_SERIALIZED is supported; MPI_THREAD_MULTIPLE is downgraded to
 * SERIALIZED (MPI allows `provided` < `required`), with a warning.
 * MPI is initialised at the level asked for (see init_thread), so
 * MPI_Query_thread reports what the application was given.
 */
#include "crmpi.h"
#include "drain.h"
#include "p2p.h"
#include "protocol.h"
#include "jobctl.h"
#include "wrap_support.h"

#include "common/config.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

int crmpi_enabled_;
int crmpi_internal_;
struct crmpi_state *crmpi_st;

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
    if ((st = crmpi_jobctl_init()) != 0)
        cr_errc(st, "job control (stop signals) unavailable");
    /* Restores and resumes in crmpi_checkpoint() when there is a
     * checkpoint; returns here to start fresh. */
    st = crmpi_runtime_start();
    if (st) {
        cr_errc(st, "cannot restart from the checkpoint in %s", cr_config()->dir);
        PMPI_Abort(MPI_COMM_WORLD, 1);
    }
    crmpi_enabled_ = 1;
    return MPI_SUCCESS;
}

/* MPI is initialised at the level the application asks for (capped at
 * SERIALIZED): the layer calls MPI only from the thread that called
 * crmpi_checkpoint(), MPI_Init or MPI_Finalize (engine_glue.c), so it needs
 * no more. Asking more costs: measured with callgrind (perf/mpi/
 * wrapper_cost.sh), Open MPI 4.1 spends ~130 more instructions per
 * MPI_Recv and ~70 per MPI_Send at FUNNELED or SERIALIZED than at SINGLE. */
static int init_thread(int *argc, char ***argv, int required, int *provided)
{
    if (cr_config()->disable)
        return PMPI_Init_thread(argc, argv, required, provided);
    int level = required;
    if (required > MPI_THREAD_SERIALIZED) {
        cr_warn("MPI_THREAD_MULTIPLE requested: crmpi supports up to MPI_THREAD_SERIALIZED; "
                "providing SERIALIZED");
        level = MPI_THREAD_SERIALIZED;
    }
    /* A restart needs every library at the address it had (the container
     * records and checks them). MPI_Init dlopens components (libpmix, ...)
     * while its progress threads start; a thread's first malloc creates a
     * new 64 MiB arena, so whether that mmap comes before or after a
     * dlopen is a race that moves libraries from run to run. One arena
     * takes the race away. */
    if (mallopt(M_ARENA_MAX, 1) != 1)
        cr_warn("mallopt(M_ARENA_MAX, 1) failed: library addresses may vary between runs");
    int real = 0;
    int rc = PMPI_Init_thread(argc, argv, level, &real);
    *provided = real < level ? real : level;
    crmpi_thread_level_ = *provided;
    return after_init(rc);
}

int MPI_Init(int *argc, char ***argv)
{
    CRMPI_LIB_SCOPE;
    int provided;
    return init_thread(argc, argv, MPI_THREAD_SINGLE, &provided);
}

int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)
{
    CRMPI_LIB_SCOPE;
    return init_thread(argc, argv, required, provided);
}

int MPI_Finalize(void)
{
    CRMPI_LIB_SCOPE;
    crmpi_jobctl_fini();
    if (crmpi_enabled_) {
        /* The last asynchronous checkpoint becomes the restart point here,
         * while the collective still works (collective like MPI_Finalize). */
        int rc = crmpi_checkpoint_wait();
        if (rc)
            cr_errc(rc, "MPI_Finalize: the last checkpoint could not be committed; "
                    "the one before stays the restart point");
        crmpi_enabled_ = 0;
        if (crmpi_proto_comm != MPI_COMM_NULL)
            PMPI_Comm_free(&crmpi_proto_comm);
    }
    return PMPI_Finalize();
}
