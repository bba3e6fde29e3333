/*
 * vcomm.c - recipes of communicators and groups.
 *
 * A communicator is remembered as the MPI_COMM_WORLD ranks of its members in
 * its own rank order, plus its virtual topology; a group as the world ranks
 * of its members. After a restart, MPI_Comm_create_group over MPI_COMM_WORLD
 * with the same member list makes an equivalent communicator (same ranks:
 * group order is rank order), which is collective over the members only, so
 * ranks that are not members of a communicator never wait for it. Topologies
 * are re-applied with reorder = 0 so ranks stay as recorded. An
 * inter-communicator also records its remote group; it is made again from
 * its local group's new communicator with MPI_Intercomm_create, the two
 * groups' first ranks as leaders.
 */
#include "vhandle.h"
#include "wrap_support.h"

#include <stdlib.h>
#include <string.h>

/* Tag of the MPI_Comm_create_group calls of a rebuild: ranks rebuild their
 * communicators one after the other in creation order, so one tag suffices. */
#define VCOMM_REBUILD_TAG 0x4352
/* Tag of the leaders' MPI_Intercomm_create over MPI_COMM_WORLD in a rebuild:
 * a fresh MPI carries no message of the application's then. */
#define VCOMM_INTER_TAG 0x4353

static int world_ranks_of_group(MPI_Group g, int n, int **out)
{
    MPI_Group world;
    int *ranks = malloc((size_t)n * sizeof *ranks);
    int *w = crmpi_palloc((size_t)(n ? n : 1) * sizeof *w);
    int rc = -ENOMEM;
    if (!ranks || !w)
        goto free_all;
    for (int i = 0; i < n; i++)
        ranks[i] = i;
    rc = -EIO;
    if (PMPI_Comm_group(MPI_COMM_WORLD, &world) != MPI_SUCCESS)
        goto free_all;
    int mrc = PMPI_Group_translate_ranks(g, n, ranks, world, w);
    PMPI_Group_free(&world);
    if (mrc != MPI_SUCCESS)
        goto free_all;
    free(ranks);
    *out = w;
    return 0;
free_all:
    free(ranks);
    crmpi_pfree(w);
    return rc;
}

static int capture_topology(struct vcomm *v, MPI_Comm real)
{
    int topo = MPI_UNDEFINED, *d = NULL, n = 0;
    if (PMPI_Topo_test(real, &topo) != MPI_SUCCESS)
        return -EIO;
    v->topo = topo;
    if (topo == MPI_CART) {
        int nd;
        PMPI_Cartdim_get(real, &nd);
        n = 1 + 2 * nd;
        d = crmpi_palloc((size_t)n * sizeof *d);
        int *coords = malloc((size_t)(nd ? nd : 1) * sizeof *coords);
        if (!d || !coords) {
            free(coords);
            return -ENOMEM;
        }
        d[0] = nd;
        PMPI_Cart_get(real, nd, d + 1, d + 1 + nd, coords);
        free(coords);
    } else if (topo == MPI_GRAPH) {
        int nn, ne;
        PMPI_Graphdims_get(real, &nn, &ne);
        n = 2 + nn + ne;
        if (!(d = crmpi_palloc((size_t)n * sizeof *d)))
            return -ENOMEM;
        d[0] = nn;
        d[1] = ne;
        PMPI_Graph_get(real, nn, ne, d + 2, d + 2 + nn);
    } else if (topo == MPI_DIST_GRAPH) {
        int in, out, weighted;
        PMPI_Dist_graph_neighbors_count(real, &in, &out, &weighted);
        n = 3 + 2 * in + 2 * out;
        if (!(d = crmpi_palloc((size_t)n * sizeof *d)))
            return -ENOMEM;
        d[0] = in;
        d[1] = out;
        d[2] = weighted;
        int *src = d + 3, *srcw = src + in, *dst = srcw + in, *dstw = dst + out;
        PMPI_Dist_graph_neighbors(real, in, src, weighted ? srcw : MPI_UNWEIGHTED,
                                  out, dst, weighted ? dstw : MPI_UNWEIGHTED);
    }
    v->topo_data = d;
    v->ntopo = n;
    return 0;
}

int vcomm_capture(struct vcomm *v, MPI_Comm real)
{
    MPI_Group g;
    if (PMPI_Comm_size(real, &v->size) != MPI_SUCCESS ||
        PMPI_Comm_rank(real, &v->rank) != MPI_SUCCESS ||
        PMPI_Comm_group(real, &g) != MPI_SUCCESS)
        return -EIO;
    int rc = world_ranks_of_group(g, v->size, &v->world);
    PMPI_Group_free(&g);
    if (rc)
        return rc;
    int inter = 0;
    if (PMPI_Comm_test_inter(real, &inter) != MPI_SUCCESS)
        return -EIO;
    if (inter) {
        if (PMPI_Comm_remote_size(real, &v->rsize) != MPI_SUCCESS ||
            PMPI_Comm_remote_group(real, &g) != MPI_SUCCESS)
            return -EIO;
        rc = world_ranks_of_group(g, v->rsize, &v->rworld);
        PMPI_Group_free(&g);
        return rc;
    }
    return capture_topology(v, real);
}

