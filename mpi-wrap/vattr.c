/*
 * vattr.c - attribute keys (keyvals) and the attributes cached on
 * communicators, datatypes and windows, and the names given to
 * communicators and datatypes, kept across a restart.
 *
 * Libraries keep their state on communicators this way (PETSc finds its
 * inner communicator through an attribute of the user's): after a restart
 * the attribute must still be there, under the key the library holds.
 *
 * Keyvals are plain integers the application stores, and a fresh MPI may
 * hand out other numbers (Open MPI's own components create keyvals too,
 * some lazily). So the application gets a number of crmpi's (its id, the
 * same in every run) and every attribute call translates it to this run's
 * (predefined keys such as MPI_TAG_UB are not in the table and pass
 * unchanged). The recipe of a key is its copy and delete functions and
 * extra state (stable addresses: no ASLR).
 *
 * Attribute values are not tracked call by call: the copy callbacks of
 * MPI_Comm_dup decide what a new communicator carries, inside MPI. Each
 * checkpoint takes a snapshot instead (vattr_snapshot, with the info
 * keys'): for every live communicator (MPI_COMM_WORLD and MPI_COMM_SELF
 * included) and datatype, the value under every live key. A restart makes
 * the keys again in creation order, then, once the objects are rebuilt,
 * sets the values back without running any copy callback. A value is
 * stored as MPI holds it (a pointer, usually into the persistent heap).
 */
#include "vhandle.h"
#include "wrap_support.h"

#include <stdlib.h>
#include <string.h>

enum { VK_COMM = 1, VK_TYPE, VK_WIN };
#define CRMPI_KEYVAL_BASE 0x4b560000    /* "KV" */

struct vkeyval {
    struct vkeyval *next;          /* creation order */
    int kind;                      /* VK_COMM, VK_TYPE */
    int id;                        /* the application's number */
    int real;                      /* this run's */
    void (*copy_fn)(void);         /* MPI_{Comm,Type}_copy_attr_function */
    void (*delete_fn)(void);
    void *extra;
};

/* ---- keys ------------------------------------------------------------------- */

static struct vkeyval *find_id(int kind, int id)
{
    for (struct vkeyval *k = crmpi_st->keyvals; k; k = k->next)
        if (k->kind == kind && k->id == id)
            return k;
    return NULL;
}

static int real_key(int kind, int id)
{
    struct vkeyval *k = find_id(kind, id);
    return k ? k->real : id;
}

/* Open MPI calls a key's copy and delete functions with its own handle of
 * the object and its own key number, neither of which the application
 * knows: MPI gets these trampolines, with the key's record as their extra
 * state, which call the application's functions with its handle, its key
 * number and its extra state. */
