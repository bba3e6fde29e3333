/*
 * engine_glue.c - where the MPI layer meets the per-rank runtime (libcr):
 * persistent allocation, the region's root slot for the layer's state, the
 * restore at MPI_Init and the checkpoint engine.
 *
 * libcrmpi starts main
 * with the restore deferred (start_defer.c); MPI_Init calls
 * crmpi_runtime_start(), which makes the MPI collective of the container
 * (coll_mpi.h, a PMPI duplicate of MPI_COMM_WORLD), hands it to the engine
 * and asks the runtime to restore. When a committed checkpoint exists that
 * call does not return: main resumes inside crmpi_checkpoint(), where
 * cr_checkpoint() returns CR_RESTARTED. A checkpoint is the rendezvous of
 * the rank's persistent threads (cr_exec_checkpoint_here): when all have
 * stopped, the thread that called crmpi_checkpoint() writes the epoch
 * collectively through the same collective, so MPI is only ever called from
 * a thread the application's thread level allows.
 */
#include "protocol.h"
#include "wrap_support.h"

#include <stdlib.h>
#include <string.h>

#include "coll_mpi.h"
#include "exec/exec.h"
#include "region/region.h"

static struct cr_coll *coll;
static struct crmpi_state *local_root;

static int persistent(void)
{
    return cr_exec_rt_.persistent && cr_region_is_open();
}

void *crmpi_palloc(size_t size)
{
    return persistent() ? crmalloc(size ? size : 1) : malloc(size ? size : 1);
}

void crmpi_pfree(void *p)
{
    if (p && cr_region_is_open() && cr_region_contains(p, 1))
        crfree(p);
    else
        free(p);
}

/* Without the persistent runtime (the layer's unit tests link its objects
 * alone) nothing is ever restored, and there is nothing to check. */
int crmpi_mem_restored(const void *p, size_t len)
{
    if (!len || !persistent())
        return 1;
    return (cr_region_is_open() && cr_region_contains(p, len)) || cr_transparent_saves(p, len);
}

/* Memory from MPI_Alloc_mem is the application's data like any other, so
 * it comes from the persistent heap (Open MPI's own would be the C
 * library's, not saved). The info hints (registered memory for RDMA) do not
 * apply to it. MPI_Free_mem gives back either kind. */
int MPI_Alloc_mem(MPI_Aint size, MPI_Info info, void *baseptr)
{
    if (crmpi_passthrough() || !persistent())
        return PMPI_Alloc_mem(size, vh_in_info(info), baseptr);
    if (size < 0)
        return MPI_ERR_SIZE;
    void *p = crmalloc(size ? (size_t)size : 1);
    if (!p)
        return MPI_ERR_NO_MEM;
    memcpy(baseptr, &p, sizeof p);     /* baseptr is a void ** passed as void * */
    return MPI_SUCCESS;
}

int MPI_Free_mem(void *base)
{
    if (base && cr_region_is_open() && cr_region_contains(base, 1)) {
        crfree(base);
        return MPI_SUCCESS;
    }
    return PMPI_Free_mem(base);
}

struct crmpi_state *crmpi_persistent_root(void)
{
    return persistent() ? cr_region_root(CR_ROOT_MPI) : local_root;
}

void crmpi_set_persistent_root(struct crmpi_state *st)
{
    if (persistent())
        cr_region_set_root(CR_ROOT_MPI, st);
    else
        local_root = st;
}

int crmpi_runtime_start(void)
{
    if (!persistent())
        return 0;      /* the runtime already said why, if it matters */
    int rc = cr_coll_mpi_create(MPI_COMM_WORLD, &coll);
    if (rc) {
        cr_errc(rc, "cannot create the checkpoint container's MPI collective");
        return rc;
    }
    cr_exec_set_coll(coll);
    crmpi_internal_enter();
    rc = cr_exec_restore(coll);          /* does not return on a restart */
    crmpi_internal_leave();
    if (rc == CR_ENOCKPT || rc == CR_ESTATE)
        return 0;
    return rc;
}

int crmpi_engine_checkpoint(void)
{
    if (!persistent()) {
        cr_err("crmpi_checkpoint(): this process has no persistent region "
               "(main was not started by libcrmpi): nothing can be saved");
        return -ENOSYS;
    }
    return cr_exec_checkpoint_here();
}
