/*
 * objects.c - hand-written wrappers of object life cycles: the free calls,
 * MPI_Comm_idup (its recipe is its parent's),
 * MPI_Type_commit (recorded for the rebuild), user ops and error handlers
 * (their function pointers are the recipe), and error handlers attached to
 * communicators (re-attached after a restart, including those the
 * application set on MPI_COMM_WORLD and MPI_COMM_SELF).
 */
#include "wrap_support.h"

#include <string.h>

#define FREE_WRAPPER(NAME, T, KIND, NULLH)                                 \
    int MPI_##NAME(T *h)                                                   \
    {                                                                      \
        struct vh *v = crmpi_passthrough() ? NULL : vh_get(*h, KIND);      \
        if (!v)                                                            \
            return PMPI_##NAME(h);                                         \
        int rc = vh_free(v);                                               \
        *h = NULLH;                                                        \
        return rc;                                                         \
    }
FREE_WRAPPER(Comm_free,       MPI_Comm,       VH_COMM,  MPI_COMM_NULL)
FREE_WRAPPER(Group_free,      MPI_Group,      VH_GROUP, MPI_GROUP_NULL)
FREE_WRAPPER(Type_free,       MPI_Datatype,   VH_TYPE,  MPI_DATATYPE_NULL)
FREE_WRAPPER(Op_free,         MPI_Op,         VH_OP,    MPI_OP_NULL)
FREE_WRAPPER(Info_free,       MPI_Info,       VH_INFO,  MPI_INFO_NULL)
FREE_WRAPPER(Errhandler_free, MPI_Errhandler, VH_ERRH,  MPI_ERRHANDLER_NULL)
#undef FREE_WRAPPER

/* MPI_Comm_idup: the new communicator has its parent's members, topology
 * and error handler, so its recipe is taken from the parent now. MPI fills
 * in the real handle (Open MPI at once; usable when the request
 * completes); until then the communicator is VH_PENDING and the drain does
 * not probe it (nothing can have been sent on it). The drain completes the
 * request like a non-blocking collective, which every rank must have
 * posted before the checkpoint. */
int MPI_Comm_idup(MPI_Comm comm, MPI_Comm *newcomm, MPI_Request *request)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Comm_idup(comm, newcomm, request);
    MPI_Comm parent = vh_in_comm(comm);
    struct vcomm *v = (struct vcomm *)vh_alloc(sizeof *v, VH_COMM);
    if (!v)
        return MPI_ERR_NO_MEM;
    v->topo = MPI_UNDEFINED;
    v->h.real.comm = MPI_COMM_NULL;
    struct vreq *r = NULL;
    int rc = MPI_ERR_NO_MEM;
    if (vcomm_capture(v, parent) != 0 || !(r = vreq_new(VREQ_IDUP)))
        goto fail;
    vcomm_inherit_errhandler(v, parent);
    rc = PMPI_Comm_idup(parent, &v->h.real.comm, &r->h.real.req);
    if (rc != MPI_SUCCESS)
        goto fail;
    v->h.flags |= VH_PENDING;
    r->comm = (MPI_Comm)v;
    r->state = VREQ_ACTIVE;
    vh_link(&v->h);
    *newcomm = (MPI_Comm)v;
    *request = (MPI_Request)r;
    return MPI_SUCCESS;
fail:
    if (r)
        vreq_release(r);
    vcomm_destroy(v);
    return rc;
}

int MPI_Type_commit(MPI_Datatype *type)
{
    CRMPI_LIB_SCOPE;
    struct vtype *v = crmpi_passthrough() ? NULL : (struct vtype *)vh_get(*type, VH_TYPE);
    if (!v)
        return PMPI_Type_commit(type);
    int rc = PMPI_Type_commit(&v->h.real.type);
    if (rc == MPI_SUCCESS)
        v->committed = 1;
    return rc;
}

int MPI_Op_create(MPI_User_function *fn, int commute, MPI_Op *op)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Op_create(fn, commute, op);
    return vh_out_op(op, fn, commute);
}

/* Open MPI calls an object's error handler with its own handle of the
 * object, which the application has never seen (and a name or handler it
 * set through it would not be recorded): MPI gets a trampoline instead,
 * which finds the application's function through the object's handler and
 * hands it the application's handle. An error handler has no argument of
 * its own to carry the function. */