/* A new communicator inherits its parent's error handler (MPI 3.1, 8.3),
 * which the rebuild must apply: it makes every communicator from
 * MPI_COMM_WORLD, whose handler is the fresh MPI's default at that point. */
void vcomm_inherit_errhandler(struct vcomm *v, MPI_Comm real)
{
    MPI_Errhandler e;
    if (PMPI_Comm_get_errhandler(real, &e) != MPI_SUCCESS)
        return;
    v->errh = vh_back_errh(e);
    if (v->errh != e)
        PMPI_Errhandler_free(&e);   /* the reference get_errhandler added */
}

static int apply_topology(struct vcomm *v, MPI_Comm *c)
{
    MPI_Comm t = MPI_COMM_NULL;
    int *d = v->topo_data, rc = MPI_SUCCESS;
    if (v->topo == MPI_CART) {
        rc = PMPI_Cart_create(*c, d[0], d + 1, d + 1 + d[0], 0, &t);
    } else if (v->topo == MPI_GRAPH) {
        rc = PMPI_Graph_create(*c, d[0], d + 2, d + 2 + d[0], 0, &t);
    } else if (v->topo == MPI_DIST_GRAPH) {
        int in = d[0], out = d[1], weighted = d[2];
        int *src = d + 3, *srcw = src + in, *dst = srcw + in, *dstw = dst + out;
        rc = PMPI_Dist_graph_create_adjacent(*c, in, src, weighted ? srcw : MPI_UNWEIGHTED,
                                             out, dst, weighted ? dstw : MPI_UNWEIGHTED,
                                             MPI_INFO_NULL, 0, &t);
    } else {
        return 0;
    }
    PMPI_Comm_free(c);
    if (rc != MPI_SUCCESS)
        return -EIO;
    *c = t;
    return 0;
}

int vcomm_rebuild(struct vcomm *v)
{
    MPI_Group world, g;
    MPI_Comm c = MPI_COMM_NULL;
    if (PMPI_Comm_group(MPI_COMM_WORLD, &world) != MPI_SUCCESS)
        return -EIO;
    int rc = PMPI_Group_incl(world, v->size, v->world, &g);
    PMPI_Group_free(&world);
    if (rc != MPI_SUCCESS) {
        cr_err("MPI_Group_incl of %d world ranks failed rebuilding a communicator", v->size);
        return -EIO;
    }
    rc = PMPI_Comm_create_group(MPI_COMM_WORLD, g, VCOMM_REBUILD_TAG, &c);
    PMPI_Group_free(&g);
    if (rc != MPI_SUCCESS || c == MPI_COMM_NULL) {
        cr_err("MPI_Comm_create_group failed rebuilding a communicator of %d ranks", v->size);
        return -EIO;
    }
    if (apply_topology(v, &c) != 0) {
        cr_err("re-applying the topology (kind %d) of a communicator failed", v->topo);
        return -EIO;
    }
    if (v->rworld) {
        MPI_Comm inter = MPI_COMM_NULL;
        rc = PMPI_Intercomm_create(c, 0, MPI_COMM_WORLD, v->rworld[0], VCOMM_INTER_TAG, &inter);
        PMPI_Comm_free(&c);
        if (rc != MPI_SUCCESS) {
            cr_err("MPI_Intercomm_create failed rebuilding an inter-communicator of %d and "
                   "%d ranks (MPI error %d)", v->size, v->rsize, rc);
            return -EIO;
        }
        c = inter;
    }
    if (v->errh)
        PMPI_Comm_set_errhandler(c, vh_in_errh(v->errh));
    v->h.real.comm = c;
    return 0;
}

void vcomm_destroy(struct vcomm *v)
{
    crmpi_pfree(v->world);
    crmpi_pfree(v->rworld);
    crmpi_pfree(v->topo_data);
    vattr_forget(&v->attrs);
    vname_forget(&v->name);
    v->h.magic = VH_DEAD;
    crmpi_pfree(v);
}

int vgroup_capture(struct vgroup *v, MPI_Group real)
{
    if (PMPI_Group_size(real, &v->size) != MPI_SUCCESS)
        return -EIO;
    return world_ranks_of_group(real, v->size, &v->world);
}

int vgroup_rebuild(struct vgroup *v)
{
    MPI_Group world;
    if (PMPI_Comm_group(MPI_COMM_WORLD, &world) != MPI_SUCCESS)
        return -EIO;
    int rc = PMPI_Group_incl(world, v->size, v->world, &v->h.real.group);
    PMPI_Group_free(&world);
    return rc == MPI_SUCCESS ? 0 : -EIO;
}