#define KEY_TRAMPOLINES(NAME, T, PFX, BACK)                                              \
    static int copy_##NAME(T old, int unused, void *kp, void *in, void *out, int *flag)    \
    {                                                                                      \
        (void)unused;                                                                      \
        struct vkeyval *k = kp;                                                            \
        if (!k->copy_fn) {                                                                 \
            *flag = 0;                                                                     \
            return MPI_SUCCESS;                                                            \
        }                                                                                  \
        return ((MPI_##PFX##_copy_attr_function *)k->copy_fn)(BACK(old), k->id, k->extra,  \
                                                              in, out, flag);              \
    }                                                                                      \
    static int delete_##NAME(T o, int unused, void *val, void *kp)                         \
    {                                                                                      \
        (void)unused;                                                                      \
        struct vkeyval *k = kp;                                                            \
        return k->delete_fn ? ((MPI_##PFX##_delete_attr_function *)k->delete_fn)(          \
                                  BACK(o), k->id, val, k->extra)                           \
                            : MPI_SUCCESS;                                                 \
    }
KEY_TRAMPOLINES(comm, MPI_Comm, Comm, vh_back_comm)
KEY_TRAMPOLINES(type, MPI_Datatype, Type, vh_back_type)
KEY_TRAMPOLINES(win, MPI_Win, Win, vh_back_win)
#undef KEY_TRAMPOLINES

static int make_real(struct vkeyval *k)
{
    switch (k->kind) {
    case VK_COMM: return PMPI_Comm_create_keyval(copy_comm, delete_comm, &k->real, k);
    case VK_TYPE: return PMPI_Type_create_keyval(copy_type, delete_type, &k->real, k);
    default:      return PMPI_Win_create_keyval(copy_win, delete_win, &k->real, k);
    }
}

static int free_real(int kind, int *real)
{
    switch (kind) {
    case VK_COMM: return PMPI_Comm_free_keyval(real);
    case VK_TYPE: return PMPI_Type_free_keyval(real);
    default:      return PMPI_Win_free_keyval(real);
    }
}

/* The attribute calls on a real object of a kind (Open MPI's handles are
 * all pointers). */
static int get_real(int kind, void *o, int key, void *val, int *flag)
{
    switch (kind) {
    case VK_COMM: return PMPI_Comm_get_attr((MPI_Comm)o, key, val, flag);
    case VK_TYPE: return PMPI_Type_get_attr((MPI_Datatype)o, key, val, flag);
    default:      return PMPI_Win_get_attr((MPI_Win)o, key, val, flag);
    }
}

static int set_real(int kind, void *o, int key, void *val)
{
    switch (kind) {
    case VK_COMM: return PMPI_Comm_set_attr((MPI_Comm)o, key, val);
    case VK_TYPE: return PMPI_Type_set_attr((MPI_Datatype)o, key, val);
    default:      return PMPI_Win_set_attr((MPI_Win)o, key, val);
    }
}

static int create_key(int kind, void (*copy_fn)(void), void (*delete_fn)(void), int *keyval,
                      void *extra)
{
    struct vkeyval *k = crmpi_palloc(sizeof *k);
    if (!k)
        return MPI_ERR_NO_MEM;
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->copy_fn = copy_fn;
    k->delete_fn = delete_fn;
    k->extra = extra;
    int rc = make_real(k);
    if (rc != MPI_SUCCESS) {
        crmpi_pfree(k);
        return rc;
    }
    /* Not the real number: after a restart MPI may hand that number to
     * another key. Far above Open MPI's (small, bitmap-allocated) numbers,
     * so a predefined key passed through can never be taken for one. */
    k->id = CRMPI_KEYVAL_BASE + crmpi_st->keyval_seq++;
    struct vkeyval **tail = &crmpi_st->keyvals;
    while (*tail)
        tail = &(*tail)->next;
    *tail = k;
    *keyval = k->id;
    return MPI_SUCCESS;
}

static int free_key(int kind, int *keyval)
{
    for (struct vkeyval **p = &crmpi_st->keyvals; *p; p = &(*p)->next) {
        struct vkeyval *k = *p;
        if (k->kind != kind || k->id != *keyval)
            continue;
        int real = k->real;
        int rc = free_real(kind, &real);
        if (rc != MPI_SUCCESS)
            return rc;
        /* The record stays until the next rebuild: MPI calls the
         * callbacks of attributes still set under the key with it. */
        *p = k->next;
        k->next = crmpi_st->freed_keys;
        crmpi_st->freed_keys = k;
        *keyval = MPI_KEYVAL_INVALID;
        return MPI_SUCCESS;
    }
    return free_real(kind, keyval);
}

int MPI_Comm_create_keyval(MPI_Comm_copy_attr_function *copy_fn,
                           MPI_Comm_delete_attr_function *delete_fn, int *keyval, void *extra)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Comm_create_keyval(copy_fn, delete_fn, keyval, extra);
    return create_key(VK_COMM, (void (*)(void))copy_fn, (void (*)(void))delete_fn, keyval, extra);
}

int MPI_Type_create_keyval(MPI_Type_copy_attr_function *copy_fn,
                           MPI_Type_delete_attr_function *delete_fn, int *keyval, void *extra)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Type_create_keyval(copy_fn, delete_fn, keyval, extra);
    return create_key(VK_TYPE, (void (*)(void))copy_fn, (void (*)(void))delete_fn, keyval, extra);
}

