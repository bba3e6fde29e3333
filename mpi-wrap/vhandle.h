/*
 * vhandle.h - virtual MPI handles: stable names for MPI objects that survive
 * a restart with a fresh MPI library.
 *
 * Open MPI handles are pointers to library objects, whose addresses change
 * from one run to the next. Every communicator, group, derived datatype,
 * user op, info, user error handler, matched message and request that the
 * application creates is therefore handed out as a pointer to a `struct vh`
 * in the persistent heap instead. The object holds the current real handle
 * and the recipe to make it again: communicators and groups as lists of
 * MPI_COMM_WORLD ranks (plus their topology), datatypes as their combiner,
 * integers, addresses and child types (what MPI_Type_get_contents reports),
 * ops and error handlers as their function pointers (stable: the executable
 * is loaded at the same address), infos as a snapshot of their keys.
 *
 * A virtual handle is recognised by its first word, VH_MAGIC: a
 * non-canonical x86-64 address, so it can never be the first word of an
 * Open MPI object (which starts with its class pointer). Predefined handles
 * (MPI_COMM_WORLD, MPI_INT, MPI_SUM, ...) are real and pass through
 * unchanged; their addresses are stable because the library is loaded at the
 * same place in every run (no ASLR). Freed objects get VH_DEAD, and a freed
 * handle used again is handed to MPI as the null handle so MPI reports it.
 *
 * Live objects of each kind are kept in creation order; vh_rebuild_all()
 * remakes them in that order after a fresh MPI_Init (children before
 * parents, and collective constructions in the same order on every rank).
 * Not thread-safe: libcrmpi supports MPI_THREAD_SERIALIZED at most.
 */
#ifndef CRMPI_VHANDLE_H
#define CRMPI_VHANDLE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "msgqueue.h"

#define VH_MAGIC 0xC0DE5EC0FFEE0001ull
#define VH_DEAD  0xC0DEDEADDEAD0002ull

enum vh_kind { VH_COMM, VH_GROUP, VH_TYPE, VH_OP, VH_REQ, VH_INFO, VH_ERRH, VH_MSG, VH_FILE,
               VH_WIN, VH_NKINDS };

#define VH_PENDING 0x1u   /* a communicator of an MPI_Comm_idup not yet complete */
#define VH_FREED   0x2u   /* freed by the application while still in use: an error
                             handler attached, a communicator a request names */

struct vh {
    uint64_t magic;
    uint32_t kind;
    uint32_t flags;                /* VH_* */
    struct vh *prev, *next;        /* creation order within the kind */
    union {
        MPI_Comm comm; MPI_Group group; MPI_Datatype type; MPI_Op op;
        MPI_Request req; MPI_Info info; MPI_Errhandler errh; MPI_Message msg; MPI_File file;
        MPI_Win win;
    } real;
};

struct vh_list { struct vh *head, *tail; size_t count; };

/* Attribute values of one object, as of the last checkpoint (vattr.c). */
struct vattr { int keyval; void *val; };
struct vattr_set { struct vattr *a; size_t n; };
struct vkeyval;

/* Topology recipes (vcomm.topo_data layout):
 *   MPI_CART        ndims, dims[ndims], periods[ndims]
 *   MPI_GRAPH       nnodes, nedges, index[nnodes], edges[nedges]
 *   MPI_DIST_GRAPH  indeg, outdeg, weighted, src[], srcw[], dst[], dstw[] */
struct vcomm {
    struct vh h;
    int size, rank;
    int *world;                    /* world[r]: MPI_COMM_WORLD rank of rank r */
    int rsize;                     /* an inter-communicator: its remote group, */
    int *rworld;                   /* as world ranks (NULL: an intra-communicator) */
    int topo;                      /* MPI_UNDEFINED, MPI_CART, MPI_GRAPH, MPI_DIST_GRAPH */
    int ntopo;
    int *topo_data;
    MPI_Errhandler errh;           /* inherited or set by the application */
    struct vattr_set attrs;
    char *name;                    /* MPI_Comm_set_name's (NULL: none) */
    /* Requests whose recipe names it (a receive to re-post, a persistent
     * request to make again): MPI lets the application free the
     * communicator first. It is then kept (VH_FREED), drained and rebuilt
     * like the others, and goes with the last of those requests. */
    int holds;
};

struct vgroup {
    struct vh h;
    int size;
    int *world;                    /* world ranks of the members, in group order */
};

