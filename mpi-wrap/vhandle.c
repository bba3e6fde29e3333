/*
 * vhandle.c - life cycle of virtual handles (see vhandle.h): creation from a
 * real handle, lists in creation order, mapping back, destruction, and the
 * rebuild after a restart. Recipes of communicators/groups are in vcomm.c,
 * of datatypes in vtype.c.
 */
#include "vhandle.h"
#include "wrap_support.h"

#include <stdlib.h>
#include <string.h>

struct vh *vh_alloc(size_t size, uint32_t kind)
{
    struct vh *v = crmpi_palloc(size);
    if (!v)
        return NULL;
    memset(v, 0, size);
    v->magic = VH_MAGIC;
    v->kind = kind;
    return v;
}

void vh_link(struct vh *v)
{
    struct vh_list *l = &crmpi_st->live[v->kind];
    v->next = NULL;
    v->prev = l->tail;
    if (l->tail)
        l->tail->next = v;
    else
        l->head = v;
    l->tail = v;
    l->count++;
}

void vh_unlink(struct vh *v)
{
    struct vh_list *l = &crmpi_st->live[v->kind];
    if (v->prev)
        v->prev->next = v->next;
    else
        l->head = v->next;
    if (v->next)
        v->next->prev = v->prev;
    else
        l->tail = v->prev;
    v->prev = v->next = NULL;
    l->count--;
}

static void vh_dispose(struct vh *v)
{
    v->magic = VH_DEAD;
    crmpi_pfree(v);
}

/* ---- creation -------------------------------------------------------------- */

int vh_out_comm(MPI_Comm *user, MPI_Comm real)
{
    if (real == MPI_COMM_NULL) {
        *user = real;
        return MPI_SUCCESS;
    }
    struct vcomm *v = (struct vcomm *)vh_alloc(sizeof *v, VH_COMM);
    if (!v)
        goto free_real;
    v->h.real.comm = real;
    v->topo = MPI_UNDEFINED;
    if (vcomm_capture(v, real) != 0) {
        vcomm_destroy(v);
        goto free_real;
    }
    vcomm_inherit_errhandler(v, real);
    vh_link(&v->h);
    *user = (MPI_Comm)v;
    return MPI_SUCCESS;
free_real:
    cr_err("out of persistent memory for a communicator");
    PMPI_Comm_free(&real);
    *user = MPI_COMM_NULL;
    return MPI_ERR_NO_MEM;
}

int vh_out_group(MPI_Group *user, MPI_Group real)
{
    if (real == MPI_GROUP_NULL || real == MPI_GROUP_EMPTY) {
        *user = real;
        return MPI_SUCCESS;
    }
    struct vgroup *v = (struct vgroup *)vh_alloc(sizeof *v, VH_GROUP);
    if (!v || vgroup_capture(v, real) != 0) {
        if (v) {
            crmpi_pfree(v->world);
            vh_dispose(&v->h);
        }
        cr_err("cannot record a group (out of persistent memory)");
        PMPI_Group_free(&real);
        *user = MPI_GROUP_NULL;
        return MPI_ERR_NO_MEM;
    }
    v->h.real.group = real;
    vh_link(&v->h);
    *user = (MPI_Group)v;
    return MPI_SUCCESS;
}

int vh_out_type(MPI_Datatype *user, MPI_Datatype real, const MPI_Datatype *kids, int nkids)
{
    int ni, na, nd, comb;
    if (real == MPI_DATATYPE_NULL || PMPI_Type_get_envelope(real, &ni, &na, &nd, &comb)
        || comb == MPI_COMBINER_NAMED) {
        *user = real;
        return MPI_SUCCESS;
    }
    struct vtype *v = (struct vtype *)vh_alloc(sizeof *v, VH_TYPE);
    if (!v) {
        PMPI_Type_free(&real);
        *user = MPI_DATATYPE_NULL;
        return MPI_ERR_NO_MEM;
    }
    v->h.real.type = real;
    int rc = vtype_capture(v, real, kids, nkids);
    if (rc != MPI_SUCCESS) {
        vtype_destroy(v);
        *user = MPI_DATATYPE_NULL;
        return rc;
    }
    vh_link(&v->h);
    *user = (MPI_Datatype)v;
    return MPI_SUCCESS;
}

