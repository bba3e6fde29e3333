/*
 * vop.c - user reduction operations: the datatype their function is given.
 *
 * Open MPI calls a user function with its own handle of the datatype, which
 * for a derived type is not the application's (and changes at every
 * restart): a function that compares it with its own handles goes wrong.
 * An MPI_User_function has no argument to carry context, so each user op is
 * made with one of VOP_SLOTS fixed trampolines, which knows its slot, maps
 * the datatype back to the application's handle and calls the function. A
 * live op keeps its slot across restarts (vop.slot); the table itself is
 * process memory, filled again as the ops are rebuilt. Beyond VOP_SLOTS
 * live ops, MPI calls the function directly (a warning says so once).
 *
 * MPI lets the application free an op that a pending non-blocking
 * collective still uses: the slot of a freed op keeps its function until
 * the next checkpoint's drain has completed every collective
 * (vop_release_retired), and only then serves another op.
 */
#include "vhandle.h"
#include "wrap_support.h"

#define VOP_SLOTS 64

static MPI_User_function *slot_fn[VOP_SLOTS];   /* NULL: free */
static char retired[VOP_SLOTS];                 /* its op was freed */

static void call(int i, void *in, void *inout, int *len, MPI_Datatype *dt)
{
    MPI_Datatype user = vh_back_type(*dt);
    slot_fn[i](in, inout, len, &user);
}

/* tramp_I_J is slot 8*I+J. */
#define T(i, j)                                                            \
    static void tramp_##i##_##j(void *a, void *b, int *n, MPI_Datatype *d) \
    {                                                                      \
        call(8 * i + j, a, b, n, d);                                       \
    }
#define T8(i) T(i, 0) T(i, 1) T(i, 2) T(i, 3) T(i, 4) T(i, 5) T(i, 6) T(i, 7)
T8(0) T8(1) T8(2) T8(3) T8(4) T8(5) T8(6) T8(7)
#undef T
#define T(i, j) tramp_##i##_##j,
static MPI_User_function *const tramps[VOP_SLOTS] = {
    T8(0) T8(1) T8(2) T8(3) T8(4) T8(5) T8(6) T8(7)
};
#undef T
#undef T8

int vop_make_real(struct vop *o)
{
    for (int i = 0; !o->slot && i < VOP_SLOTS; i++)
        if (!slot_fn[i])
            o->slot = i + 1;
    if (o->slot) {
        slot_fn[o->slot - 1] = o->fn;
        retired[o->slot - 1] = 0;
    } else {
        static int warned;
        if (!warned++)
            cr_warn("more than %d user reduction operations: the functions of the "
                    "others get Open MPI's datatype handles", VOP_SLOTS);
    }
    return PMPI_Op_create(o->slot ? tramps[o->slot - 1] : o->fn, o->commute, &o->h.real.op);
}

void vop_forget(struct vop *o)
{
    if (o->slot)
        retired[o->slot - 1] = 1;    /* a pending collective may still call it */
    o->slot = 0;
}

void vop_release_retired(void)
{
    for (int i = 0; i < VOP_SLOTS; i++) {
        if (retired[i]) {
            slot_fn[i] = NULL;
            retired[i] = 0;
        }
    }
}