struct vtype {
    struct vh h;
    int combiner, ni, na, nd;
    int *ints;
    MPI_Aint *aints;
    MPI_Datatype *types;           /* children, as the application names them */
    int committed;
    int refs;                      /* application references + parents */
    struct vattr_set attrs;
    char *name;                    /* MPI_Type_set_name's (NULL: none) */
};

/* slot: 1 + the trampoline MPI calls (vop.c), 0: MPI calls fn itself. */
struct vop   { struct vh h; MPI_User_function *fn; int commute; int slot; };
/* vop.c: make a user op's real op (through its trampoline); forget it
 * (its slot retires); once no collective is pending (after a successful
 * drain), let retired slots serve new ops. */
int vop_make_real(struct vop *o);
void vop_forget(struct vop *o);
void vop_release_retired(void);
/* refs: the application's handles to it (creation, each
 * MPI_Comm_get_errhandler); MPI holds one reference of ours until the last
 * goes (VH_FREED then, kept while a communicator uses it). */
/* obj: what kind of object it handles errors of (enum verrh_obj); fn is
 * the application's function of that kind's signature. */
enum verrh_obj { VERRH_COMM, VERRH_WIN, VERRH_FILE };
struct verrh { struct vh h; MPI_Comm_errhandler_function *fn; int refs; int obj; };
/* objects.c: make a user error handler's real one (through the trampoline
 * of its kind, which calls the application's function with the
 * application's handle of the object). */
int verrh_make_real(struct verrh *e);
/* The application's handle for a real handler MPI handed out (a *_get_errhandler):
 * a user one counts one more application handle. */
MPI_Errhandler verrh_to_app(MPI_Errhandler real);
struct vinfo { struct vh h; size_t kvlen; char *kv; /* "key\0value\0"... */ };

/* A message matched by MPI_Mprobe/Improbe: either still inside MPI
 * (h.real.msg) or, after a checkpoint or when matched from the drain queue,
 * held as bytes. */
struct vmsg {
    struct vh h;
    struct mq_msg *held;
    MPI_Comm comm;                 /* the application's handle */
    int source, tag, bytes;        /* envelope of a message still in MPI */
};

/* VREQ_OTHER: a non-blocking collective; VREQ_IDUP: an MPI_Comm_idup,
 * whose new communicator is `comm` (VH_PENDING until it completes). */
enum vreq_kind  { VREQ_SEND = 1, VREQ_RECV, VREQ_MRECV, VREQ_OTHER, VREQ_IDUP };
enum vreq_state { VREQ_ACTIVE = 1,  /* h.real.req is pending in MPI */
                  VREQ_DONE,        /* complete; status holds the result */
                  VREQ_DEFERRED,    /* receive cancelled at a checkpoint: re-post */
                  VREQ_INACTIVE };  /* persistent, not started (status: empty) */
/* Which MPI_*_init made a persistent request (0: not persistent). */
enum vreq_init { VREQ_INIT_SEND = 1, VREQ_INIT_SSEND, VREQ_INIT_RSEND, VREQ_INIT_BSEND,
                 VREQ_INIT_RECV };
/* A persistent request keeps its real persistent request from MPI_*_init
 * to MPI_Request_free, across its completions; after a restart the recipe
 * makes it again (p2p.c: vreq_init_real). */
struct vreq {
    struct vh h;
    int kind, state;
    int detached;                  /* MPI_Request_free'd while active */
    int peer_world;                /* send: destination's world rank */
    MPI_Status status;
    /* The recipe of a receive (VREQ_RECV: to serve it from the queue or
     * re-post it) and of a persistent send (peer: its destination). A
     * derived datatype in it holds a reference (vtype.refs), so the
     * application may free the type while the request lives. */
    void *buf;
    int count, source, tag;
    MPI_Datatype type;
    MPI_Comm comm;                 /* held (vcomm.holds) when comm_held */
    int comm_held;
    int persistent;                /* enum vreq_init, 0: not persistent */
    int dest;
};

/* An MPI-IO file (vfile.c): reopened after a restart with its view,
 * atomicity, error handler, file pointers and size as of the checkpoint. */