int vh_out_info(MPI_Info *user, MPI_Info real)
{
    if (real == MPI_INFO_NULL || real == MPI_INFO_ENV) {
        *user = real;
        return MPI_SUCCESS;
    }
    struct vinfo *v = (struct vinfo *)vh_alloc(sizeof *v, VH_INFO);
    if (!v) {
        PMPI_Info_free(&real);
        *user = MPI_INFO_NULL;
        return MPI_ERR_NO_MEM;
    }
    v->h.real.info = real;
    vh_link(&v->h);
    *user = (MPI_Info)v;
    return MPI_SUCCESS;
}

int vh_out_req(MPI_Request *user, MPI_Request real)
{
    if (real == MPI_REQUEST_NULL) {
        *user = real;
        return MPI_SUCCESS;
    }
    struct vreq *r = vreq_new(VREQ_OTHER);
    if (!r) {
        /* Cannot virtualise: let the application own the real request
         * (it will be refused at the next checkpoint if still pending). */
        *user = real;
        return MPI_SUCCESS;
    }
    r->h.real.req = real;
    r->state = VREQ_ACTIVE;
    *user = (MPI_Request)r;
    return MPI_SUCCESS;
}

int vh_out_op(MPI_Op *user, MPI_User_function *fn, int commute)
{
    struct vop *v = (struct vop *)vh_alloc(sizeof *v, VH_OP);
    if (!v)
        return MPI_ERR_NO_MEM;
    v->fn = fn;
    v->commute = commute;
    int rc = vop_make_real(v);
    if (rc != MPI_SUCCESS) {
        vop_forget(v);
        vh_dispose(&v->h);
        return rc;
    }
    vh_link(&v->h);
    *user = (MPI_Op)v;
    return MPI_SUCCESS;
}

int vh_out_errh(MPI_Errhandler *user, MPI_Comm_errhandler_function *fn, int obj)
{
    struct verrh *v = (struct verrh *)vh_alloc(sizeof *v, VH_ERRH);
    if (!v)
        return MPI_ERR_NO_MEM;
    v->fn = fn;
    v->obj = obj;
    v->refs = 1;
    int rc = verrh_make_real(v);
    if (rc != MPI_SUCCESS) {
        vh_dispose(&v->h);
        return rc;
    }
    vh_link(&v->h);
    *user = (MPI_Errhandler)v;
    return MPI_SUCCESS;
}

/* Requests are the only objects created at message rate: recycle them. */
struct vreq *vreq_new(int kind)
{
    struct vreq *r = (struct vreq *)crmpi_st->req_free;
    if (r) {
        crmpi_st->req_free = r->h.next;
        memset(r, 0, sizeof *r);
        r->h.kind = VH_REQ;
    } else {
        r = (struct vreq *)vh_alloc(sizeof *r, VH_REQ);
        if (!r)
            return NULL;
    }
    r->h.magic = VH_MAGIC;
    r->kind = kind;
    r->h.real.req = MPI_REQUEST_NULL;
    vh_link(&r->h);
    return r;
}

void vreq_hold_type(struct vreq *r, MPI_Datatype t)
{
    vtype_hold(t);
    r->type = t;
}

void vreq_hold_comm(struct vreq *r, MPI_Comm c)
{
    struct vcomm *v = (struct vcomm *)vh_get(c, VH_COMM);
    r->comm = c;
    if (v) {
        v->holds++;
        r->comm_held = 1;
    }
}

void vreq_release(struct vreq *r)
{
    if (r->persistent && r->h.real.req != MPI_REQUEST_NULL)
        PMPI_Request_free(&r->h.real.req);   /* inactive here: freed at once */
    vtype_drop(r->type);
    r->type = MPI_DATATYPE_NULL;
    struct vcomm *c = r->comm_held ? (struct vcomm *)vh_get(r->comm, VH_COMM) : NULL;
    r->comm_held = 0;
    if (c && --c->holds <= 0 && (c->h.flags & VH_FREED))
        (void)vh_free(&c->h);                /* the application freed it before */
    vh_unlink(&r->h);
    r->h.magic = VH_DEAD;
    r->h.next = crmpi_st->req_free;
    crmpi_st->req_free = &r->h;
}