int MPI_Win_create_keyval(MPI_Win_copy_attr_function *copy_fn,
                          MPI_Win_delete_attr_function *delete_fn, int *keyval, void *extra)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Win_create_keyval(copy_fn, delete_fn, keyval, extra);
    return create_key(VK_WIN, (void (*)(void))copy_fn, (void (*)(void))delete_fn, keyval, extra);
}

int MPI_Win_free_keyval(int *keyval)
{
    CRMPI_LIB_SCOPE;
    return crmpi_passthrough() ? PMPI_Win_free_keyval(keyval) : free_key(VK_WIN, keyval);
}

int MPI_Comm_free_keyval(int *keyval)
{
    CRMPI_LIB_SCOPE;
    return crmpi_passthrough() ? PMPI_Comm_free_keyval(keyval) : free_key(VK_COMM, keyval);
}

int MPI_Type_free_keyval(int *keyval)
{
    CRMPI_LIB_SCOPE;
    return crmpi_passthrough() ? PMPI_Type_free_keyval(keyval) : free_key(VK_TYPE, keyval);
}

/* ---- attribute calls: the key translated -------------------------------------- */

#define ATTR_CALLS(PREFIX, T, KIND, IN)                                                \
    int MPI_##PREFIX##_set_attr(T o, int keyval, void *val)                            \
    {                                                                                  \
        CRMPI_LIB_SCOPE;                                                               \
        if (crmpi_passthrough())                                                       \
            return PMPI_##PREFIX##_set_attr(o, keyval, val);                           \
        return PMPI_##PREFIX##_set_attr(IN(o), real_key(KIND, keyval), val);           \
    }                                                                                  \
    int MPI_##PREFIX##_get_attr(T o, int keyval, void *val, int *flag)                 \
    {                                                                                  \
        CRMPI_LIB_SCOPE;                                                               \
        if (crmpi_passthrough())                                                       \
            return PMPI_##PREFIX##_get_attr(o, keyval, val, flag);                     \
        return PMPI_##PREFIX##_get_attr(IN(o), real_key(KIND, keyval), val, flag);     \
    }                                                                                  \
    int MPI_##PREFIX##_delete_attr(T o, int keyval)                                    \
    {                                                                                  \
        CRMPI_LIB_SCOPE;                                                               \
        if (crmpi_passthrough())                                                       \
            return PMPI_##PREFIX##_delete_attr(o, keyval);                             \
        return PMPI_##PREFIX##_delete_attr(IN(o), real_key(KIND, keyval));             \
    }
ATTR_CALLS(Comm, MPI_Comm, VK_COMM, vh_in_comm)
ATTR_CALLS(Type, MPI_Datatype, VK_TYPE, vh_in_type)
#undef ATTR_CALLS

int MPI_Win_set_attr(MPI_Win w, int keyval, void *val)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Win_set_attr(w, keyval, val);
    return PMPI_Win_set_attr(vh_in_win(w), real_key(VK_WIN, keyval), val);
}

int MPI_Win_delete_attr(MPI_Win w, int keyval)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Win_delete_attr(w, keyval);
    return PMPI_Win_delete_attr(vh_in_win(w), real_key(VK_WIN, keyval));
}

/* The flavor is the one the application asked for: MPI made an allocated
 * window with MPI_Win_create (vwin.c). */
int MPI_Win_get_attr(MPI_Win win, int keyval, void *val, int *flag)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Win_get_attr(win, keyval, val, flag);
    struct vwin *w = (struct vwin *)vh_get(win, VH_WIN);
    if (w && keyval == MPI_WIN_CREATE_FLAVOR) {
        int *p = &w->flavor;
        memcpy(val, &p, sizeof p);
        *flag = 1;
        return MPI_SUCCESS;
    }
    return PMPI_Win_get_attr(vh_in_win(win), real_key(VK_WIN, keyval), val, flag);
}

/* The MPI-1 names (deprecated, still in Open MPI 4.1). */
int MPI_Attr_put(MPI_Comm comm, int keyval, void *val)
{
    return MPI_Comm_set_attr(comm, keyval, val);
}