struct vfile {
    struct vh h;
    struct vcomm *group;           /* its communicator's recipe, not a live one:
                                      the application may free that meanwhile */
    char *path;                    /* absolute (the working directory is not restored) */
    int amode;
    int has_view, atomic;
    int split;                     /* a split collective is between _begin and _end */
    MPI_Offset disp;               /* the view; the types hold references */
    MPI_Datatype etype, filetype;
    char datarep[32];
    MPI_Errhandler errh;           /* set by the application or inherited at open */
    MPI_Offset pos, pos_shared, size;   /* at the last checkpoint */
    char *hints;                   /* given at open and by MPI_File_set_info, */
    size_t hintlen;                /* as "key\0value\0"...: applied in order */
};

/* A one-sided window (vwin.c): made again after a restart over the same
 * memory (which the checkpoint restored), with the synchronisation it was
 * in at the checkpoint: a fence epoch or a lock_all/shared locks held. */
struct vwin_mem { void *base; MPI_Aint size; };
struct vwin {
    struct vh h;
    struct vcomm *group;           /* its communicator's recipe (as vfile.group) */
    int flavor;                    /* MPI_WIN_FLAVOR_CREATE, _ALLOCATE, _DYNAMIC */
    void *base;                    /* create/allocate: the memory; allocate's is */
    MPI_Aint size;                 /* from the persistent heap                  */
    int disp_unit;
    struct vwin_mem *att;          /* dynamic: the attached memory */
    size_t natt;
    char *hints;                   /* given at creation and by MPI_Win_set_info */
    size_t hintlen;
    MPI_Errhandler errh;           /* set by the application, or NULL */
    char *name;                    /* MPI_Win_set_name's */
    struct vattr_set attrs;        /* as of the last checkpoint (vattr.c) */
    /* Synchronisation state (the same on every member for fences). */
    int fence;                     /* the last fence opened an epoch (no NOSUCCEED) */
    int lock_all;                  /* MPI_Win_lock_all held */
    int *locks;                    /* [group size]: lock type held on that rank, or 0 */
    int access, exposure;          /* PSCW: MPI_Win_start / MPI_Win_post open */
};

/* ---- the persistent state of the MPI layer ------------------------------- */
struct crmpi_state {
    uint64_t magic;
    uint32_t version;
    int nranks;                    /* MPI_COMM_WORLD size when created */
    int world_rank;
    struct vh_list live[VH_NKINDS];
    struct vh *req_free;           /* recycled request objects */
    struct mq queue;               /* drained messages */
    MPI_Errhandler world_errh, self_errh;   /* set by the application */
    uint64_t checkpoints;          /* committed by this job */
    void *bsend_buf;               /* MPI_Buffer_attach'ed (NULL: none), attached */
    int bsend_size;                /* again after a restart                        */
    struct vkeyval *keyvals;       /* attribute keys, in creation order (vattr.c)  */
    struct vkeyval *freed_keys;    /* freed by the application, whose callbacks MPI
                                      may still call: dropped at the next rebuild   */
    int keyval_seq;
    struct vattr_set world_attrs, self_attrs;
    char *world_name, *self_name;
    MPI_Errhandler file_null_errh; /* set on MPI_FILE_NULL (files' default), or NULL */
};
#define CRMPI_STATE_MAGIC   0x63726d7069737431ull   /* "crmpist1" */
#define CRMPI_STATE_VERSION 3   /* 2: persistent requests, attributes, names, bsend buffer;
                                   3: windows (one more kind of live objects) */

extern struct crmpi_state *crmpi_st;

/* Persistent allocation: the one place that decides where MPI-layer state
 * lives (the persistent heap when the runtime provides it). */
void *crmpi_palloc(size_t size);
void  crmpi_pfree(void *p);
/* 1 when a restart brings [p, p+len) back: the persistent region, or the
 * executable's globals in transparent mode (engine_glue.c); always without
 * the persistent runtime (unit tests of the layer). */
int crmpi_mem_restored(const void *p, size_t len);

/* Create (or find after a restart) the persistent state. */
int crmpi_state_attach(int nranks, int world_rank);

/* ---- translation (hot paths) --------------------------------------------- */
static inline struct vh *vh_get(const void *h, uint32_t kind)
{
    struct vh *v = (struct vh *)h;
    if (v && v->magic == VH_MAGIC && v->kind == kind)
        return v;
    return NULL;
}
static inline int vh_is_dead(const void *h)
{
    return h && ((const struct vh *)h)->magic == VH_DEAD;
}
#define VH_IN(name, T, kind, field, null)                                      \
    static inline T vh_in_##name(T h)                                          \
    {                                                                          \
        struct vh *v = vh_get(h, kind);                                        \
        if (v)                                                                 \
            return v->real.field;                                              \
        return vh_is_dead(h) ? null : h;                                       \
    }