#define ERRH_TRAMPOLINE(KIND, T, BACK)                                                \
    static void KIND##_trampoline(T *real, int *code, ...)                            \
    {                                                                                 \
        MPI_Errhandler e = MPI_ERRHANDLER_NULL;                                       \
        if (PMPI_##KIND##_get_errhandler(*real, &e) != MPI_SUCCESS)                   \
            return;                                                                   \
        struct verrh *v = (struct verrh *)vh_get(vh_back_errh(e), VH_ERRH);           \
        PMPI_Errhandler_free(&e);                                                     \
        if (!v) {                                                                     \
            cr_err("an error handler was called on an object that has none of the "   \
                   "application's (MPI error %d)", *code);                            \
            return;                                                                   \
        }                                                                             \
        T user = BACK(*real);                                                         \
        ((MPI_##KIND##_errhandler_function *)(void (*)(void))v->fn)(&user, code);     \
    }
ERRH_TRAMPOLINE(Comm, MPI_Comm, vh_back_comm)
ERRH_TRAMPOLINE(Win, MPI_Win, vh_back_win)
ERRH_TRAMPOLINE(File, MPI_File, vh_back_file)
#undef ERRH_TRAMPOLINE

int verrh_make_real(struct verrh *e)
{
    MPI_Errhandler *r = &e->h.real.errh;
    switch (e->obj) {
    case VERRH_WIN:  return PMPI_Win_create_errhandler(Win_trampoline, r);
    case VERRH_FILE: return PMPI_File_create_errhandler(File_trampoline, r);
    default:         return PMPI_Comm_create_errhandler(Comm_trampoline, r);
    }
}

#define CREATE_ERRH(KIND, OBJ)                                                          \
    int MPI_##KIND##_create_errhandler(MPI_##KIND##_errhandler_function *fn,            \
                                       MPI_Errhandler *errh)                            \
    {                                                                                   \
        CRMPI_LIB_SCOPE;                                                                \
        if (crmpi_passthrough())                                                        \
            return PMPI_##KIND##_create_errhandler(fn, errh);                           \
        return vh_out_errh(errh, (MPI_Comm_errhandler_function *)(void (*)(void))fn, OBJ); \
    }
CREATE_ERRH(Comm, VERRH_COMM)
CREATE_ERRH(Win, VERRH_WIN)
CREATE_ERRH(File, VERRH_FILE)
#undef CREATE_ERRH

static int record_errhandler(MPI_Comm comm, MPI_Errhandler errh)
{
    struct vcomm *v = (struct vcomm *)vh_get(comm, VH_COMM);
    if (v)
        v->errh = errh;
    else if (comm == MPI_COMM_WORLD)
        crmpi_st->world_errh = errh;
    else if (comm == MPI_COMM_SELF)
        crmpi_st->self_errh = errh;
    return MPI_SUCCESS;
}

int MPI_Comm_set_errhandler(MPI_Comm comm, MPI_Errhandler errh)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Comm_set_errhandler(comm, errh);
    int rc = PMPI_Comm_set_errhandler(vh_in_comm(comm), vh_in_errh(errh));
    if (rc == MPI_SUCCESS)
        record_errhandler(comm, errh);
    return rc;
}

/* The application's handle of an object's handler (a user one counts one
 * more handle of the application's). */
#define GET_ERRH(KIND, T, IN)                                                      \
    int MPI_##KIND##_get_errhandler(T o, MPI_Errhandler *errh)                     \
    {                                                                              \
        CRMPI_LIB_SCOPE;                                                           \
        if (crmpi_passthrough())                                                   \
            return PMPI_##KIND##_get_errhandler(o, errh);                          \
        MPI_Errhandler real;                                                       \
        int rc = PMPI_##KIND##_get_errhandler(IN(o), &real);                       \
        if (rc == MPI_SUCCESS)                                                     \
            *errh = verrh_to_app(real);                                            \
        return rc;                                                                 \
    }
GET_ERRH(Comm, MPI_Comm, vh_in_comm)
GET_ERRH(Win, MPI_Win, vh_in_win)
GET_ERRH(File, MPI_File, vh_in_file)
#undef GET_ERRH

MPI_Errhandler verrh_to_app(MPI_Errhandler real)
{
    MPI_Errhandler v = vh_back_errh(real);
    struct verrh *e = (struct verrh *)vh_get(v, VH_ERRH);
    if (e) {
        e->refs++;                     /* one more handle of the application's */
        if (e->h.flags & VH_FREED)
            e->h.flags &= ~VH_FREED;   /* the reference just added is ours again */
        else
            PMPI_Errhandler_free(&real);   /* we hold one already */
    }
    return v;
}


/* Answered from the recipe: Open MPI would hand out duplicates of derived
 * children, which the application could not compare with its own handles.
 * Each derived child returned is a new reference (MPI: the caller frees it). */
int MPI_Type_get_contents(MPI_Datatype type, int max_integers, int max_addresses,
                          int max_datatypes, int ints[], MPI_Aint aints[], MPI_Datatype types[])
{
    CRMPI_LIB_SCOPE;
    struct vtype *v = crmpi_passthrough() ? NULL : (struct vtype *)vh_get(type, VH_TYPE);
    if (!v)
        return PMPI_Type_get_contents(type, max_integers, max_addresses, max_datatypes,
                                      ints, aints, types);
    if (max_integers < v->ni || max_addresses < v->na || max_datatypes < v->nd)
        return MPI_ERR_ARG;
    memcpy(ints, v->ints, (size_t)v->ni * sizeof *ints);
    memcpy(aints, v->aints, (size_t)v->na * sizeof *aints);
    for (int i = 0; i < v->nd; i++) {
        struct vtype *c = (struct vtype *)vh_get(v->types[i], VH_TYPE);
        if (c)
            c->refs++;
        types[i] = v->types[i];
    }
    return MPI_SUCCESS;
}