struct vmsg *vmsg_new(MPI_Comm comm, MPI_Message real, struct mq_msg *held)
{
    struct vmsg *m = (struct vmsg *)vh_alloc(sizeof *m, VH_MSG);
    if (!m)
        return NULL;
    m->h.real.msg = real;
    m->comm = comm;
    m->held = held;
    vh_link(&m->h);
    return m;
}

void vmsg_release(struct vmsg *m)
{
    vh_unlink(&m->h);
    if (m->held)
        mq_msg_free(&crmpi_st->queue, m->held);
    vh_dispose(&m->h);
}

/* ---- mapping back ------------------------------------------------------------ */

static struct vh *find_real(uint32_t kind, const void *real)
{
    for (struct vh *v = crmpi_st->live[kind].head; v; v = v->next)
        if (v->real.comm == (MPI_Comm)real)   /* every member is a pointer */
            return v;
    return NULL;
}
#define VH_BACK(name, T, kind)                                                 \
    T vh_back_##name(T real)                                                   \
    {                                                                          \
        struct vh *v = crmpi_st ? find_real(kind, (const void *)real) : NULL;  \
        return v ? (T)v : real;                                                \
    }
VH_BACK(comm,  MPI_Comm,       VH_COMM)
VH_BACK(group, MPI_Group,      VH_GROUP)
VH_BACK(type,  MPI_Datatype,   VH_TYPE)
VH_BACK(op,    MPI_Op,         VH_OP)
VH_BACK(req,   MPI_Request,    VH_REQ)
VH_BACK(info,  MPI_Info,       VH_INFO)
VH_BACK(errh,  MPI_Errhandler, VH_ERRH)
VH_BACK(msg,   MPI_Message,    VH_MSG)
VH_BACK(file,  MPI_File,       VH_FILE)
VH_BACK(win,   MPI_Win,        VH_WIN)
#undef VH_BACK

/* MPI_Type_get_contents hands out new references to derived children: the
 * application gets our virtual handle, so the extra real reference is
 * dropped here. */
void vh_back_type_arr(MPI_Datatype *a, int n)
{
    for (int i = 0; i < n; i++) {
        MPI_Datatype v = vh_back_type(a[i]);
        if (v != a[i]) {
            MPI_Datatype r = a[i];
            PMPI_Type_free(&r);
            a[i] = v;
        }
    }
}

MPI_Datatype *vh_in_type_arr(const MPI_Datatype *a, int n, MPI_Datatype *stack)
{
    int any = 0;
    for (int i = 0; i < n && !any; i++)
        any = vh_get(a[i], VH_TYPE) || vh_is_dead(a[i]);
    if (!any)
        return (MPI_Datatype *)a;
    MPI_Datatype *x = n <= CRMPI_ARR_STACK ? stack : malloc((size_t)n * sizeof *x);
    if (!x)
        return NULL;
    for (int i = 0; i < n; i++)
        x[i] = vh_in_type(a[i]);
    return x;
}

void vh_arr_release(const void *x, const void *orig, const void *stack)
{
    if (x != orig && x != stack)
        free((void *)x);
}

/* ---- destruction --------------------------------------------------------- */

/* A communicator still uses error handler e (MPI lets the application free
 * a handler that is attached: it lives on until nothing uses it). */
static int errh_in_use(const struct vh *e)
{
    if ((const struct vh *)crmpi_st->world_errh == e || (const struct vh *)crmpi_st->self_errh == e)
        return 1;
    if ((const struct vh *)crmpi_st->file_null_errh == e)
        return 1;
    for (struct vh *v = crmpi_st->live[VH_COMM].head; v; v = v->next)
        if ((const struct vh *)((struct vcomm *)v)->errh == e)
            return 1;
    for (struct vh *v = crmpi_st->live[VH_WIN].head; v; v = v->next)
        if ((const struct vh *)((struct vwin *)v)->errh == e)
            return 1;
    for (struct vh *v = crmpi_st->live[VH_FILE].head; v; v = v->next)
        if ((const struct vh *)((struct vfile *)v)->errh == e)
            return 1;
    return 0;
}

