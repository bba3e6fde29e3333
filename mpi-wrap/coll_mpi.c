/*
 * coll_mpi.c - struct cr_coll over MPI, for the checkpoint container.
 *
 * Everything goes through a duplicate of the job's communicator made with
 * PMPI_Comm_dup: the store's messages can then never match a receive the
 * application posted, and since only PMPI_* entry points are used the
 * interposed MPI_* wrappers of libcrmpi neither count nor drain them.
 * Payloads larger than INT_MAX bytes are sent in pieces (MPI counts are
 * int). The HDF5 file-access list uses the MPI-IO driver on the same
 * duplicate, so a file is created collectively by exactly these ranks.
 * The collectives are non-blocking ones waited for politely (polite.c):
 * they run inside the checkpoint call, between the ranks' own work.
 */
#include "coll_mpi.h"
#include "polite.h"
#include "common/errors.h"
#include "common/log.h"

#include <limits.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct coll_mpi {
    struct cr_coll c;
    MPI_Comm comm;
};

static MPI_Comm comm_of(struct cr_coll *c)
{
    return ((struct coll_mpi *)c->ctx)->comm;
}

static int mpi_fail(int err, const char *call, struct cr_coll *c)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (PMPI_Error_string(err, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI error %d", err);
    cr_err("rank %d: %s failed: %s", c->rank, call, msg);
    return -EIO;
}

static int mpi_allgather(struct cr_coll *c, const void *send, void *recv, size_t bytes)
{
    if (bytes > INT_MAX)
        return -EOVERFLOW;
    MPI_Request r;
    int e = PMPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, comm_of(c), &r);
    if (e == MPI_SUCCESS)
        e = crmpi_wait_polite(&r);
    return e == MPI_SUCCESS ? 0 : mpi_fail(e, "MPI_Allgather", c);
}

static int mpi_bcast(struct cr_coll *c, void *buf, size_t bytes, int root)
{
    char *p = buf;
    while (bytes) {
        int n = bytes > (1u << 30) ? 1 << 30 : (int)bytes;
        MPI_Request r;
        int e = PMPI_Ibcast(p, n, MPI_BYTE, root, comm_of(c), &r);
        if (e == MPI_SUCCESS)
            e = crmpi_wait_polite(&r);
        if (e != MPI_SUCCESS)
            return mpi_fail(e, "MPI_Bcast", c);
        p += n;
        bytes -= (size_t)n;
    }
    return 0;
}

static int mpi_barrier(struct cr_coll *c)
{
    MPI_Request r;
    int e = PMPI_Ibarrier(comm_of(c), &r);
    if (e == MPI_SUCCESS)
        e = crmpi_wait_polite(&r);
    return e == MPI_SUCCESS ? 0 : mpi_fail(e, "MPI_Barrier", c);
}

static int mpi_allreduce_min(struct cr_coll *c, int64_t *val)
{
    int64_t in = *val;
    MPI_Request r;
    int e = PMPI_Iallreduce(&in, val, 1, MPI_INT64_T, MPI_MIN, comm_of(c), &r);
    if (e == MPI_SUCCESS)
        e = crmpi_wait_polite(&r);
    return e == MPI_SUCCESS ? 0 : mpi_fail(e, "MPI_Allreduce", c);
}

static hid_t mpi_fapl(struct cr_coll *c)
{
    /* A job of one rank shares its files with nobody: the POSIX driver
     * writes the same file without MPI-IO's open, lock probes and views. */
    if (c->size == 1)
        return cr_coll_self()->fapl(c);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) {
        cr_err("H5Pcreate(H5P_FILE_ACCESS) failed");
        return H5I_INVALID_HID;
    }
    /* Metadata is written by independent I/O (HDF5's distributed strategy:
     * each rank writes its share of the few KiB): collective metadata
     * writes (H5Pset_coll_metadata_write) add two MPI_File_write_at_all and
     * four MPI_File_set_view per epoch file, each a collective round in
     * Open MPI's OMPIO - measured slower for these small files. */
    if (H5Pset_fapl_mpio(fapl, comm_of(c), MPI_INFO_NULL) < 0) {
        cr_err("H5Pset_fapl_mpio failed (rank %d)", c->rank);
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    return fapl;
}

/* Open MPI's MPI-IO (OMPIO) sets up a shared file pointer on every
 * collective open, guarded by a named POSIX semaphore, "OMPIO_<basename>"
 * (/dev/shm/sem.OMPIO_epoch-NNNNNNNNNNNN.h5: sharedfp/sm), that rank 0
 * takes and releases in the open. A rank killed while holding it leaves it
 * taken, and the next open of a file of that name - the restarted job's
 * epoch of the same number, or another job's - waits on it forever (seen:
 * transparent_kill_mpi_md_proxy and _mc_proxy hung in MPI_File_open under
 * H5Fcreate). The name is gone once unlinked; a job that has it open keeps
 * its own. */
static void mpi_before_create(struct cr_coll *c, const char *path)
{
    if (c->size == 1)
        return;                     /* mpi_fapl: the POSIX driver */
    const char *base = strrchr(path, '/');
    char name[300];
    if (snprintf(name, sizeof name, "OMPIO_%s", base ? base + 1 : path) < (int)sizeof name &&
        sem_unlink(name) == 0)
        cr_info("removed a semaphore an earlier MPI-IO open of %s left behind (%s)", path, name);
}

int cr_coll_mpi_create(MPI_Comm comm, struct cr_coll **out)
{
    struct coll_mpi *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->c = (struct cr_coll){ .ctx = m, .allgather = mpi_allgather, .bcast = mpi_bcast,
        .barrier = mpi_barrier, .allreduce_min = mpi_allreduce_min, .fapl = mpi_fapl,
        .before_create = mpi_before_create };
    int e = PMPI_Comm_dup(comm, &m->comm);
    if (e != MPI_SUCCESS) {
        free(m);
        cr_err("MPI_Comm_dup failed for the checkpoint store (error %d)", e);
        return -EIO;
    }
    PMPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    PMPI_Comm_rank(m->comm, &m->c.rank);
    PMPI_Comm_size(m->comm, &m->c.size);
    *out = &m->c;
    return 0;
}

void cr_coll_mpi_destroy(struct cr_coll *c)
{
    if (!c)
        return;
    struct coll_mpi *m = c->ctx;
    PMPI_Comm_free(&m->comm);
    free(m);
}
