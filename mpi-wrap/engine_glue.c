/*
 * engine_glue.c - where the MPI layer meets the per-rank runtime (libcr):
 * the checkpoint engine and the region's root slot for the layer's state.
 *
 * Until the runtime's engine and persistent region are part of the build,
 * crmpi_engine_checkpoint() reports -ENOSYS (no checkpoint can be written,
 * and crmpi_checkpoint() says so on every rank) and the state root is a
 * process-local pointer.
 */
#include "protocol.h"
#include "wrap_support.h"

static struct crmpi_state *root;

struct crmpi_state *crmpi_persistent_root(void)
{
    return root;
}

void crmpi_set_persistent_root(struct crmpi_state *st)
{
    root = st;
}

int crmpi_engine_checkpoint(void)
{
    cr_err("libcrmpi was built without the runtime's checkpoint engine: "
           "no checkpoint can be written");
    return -ENOSYS;
}