int vh_free(struct vh *v)
{
    int rc = MPI_SUCCESS;
    if (v->kind == VH_TYPE) {
        vtype_unref((struct vtype *)v);
        return rc;
    }
    if (v->kind == VH_COMM && ((struct vcomm *)v)->holds > 0) {
        v->flags |= VH_FREED;                /* kept for the requests that name it */
        return rc;
    }
    if (v->kind == VH_ERRH) {
        struct verrh *e = (struct verrh *)v;
        if (e->refs <= 0)
            return MPI_ERR_ARG;              /* freed more often than handed out */
        if (--e->refs > 0)
            return MPI_SUCCESS;              /* another handle of the application's */
        if (errh_in_use(v)) {
            /* Kept (and rebuilt after a restart) for the communicators
             * that use it; our reference in MPI goes now. */
            MPI_Errhandler real = v->real.errh;
            v->flags |= VH_FREED;
            return PMPI_Errhandler_free(&real);
        }
    }
    vh_unlink(v);
    switch (v->kind) {
    case VH_COMM:
        if (v->real.comm != MPI_COMM_NULL)
            rc = PMPI_Comm_free(&v->real.comm);
        vcomm_destroy((struct vcomm *)v);
        return rc;
    case VH_GROUP:
        if (v->real.group != MPI_GROUP_NULL)
            rc = PMPI_Group_free(&v->real.group);
        crmpi_pfree(((struct vgroup *)v)->world);
        break;
    case VH_OP:
        if (v->real.op != MPI_OP_NULL)
            rc = PMPI_Op_free(&v->real.op);
        vop_forget((struct vop *)v);
        break;
    case VH_INFO:
        if (v->real.info != MPI_INFO_NULL)
            rc = PMPI_Info_free(&v->real.info);
        crmpi_pfree(((struct vinfo *)v)->kv);
        break;
    case VH_ERRH:
        if (v->real.errh != MPI_ERRHANDLER_NULL)
            rc = PMPI_Errhandler_free(&v->real.errh);
        break;
    default:
        break;
    }
    vh_dispose(v);
    return rc;
}

/* ---- restart ------------------------------------------------------------------ */

/* The keys and values of a real info as "key\0value\0"... in the
 * persistent heap (*kv NULL when there are none). */
int vh_info_to_kv(MPI_Info real, char **out, size_t *outlen)
{
    int nkeys = 0;
    if (PMPI_Info_get_nkeys(real, &nkeys) != MPI_SUCCESS)
        return -EIO;
    size_t cap = 256, len = 0;
    char *kv = crmpi_palloc(cap);
    if (!kv)
        return -ENOMEM;
    for (int i = 0; i < nkeys; i++) {
        char key[MPI_MAX_INFO_KEY + 1];
        char val[MPI_MAX_INFO_VAL + 1];
        int flag = 0;
        if (PMPI_Info_get_nthkey(real, i, key) != MPI_SUCCESS ||
            PMPI_Info_get(real, key, MPI_MAX_INFO_VAL, val, &flag) != MPI_SUCCESS)
            goto free_kv;
        size_t need = strlen(key) + strlen(val) + 2;
        if (len + need > cap) {
            while (len + need > cap)
                cap *= 2;
            char *n = crmpi_palloc(cap);
            if (!n)
                goto free_kv;
            memcpy(n, kv, len);
            crmpi_pfree(kv);
            kv = n;
        }
        strcpy(kv + len, key);
        len += strlen(key) + 1;
        strcpy(kv + len, val);
        len += strlen(val) + 1;
    }
    *out = kv;
    *outlen = len;
    return 0;
free_kv:
    crmpi_pfree(kv);
    return -ENOMEM;
}