VH_IN(comm,  MPI_Comm,       VH_COMM,  comm,  MPI_COMM_NULL)
VH_IN(group, MPI_Group,      VH_GROUP, group, MPI_GROUP_NULL)
VH_IN(type,  MPI_Datatype,   VH_TYPE,  type,  MPI_DATATYPE_NULL)
VH_IN(op,    MPI_Op,         VH_OP,    op,    MPI_OP_NULL)
VH_IN(req,   MPI_Request,    VH_REQ,   req,   MPI_REQUEST_NULL)
VH_IN(info,  MPI_Info,       VH_INFO,  info,  MPI_INFO_NULL)
VH_IN(errh,  MPI_Errhandler, VH_ERRH,  errh,  MPI_ERRHANDLER_NULL)
VH_IN(msg,   MPI_Message,    VH_MSG,   msg,   MPI_MESSAGE_NULL)
VH_IN(file,  MPI_File,       VH_FILE,  file,  MPI_FILE_NULL)
VH_IN(win,   MPI_Win,        VH_WIN,   win,   MPI_WIN_NULL)
#undef VH_IN

/* World rank of rank r of the application's communicator c; -1 if unknown. */
static inline int vh_world_of(MPI_Comm c, int r)
{
    struct vcomm *v = (struct vcomm *)vh_get(c, VH_COMM);
    if (v && v->rworld)             /* peers of an inter-communicator are remote */
        return r >= 0 && r < v->rsize ? v->rworld[r] : -1;
    if (v)
        return r >= 0 && r < v->size ? v->world[r] : -1;
    if (c == MPI_COMM_WORLD)
        return r;
    if (c == MPI_COMM_SELF)
        return r == 0 ? crmpi_st->world_rank : -1;
    return -1;
}

/* ---- creation (called after the PMPI constructor succeeded) -------------- */
/* Each stores in *user the virtual handle for the new real one (or the real
 * one itself when it is predefined/null) and returns an MPI error code; on
 * failure the real object is freed. */
int vh_out_comm(MPI_Comm *user, MPI_Comm real);
int vh_out_group(MPI_Group *user, MPI_Group real);
/* kids: the datatypes the constructor was given (the application's handles),
 * in argument order; they become the recipe's children. */
int vh_out_type(MPI_Datatype *user, MPI_Datatype real, const MPI_Datatype *kids, int nkids);
int vh_out_info(MPI_Info *user, MPI_Info real);
int vh_out_req(MPI_Request *user, MPI_Request real);
int vh_out_op(MPI_Op *user, MPI_User_function *fn, int commute);
int vh_out_errh(MPI_Errhandler *user, MPI_Comm_errhandler_function *fn, int obj);
/* Requests and messages are created by the point-to-point wrappers. */
struct vreq *vreq_new(int kind);
/* The request's recipe names datatype t: hold it (no-op for a predefined
 * type); vreq_release lets it go. */
void vreq_hold_type(struct vreq *r, MPI_Datatype t);
/* The recipe names communicator c: hold it (vcomm.holds); vreq_release
 * lets it go. */
void vreq_hold_comm(struct vreq *r, MPI_Comm c);
/* Forget the request (a persistent one frees its real request first). */
void vreq_release(struct vreq *r);
/* Make a persistent request's real request from its recipe (MPI_*_init;
 * p2p.c). Returns an MPI error code. */
int vreq_init_real(struct vreq *r);
struct vmsg *vmsg_new(MPI_Comm comm, MPI_Message real, struct mq_msg *held);
void vmsg_release(struct vmsg *m);

/* Map a real handle back to its virtual object (f2c, get_contents, ...):
 * linear scan of the live objects; predefined handles come back unchanged. */
MPI_Comm       vh_back_comm(MPI_Comm real);
MPI_Group      vh_back_group(MPI_Group real);
MPI_Datatype   vh_back_type(MPI_Datatype real);
MPI_Op         vh_back_op(MPI_Op real);
MPI_Request    vh_back_req(MPI_Request real);
MPI_Info       vh_back_info(MPI_Info real);
MPI_Errhandler vh_back_errh(MPI_Errhandler real);
MPI_Message    vh_back_msg(MPI_Message real);
MPI_File       vh_back_file(MPI_File real);
MPI_Win        vh_back_win(MPI_Win real);
void vh_back_type_arr(MPI_Datatype *a, int n);

