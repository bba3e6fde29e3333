/*
 * coll_self.c - the collective operations of a single process, and the
 * status agreement every collective step of the store ends with.
 *
 * With one rank every collective is a copy or nothing; the HDF5 file is
 * created with the plain POSIX (sec2) driver. The MPI job's version lives
 * in mpi-wrap/coll_mpi.c, so nothing in src/ calls MPI.
 */
#include "store/store.h"
#include "common/errors.h"
#include "common/log.h"

#include <string.h>

static int self_allgather(struct cr_coll *c, const void *send, void *recv, size_t bytes)
{
    memmove(recv, send, bytes);
    return 0;
}

static int self_bcast(struct cr_coll *c, void *buf, size_t bytes, int root)
{
    return root == 0 ? 0 : -EINVAL;
}

static int self_barrier(struct cr_coll *c)
{
    return 0;
}

static int self_allreduce_min(struct cr_coll *c, int64_t *val)
{
    return 0;
}

static hid_t self_fapl(struct cr_coll *c)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) {
        cr_err("H5Pcreate(H5P_FILE_ACCESS) failed");
        return H5I_INVALID_HID;
    }
    if (H5Pset_fapl_sec2(fapl) < 0) {
        cr_err("H5Pset_fapl_sec2 failed");
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    return fapl;
}

static struct cr_coll self_coll = {
    .rank = 0, .size = 1, .ctx = NULL,
    .allgather = self_allgather, .bcast = self_bcast, .barrier = self_barrier,
    .allreduce_min = self_allreduce_min, .fapl = self_fapl,
};

struct cr_coll *cr_coll_self(void)
{
    return &self_coll;
}

int cr_coll_agree(struct cr_coll *c, int status)
{
    int64_t v = status < 0 ? status : 0;
    int rc = c->allreduce_min(c, &v);
    if (rc < 0) {
        cr_errc(rc, "rank %d: agreeing on a status failed", c->rank);
        return rc;
    }
    if (v < 0)
        return status < 0 ? (int)v : CR_EREMOTE;
    return 0;
}