int vh_info_from_kv(const char *kv, size_t kvlen, MPI_Info *out)
{
    if (PMPI_Info_create(out) != MPI_SUCCESS)
        return -EIO;
    for (size_t off = 0; off < kvlen;) {
        const char *key = kv + off;
        const char *val = key + strlen(key) + 1;
        if (PMPI_Info_set(*out, key, val) != MPI_SUCCESS)
            return -EIO;
        off = (size_t)(val - kv) + strlen(val) + 1;
    }
    return 0;
}

int vh_kv_append(char **kv, size_t *kvlen, MPI_Info real)
{
    if (real == MPI_INFO_NULL)
        return 0;
    char *add;
    size_t len;
    int rc = vh_info_to_kv(real, &add, &len);
    if (rc || !len) {
        crmpi_pfree(rc ? NULL : add);
        return rc;
    }
    char *all = crmpi_palloc(*kvlen + len);
    if (!all) {
        crmpi_pfree(add);
        return -ENOMEM;
    }
    if (*kvlen)
        memcpy(all, *kv, *kvlen);
    memcpy(all + *kvlen, add, len);
    crmpi_pfree(add);
    crmpi_pfree(*kv);
    *kv = all;
    *kvlen += len;
    return 0;
}

static int info_snapshot(struct vinfo *v)
{
    char *kv;
    size_t len;
    int rc = vh_info_to_kv(v->h.real.info, &kv, &len);
    if (rc)
        return rc;
    crmpi_pfree(v->kv);
    v->kv = kv;
    v->kvlen = len;
    return 0;
}

int vh_snapshot(void)
{
    for (struct vh *v = crmpi_st->live[VH_INFO].head; v; v = v->next) {
        int rc = info_snapshot((struct vinfo *)v);
        if (rc) {
            cr_errc(rc, "cannot snapshot the keys of an MPI_Info");
            return rc;
        }
    }
    int rc = vattr_snapshot();
    if (rc)
        cr_errc(rc, "cannot snapshot the attributes of communicators and datatypes");
    return rc;
}

void vh_forget_reals(void)
{
    for (int k = 0; k < VH_NKINDS; k++)
        for (struct vh *v = crmpi_st->live[k].head; v; v = v->next)
            if ((k != VH_REQ && k != VH_MSG) || (k == VH_REQ && ((struct vreq *)v)->persistent))
                v->real.comm = NULL;
}

void vh_release_reals(void)
{
    /* Youngest first: a parent type before its children. */
    for (int k = 0; k < VH_NKINDS; k++) {
        for (struct vh *v = crmpi_st->live[k].tail; v; v = v->prev) {
            switch (k) {
            case VH_COMM:  PMPI_Comm_free(&v->real.comm); break;
            case VH_GROUP: PMPI_Group_free(&v->real.group); break;
            case VH_TYPE:  PMPI_Type_free(&v->real.type); break;
            case VH_OP:    PMPI_Op_free(&v->real.op); break;
            case VH_INFO:  PMPI_Info_free(&v->real.info); break;
            case VH_ERRH:   /* a freed one's reference went with its communicators */
                if (!(v->flags & VH_FREED))
                    PMPI_Errhandler_free(&v->real.errh);
                break;
            case VH_FILE:  vfile_release((struct vfile *)v); break;
            case VH_WIN:   vwin_release((struct vwin *)v); break;
            case VH_REQ:
                if (((struct vreq *)v)->persistent && v->real.req != MPI_REQUEST_NULL)
                    PMPI_Request_free(&v->real.req);
                break;
            default: break;
            }
        }
    }
    if (crmpi_st->bsend_buf) {
        void *b;
        int n;
        PMPI_Buffer_detach(&b, &n);
    }
    vattr_release();
    vh_forget_reals();
}

static int rebuild_info(struct vinfo *v)
{
    return vh_info_from_kv(v->kv, v->kvlen, &v->h.real.info);
}