/* Arrays of handles given to MPI: returns the translated array (stack when
 * n <= CRMPI_ARR_STACK, else heap; the input itself if nothing is virtual),
 * NULL when out of memory. vh_arr_release frees what needs freeing. */
#define CRMPI_ARR_STACK 32
MPI_Datatype *vh_in_type_arr(const MPI_Datatype *a, int n, MPI_Datatype *stack);
void vh_arr_release(const void *x, const void *orig, const void *stack);

/* Destruction: free the real object and the virtual one (types referenced
 * as children by other live types stay until their last parent goes). */
int vh_free(struct vh *v);

/* ---- restart -------------------------------------------------------------- */
/* An info's keys and values as "key\0value\0"... (persistent heap), and
 * a new real info from them. */
int vh_info_to_kv(MPI_Info real, char **kv, size_t *len);
int vh_info_from_kv(const char *kv, size_t len, MPI_Info *out);
/* Append a real info's keys to (*kv, *len) (hints applied in order later:
 * the later ones win). 0 or -ENOMEM/-EIO. */
int vh_kv_append(char **kv, size_t *len, MPI_Info real);
/* Take a snapshot of what cannot be read back after a restart (info keys). */
int vh_snapshot(void);
/* Forget every real handle (they belong to a previous MPI library). */
void vh_forget_reals(void);
/* Free every real handle through PMPI, then forget them (tests simulate a
 * restart with it). */
void vh_release_reals(void);
/* Remake every live object after MPI_Init, in creation order. */
int vh_rebuild_all(void);

/* Internal constructors of vcomm.c / vtype.c. */
struct vh *vh_alloc(size_t size, uint32_t kind);
void vh_link(struct vh *v);
void vh_unlink(struct vh *v);
int vcomm_capture(struct vcomm *v, MPI_Comm real);
int vcomm_rebuild(struct vcomm *v);
void vcomm_inherit_errhandler(struct vcomm *v, MPI_Comm real);
void vcomm_destroy(struct vcomm *v);
int vgroup_capture(struct vgroup *v, MPI_Group real);
int vgroup_rebuild(struct vgroup *v);
int vtype_capture(struct vtype *v, MPI_Datatype real, const MPI_Datatype *kids, int nkids);
void vtype_unref(struct vtype *v);
/* A reference more / less on the type an application handle names (no-op
 * for a predefined one): recipes that name a type hold it. */
void vtype_hold(MPI_Datatype t);
void vtype_drop(MPI_Datatype t);
int vtype_rebuild(struct vtype *v);
void vtype_destroy(struct vtype *v);
struct vtype *vtype_find_real(MPI_Datatype real);

/* vattr.c: attribute keys and values. Snapshot at a checkpoint; after a
 * restart the keys before any object, the values after all of them;
 * release for tests simulating a restart; forget an object's set. */
int vattr_snapshot(void);
int vattr_rebuild_keys(void);
int vattr_restore(void);
void vattr_release(void);
void vattr_forget(struct vattr_set *s);
/* Names given with MPI_Comm/Type_set_name (vattr.c too): set again after
 * a restart, with the attributes. */
void vname_forget(char **name);
/* Keep a copy of name in *slot (NULL slot: nothing to keep). */
void vname_record(char **slot, const char *name);
/* vfile.c: at a checkpoint, after the drain (collective over each file's
 * communicator, files in creation order): sync what was written, record
 * the file pointers and sizes. After a restart: reopen one. Tests: close
 * one's real file. */
int vfile_checkpoint(void);
int vfile_rebuild(struct vfile *f);
void vfile_release(struct vfile *f);
/* vwin.c. vwin_blocked: local, the windows whose synchronisation cannot be
 * checkpointed (logged; the drain agrees on it). vwin_checkpoint, after the
 * drain, when no rank has such a window: complete every RMA operation
 * (a fence in a fence epoch, flushes under locks; collective over each
 * window's group, windows in creation order). After a restart: make one
 * again. Tests: free one's real window. */
int vwin_blocked(void);
int vwin_checkpoint(void);
int vwin_rebuild(struct vwin *w);
void vwin_release(struct vwin *w);

/* Helpers for count expressions of mpi_functions.def. */
int crmpi_comm_size(MPI_Comm c);
int crmpi_nbr_in(MPI_Comm c);
int crmpi_nbr_out(MPI_Comm c);
int crmpi_type_nchildren(MPI_Datatype t);

#endif