int MPI_Attr_get(MPI_Comm comm, int keyval, void *val, int *flag)
{
    return MPI_Comm_get_attr(comm, keyval, val, flag);
}

int MPI_Attr_delete(MPI_Comm comm, int keyval)
{
    return MPI_Comm_delete_attr(comm, keyval);
}

/* ---- snapshot and restore ------------------------------------------------------- */

/* The values a real object holds under every live key of its kind, into a
 * fresh array of the persistent heap (NULL when none). */
static int take(int kind, void *o, struct vattr_set *out)
{
    size_t n = 0, cap = 0;
    struct vattr *a = NULL;
    for (struct vkeyval *k = crmpi_st->keyvals; k; k = k->next) {
        if (k->kind != kind)
            continue;
        void *val = NULL;
        int flag = 0;
        int rc = get_real(kind, o, k->real, &val, &flag);
        if (rc != MPI_SUCCESS || !flag)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 4;
            struct vattr *b = crmpi_palloc(cap * sizeof *b);
            if (!b) {
                crmpi_pfree(a);
                return -ENOMEM;
            }
            if (n)
                memcpy(b, a, n * sizeof *b);
            crmpi_pfree(a);
            a = b;
        }
        a[n].keyval = k->id;
        a[n].val = val;
        n++;
    }
    crmpi_pfree(out->a);
    out->a = a;
    out->n = n;
    return 0;
}

int vattr_snapshot(void)
{
    if (!crmpi_st->keyvals)
        return 0;
    int rc = take(VK_COMM, MPI_COMM_WORLD, &crmpi_st->world_attrs);
    if (!rc)
        rc = take(VK_COMM, MPI_COMM_SELF, &crmpi_st->self_attrs);
    for (struct vh *v = crmpi_st->live[VH_COMM].head; v && !rc; v = v->next)
        if (!(v->flags & VH_PENDING))
            rc = take(VK_COMM, v->real.comm, &((struct vcomm *)v)->attrs);
    for (struct vh *v = crmpi_st->live[VH_TYPE].head; v && !rc; v = v->next)
        rc = take(VK_TYPE, v->real.type, &((struct vtype *)v)->attrs);
    for (struct vh *v = crmpi_st->live[VH_WIN].head; v && !rc; v = v->next)
        rc = take(VK_WIN, v->real.win, &((struct vwin *)v)->attrs);
    return rc;
}

int vattr_rebuild_keys(void)
{
    /* The objects that held attributes under freed keys are gone with the
     * MPI library that had them (or released, in tests). */
    while (crmpi_st->freed_keys) {
        struct vkeyval *k = crmpi_st->freed_keys;
        crmpi_st->freed_keys = k->next;
        crmpi_pfree(k);
    }
    for (struct vkeyval *k = crmpi_st->keyvals; k; k = k->next) {
        if (make_real(k) != MPI_SUCCESS) {
            cr_err("cannot make attribute key %d again", k->id);
            return -EIO;
        }
    }
    return 0;
}

static int put(int kind, void *o, const struct vattr_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        struct vkeyval *k = find_id(kind, s->a[i].keyval);
        if (!k)
            continue;               /* its key was freed after the snapshot */
        int rc = set_real(kind, o, k->real, s->a[i].val);
        if (rc != MPI_SUCCESS) {
            cr_err("cannot set attribute (key %d) again", k->id);
            return -EIO;
        }
    }
    return 0;
}

/* ---- names ------------------------------------------------------------------------ */

static char **name_slot(MPI_Comm c, MPI_Datatype t)
{
    if (t != MPI_DATATYPE_NULL) {
        struct vtype *v = (struct vtype *)vh_get(t, VH_TYPE);
        return v ? &v->name : NULL;
    }
    struct vcomm *v = (struct vcomm *)vh_get(c, VH_COMM);
    if (v)
        return &v->name;
    return c == MPI_COMM_WORLD ? &crmpi_st->world_name
           : c == MPI_COMM_SELF ? &crmpi_st->self_name : NULL;
}