static int rebuild_one(struct vh *v)
{
    switch (v->kind) {
    case VH_COMM:  return vcomm_rebuild((struct vcomm *)v);
    case VH_GROUP: return vgroup_rebuild((struct vgroup *)v);
    case VH_TYPE:  return vtype_rebuild((struct vtype *)v);
    case VH_INFO:  return rebuild_info((struct vinfo *)v);
    case VH_OP:
        return vop_make_real((struct vop *)v) == MPI_SUCCESS ? 0 : -EIO;
    case VH_ERRH:
        return verrh_make_real((struct verrh *)v) == MPI_SUCCESS ? 0 : -EIO;
    case VH_FILE:  return vfile_rebuild((struct vfile *)v);
    case VH_WIN:   return vwin_rebuild((struct vwin *)v);
    case VH_REQ:   /* the others were completed or deferred by the drain */
        return !((struct vreq *)v)->persistent || vreq_init_real((struct vreq *)v) == MPI_SUCCESS
               ? 0 : -EIO;
    default:
        return 0;
    }
}

int vh_rebuild_all(void)
{
    /* Errhandlers and ops before the communicators that use them; types
     * only depend on older types; persistent requests on both. */
    static const int order[] = { VH_INFO, VH_ERRH, VH_OP, VH_GROUP, VH_COMM, VH_TYPE, VH_FILE,
                                 VH_WIN, VH_REQ };
    int krc = vattr_rebuild_keys();
    if (krc)
        return krc;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        /* Files opened after the restart inherit the files' default. */
        if (order[i] == VH_FILE && crmpi_st->file_null_errh &&
            PMPI_File_set_errhandler(MPI_FILE_NULL, vh_in_errh(crmpi_st->file_null_errh))
                != MPI_SUCCESS)
            cr_warn("cannot set the files' default error handler again");
        for (struct vh *v = crmpi_st->live[order[i]].head; v; v = v->next) {
            int rc = rebuild_one(v);
            if (rc) {
                cr_errc(rc, "cannot rebuild MPI object of kind %d at %p", order[i], (void *)v);
                return rc;
            }
        }
    }
    if (crmpi_st->bsend_buf &&
        PMPI_Buffer_attach(crmpi_st->bsend_buf, crmpi_st->bsend_size) != MPI_SUCCESS) {
        cr_err("cannot attach the buffered-send buffer %p (%d bytes) again",
               crmpi_st->bsend_buf, crmpi_st->bsend_size);
        return -EIO;
    }
    int arc = vattr_restore();
    if (arc)
        return arc;
    if (crmpi_st->world_errh)
        PMPI_Comm_set_errhandler(MPI_COMM_WORLD, vh_in_errh(crmpi_st->world_errh));
    if (crmpi_st->self_errh)
        PMPI_Comm_set_errhandler(MPI_COMM_SELF, vh_in_errh(crmpi_st->self_errh));
    return 0;
}

/* ---- count expressions ------------------------------------------------------- */

int crmpi_comm_size(MPI_Comm c)
{
    int n = 0;
    if (PMPI_Comm_size(vh_in_comm(c), &n) != MPI_SUCCESS)
        return 0;
    return n;
}

static void nbr_counts(MPI_Comm c, int *in, int *out)
{
    MPI_Comm r = vh_in_comm(c);
    int topo = MPI_UNDEFINED, w;
    *in = *out = 0;
    if (PMPI_Topo_test(r, &topo) != MPI_SUCCESS)
        return;
    if (topo == MPI_DIST_GRAPH) {
        PMPI_Dist_graph_neighbors_count(r, in, out, &w);
    } else if (topo == MPI_GRAPH) {
        int me;
        PMPI_Comm_rank(r, &me);
        PMPI_Graph_neighbors_count(r, me, in);
        *out = *in;
    } else if (topo == MPI_CART) {
        int nd;
        PMPI_Cartdim_get(r, &nd);
        *in = *out = 2 * nd;
    }
}

int crmpi_nbr_in(MPI_Comm c)  { int i, o; nbr_counts(c, &i, &o); return i; }
int crmpi_nbr_out(MPI_Comm c) { int i, o; nbr_counts(c, &i, &o); return o; }

int crmpi_type_nchildren(MPI_Datatype t)
{
    int ni, na, nd = 0, comb;
    if (PMPI_Type_get_envelope(vh_in_type(t), &ni, &na, &nd, &comb) != MPI_SUCCESS)
        return 0;
    return nd;
}
