/*
 * vtype.c - recipes of derived datatypes.
 *
 * Whatever constructor made a datatype, MPI_Type_get_envelope/get_contents
 * report it as (combiner, integers, addresses, child types): one capture
 * routine serves every constructor, and one replay switch remakes any of
 * them. Children are kept as the application's handles (virtual or
 * predefined) and hold a reference on their virtual object, so a child that
 * the application frees after building its parent (legal MPI) is still
 * there to replay the parent after a restart.
 */
#include "vhandle.h"
#include "wrap_support.h"

#include <stdlib.h>
#include <string.h>

struct vtype *vtype_find_real(MPI_Datatype real)
{
    for (struct vh *v = crmpi_st->live[VH_TYPE].head; v; v = v->next)
        if (v->real.type == real)
            return (struct vtype *)v;
    return NULL;
}

int vtype_capture(struct vtype *v, MPI_Datatype real, const MPI_Datatype *kids, int nkids)
{
    int rc = PMPI_Type_get_envelope(real, &v->ni, &v->na, &v->nd, &v->combiner);
    if (rc != MPI_SUCCESS)
        return rc;
    v->refs = 1;
    v->ints = crmpi_palloc((size_t)(v->ni + 1) * sizeof *v->ints);
    v->aints = crmpi_palloc((size_t)(v->na + 1) * sizeof *v->aints);
    v->types = crmpi_palloc((size_t)(v->nd + 1) * sizeof *v->types);
    if (!v->ints || !v->aints || !v->types) {
        v->nd = 0;
        return MPI_ERR_NO_MEM;
    }
    rc = PMPI_Type_get_contents(real, v->ni, v->na, v->nd, v->ints, v->aints, v->types);
    if (rc != MPI_SUCCESS) {
        v->nd = 0;
        return rc;
    }
    /* Open MPI hands out duplicates of derived children, not the objects
     * the constructor was given: the recipe keeps the application's own
     * handles instead, in the same (argument) order. */
    for (int i = 0; i < v->nd; i++) {
        int ni, na, nd, comb;
        PMPI_Type_get_envelope(v->types[i], &ni, &na, &nd, &comb);
        if (comb == MPI_COMBINER_NAMED)
            continue;
        PMPI_Type_free(&v->types[i]);
        struct vtype *child = i < nkids ? (struct vtype *)vh_get(kids[i], VH_TYPE) : NULL;
        if (!child) {
            cr_err("datatype built from a derived datatype that crmpi did not create "
                   "(combiner %d): cannot be checkpointed", comb);
            for (int j = i; j < v->nd; j++)
                v->types[j] = MPI_DATATYPE_NULL;
            return MPI_ERR_UNSUPPORTED_OPERATION;
        }
        child->refs++;
        v->types[i] = (MPI_Datatype)child;
    }
    return MPI_SUCCESS;
}

/* Drop one reference; the last one frees the real type and the recipe, then
 * releases the children. */
void vtype_unref(struct vtype *v)
{
    if (--v->refs > 0)
        return;
    if (v->h.real.type != MPI_DATATYPE_NULL)
        PMPI_Type_free(&v->h.real.type);
    if (v->h.prev || v->h.next || crmpi_st->live[VH_TYPE].head == &v->h)
        vh_unlink(&v->h);
    v->refs = 0;
    for (int i = 0; i < v->nd; i++) {
        struct vtype *c = (struct vtype *)vh_get(v->types[i], VH_TYPE);
        if (c)
            vtype_unref(c);
    }
    crmpi_pfree(v->ints);
    crmpi_pfree(v->aints);
    crmpi_pfree(v->types);
    vattr_forget(&v->attrs);
    vname_forget(&v->name);
    v->h.magic = VH_DEAD;
    crmpi_pfree(v);
}

void vtype_hold(MPI_Datatype t)
{
    struct vtype *v = (struct vtype *)vh_get(t, VH_TYPE);
    if (v)
        v->refs++;
}

void vtype_drop(MPI_Datatype t)
{
    struct vtype *v = (struct vtype *)vh_get(t, VH_TYPE);
    if (v)
        vtype_unref(v);
}

/* A constructor failed after the real type was made. */
void vtype_destroy(struct vtype *v)
{
    v->refs = 1;
    vtype_unref(v);
}

int vtype_rebuild(struct vtype *v)
{
    const int *i = v->ints;
    const MPI_Aint *a = v->aints;
    MPI_Datatype t[v->nd + 1];
    MPI_Datatype *out = &v->h.real.type;
    int rc;
    for (int k = 0; k < v->nd; k++)
        t[k] = vh_in_type(v->types[k]);
    switch (v->combiner) {
    case MPI_COMBINER_DUP:        rc = PMPI_Type_dup(t[0], out); break;
    case MPI_COMBINER_CONTIGUOUS: rc = PMPI_Type_contiguous(i[0], t[0], out); break;
    case MPI_COMBINER_VECTOR:     rc = PMPI_Type_vector(i[0], i[1], i[2], t[0], out); break;
    case MPI_COMBINER_HVECTOR:
        rc = PMPI_Type_create_hvector(i[0], i[1], a[0], t[0], out); break;
    case MPI_COMBINER_INDEXED:
        rc = PMPI_Type_indexed(i[0], i + 1, i + 1 + i[0], t[0], out); break;
    case MPI_COMBINER_HINDEXED:
        rc = PMPI_Type_create_hindexed(i[0], i + 1, a, t[0], out); break;
    case MPI_COMBINER_INDEXED_BLOCK:
        rc = PMPI_Type_create_indexed_block(i[0], i[1], i + 2, t[0], out); break;
    case MPI_COMBINER_HINDEXED_BLOCK:
        rc = PMPI_Type_create_hindexed_block(i[0], i[1], a, t[0], out); break;
    case MPI_COMBINER_STRUCT:
        rc = PMPI_Type_create_struct(i[0], i + 1, a, t, out); break;
    case MPI_COMBINER_SUBARRAY: {
        int n = i[0];
        rc = PMPI_Type_create_subarray(n, i + 1, i + 1 + n, i + 1 + 2 * n, i[1 + 3 * n], t[0], out);
        break;
    }
    case MPI_COMBINER_DARRAY: {
        int n = i[2];
        rc = PMPI_Type_create_darray(i[0], i[1], n, i + 3, i + 3 + n, i + 3 + 2 * n,
                                     i + 3 + 3 * n, i[3 + 4 * n], t[0], out);
        break;
    }
    case MPI_COMBINER_RESIZED:
        rc = PMPI_Type_create_resized(t[0], a[0], a[1], out); break;
    default:
        cr_err("cannot rebuild a datatype with combiner %d", v->combiner);
        return CR_EUNSUPPORTED;
    }
    if (rc != MPI_SUCCESS) {
        cr_err("replaying datatype constructor (combiner %d) failed: MPI error %d",
               v->combiner, rc);
        return -EIO;
    }
    if (v->committed && PMPI_Type_commit(out) != MPI_SUCCESS)
        return -EIO;
    return 0;
}