void vname_record(char **slot, const char *name)
{
    if (!slot)
        return;                     /* a predefined datatype: not ours to rename */
    size_t n = strnlen(name, MPI_MAX_OBJECT_NAME);
    char *copy = crmpi_palloc(n + 1);
    if (!copy) {
        cr_warn("out of persistent memory for the name \"%.*s\": it is not restored "
                "after a restart", (int)n, name);
        return;
    }
    memcpy(copy, name, n);
    copy[n] = 0;
    vname_forget(slot);
    *slot = copy;
}

void vname_forget(char **name)
{
    crmpi_pfree(*name);
    *name = NULL;
}

int MPI_Comm_set_name(MPI_Comm comm, const char *name)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Comm_set_name(comm, name);
    int rc = PMPI_Comm_set_name(vh_in_comm(comm), name);
    if (rc == MPI_SUCCESS)
        vname_record(name_slot(comm, MPI_DATATYPE_NULL), name);
    return rc;
}

int MPI_Type_set_name(MPI_Datatype type, const char *name)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Type_set_name(type, name);
    int rc = PMPI_Type_set_name(vh_in_type(type), name);
    if (rc == MPI_SUCCESS && type != MPI_DATATYPE_NULL)
        vname_record(name_slot(MPI_COMM_NULL, type), name);
    return rc;
}

static void put_name(MPI_Comm c, MPI_Datatype t, const char *name)
{
    if (!name)
        return;
    if ((t != MPI_DATATYPE_NULL ? PMPI_Type_set_name(t, name) : PMPI_Comm_set_name(c, name))
        != MPI_SUCCESS)
        cr_warn("cannot set the name \"%s\" again after the restart", name);
}

int vattr_restore(void)
{
    int rc = put(VK_COMM, MPI_COMM_WORLD, &crmpi_st->world_attrs);
    if (!rc)
        rc = put(VK_COMM, MPI_COMM_SELF, &crmpi_st->self_attrs);
    for (struct vh *v = crmpi_st->live[VH_COMM].head; v && !rc; v = v->next)
        rc = put(VK_COMM, v->real.comm, &((struct vcomm *)v)->attrs);
    for (struct vh *v = crmpi_st->live[VH_TYPE].head; v && !rc; v = v->next)
        rc = put(VK_TYPE, v->real.type, &((struct vtype *)v)->attrs);
    for (struct vh *v = crmpi_st->live[VH_WIN].head; v && !rc; v = v->next)
        rc = put(VK_WIN, v->real.win, &((struct vwin *)v)->attrs);
    put_name(MPI_COMM_WORLD, MPI_DATATYPE_NULL, crmpi_st->world_name);
    put_name(MPI_COMM_SELF, MPI_DATATYPE_NULL, crmpi_st->self_name);
    for (struct vh *v = crmpi_st->live[VH_COMM].head; v; v = v->next)
        put_name(v->real.comm, MPI_DATATYPE_NULL, ((struct vcomm *)v)->name);
    for (struct vh *v = crmpi_st->live[VH_TYPE].head; v; v = v->next)
        put_name(MPI_COMM_NULL, v->real.type, ((struct vtype *)v)->name);
    return rc;
}

void vattr_release(void)
{
    /* Tests simulating a restart: the keys go with the objects; the values
     * on MPI_COMM_WORLD/SELF (which stay) are deleted first, so the new
     * keys' values are the only ones there. */
    for (struct vkeyval *k = crmpi_st->keyvals; k; k = k->next) {
        if (k->kind == VK_COMM) {
            MPI_Comm both[2] = { MPI_COMM_WORLD, MPI_COMM_SELF };
            for (int i = 0; i < 2; i++) {
                void *val;
                int flag = 0;
                if (PMPI_Comm_get_attr(both[i], k->real, &val, &flag) == MPI_SUCCESS && flag)
                    PMPI_Comm_delete_attr(both[i], k->real);
            }
        }
        free_real(k->kind, &k->real);
    }
}

void vattr_forget(struct vattr_set *s)
{
    crmpi_pfree(s->a);
    s->a = NULL;
    s->n = 0;
}
