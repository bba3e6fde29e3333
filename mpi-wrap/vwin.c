/*
 * vwin.c - one-sided communication (RMA windows) across a checkpoint.
 *
 * A window handle is virtual like the others. Its recipe is what making it
 * took - its communicator's members (the application may free that), the
 * memory, the displacement unit, the info hints - and what the application
 * set since (error handler, name, hints, memory attached to a dynamic
 * window). The memory must be memory a restart brings back (the persistent
 * heap, or the executable's globals in transparent mode): MPI_Win_allocate
 * takes it from the persistent heap and makes the window with
 * MPI_Win_create, so MPI never owns it (its flavor is still reported as
 * MPI_WIN_FLAVOR_ALLOCATE). Shared-memory windows stay refused: their
 * memory is a segment MPI maps, not the application's.
 *
 * At a checkpoint every RMA operation must have reached its target before
 * the ranks save their memory. The application may call crmpi_checkpoint()
 * in the middle of an epoch: in a fence epoch, one more MPI_Win_fence(0)
 * completes the operations and opens the next epoch (every member is in the
 * checkpoint, and fences are collective, so all call it, windows in
 * creation order like every collective construction here); under
 * MPI_Win_lock_all or shared locks, flushes complete them at their targets,
 * and the checkpoint's final agreement orders every flush before any rank
 * saves. After a restart the window is made again over the same (restored)
 * memory and put back in its epoch: a fence, the lock_all, the locks.
 *
 * Not checkpointable, and agreed by the drain so that no rank starts a
 * fence or flush another skips: a generalized active-target epoch
 * (MPI_Win_start/post not yet completed/waited), and exclusive locks (a
 * flush by another origin waiting for the same target would wait for a
 * rank that is already in the checkpoint). Those fail the checkpoint
 * (CR_EUNSUPPORTED, on every rank, naming the window) and the job goes on.
 * Request-based operations (MPI_Rput...) are generated wrappers: their
 * requests are completed by the drain like non-blocking collectives'.
 * Attributes are vattr.c's, like those of communicators.
 */
#include "vhandle.h"
#include "wrap_support.h"

#include <stdlib.h>
#include <string.h>

static struct vwin *win_of(MPI_Win h)
{
    return crmpi_passthrough() ? NULL : (struct vwin *)vh_get(h, VH_WIN);
}

/* A window's name for messages: its MPI name, else its address. */
static const char *label(const struct vwin *w, char *buf, size_t n)
{
    if (w->name)
        snprintf(buf, n, "window \"%s\"", w->name);
    else
        snprintf(buf, n, "window %p", (const void *)w);
    return buf;
}

static void destroy(struct vwin *w)
{
    if (w->flavor == MPI_WIN_FLAVOR_ALLOCATE)
        crmpi_pfree(w->base);
    crmpi_pfree(w->att);
    crmpi_pfree(w->hints);
    crmpi_pfree(w->locks);
    vname_forget(&w->name);
    vattr_forget(&w->attrs);
    if (w->group)
        vcomm_destroy(w->group);
    w->h.magic = VH_DEAD;
    crmpi_pfree(w);
}

static int not_restored(const char *call, const void *base, MPI_Aint size)
{
    cr_err("%s: the window memory at %p (%lld bytes) is not brought back by a restart "
           "(neither in the persistent heap nor among the executable's globals): use "
           "MPI_Win_allocate, MPI_Alloc_mem or crmalloc for it", call, base, (long long)size);
    return MPI_ERR_UNSUPPORTED_OPERATION;
}

/* The recipe common to every flavor; the real window is made by the caller. */
static struct vwin *recipe(MPI_Comm comm, MPI_Info info, int flavor)
{
    struct vwin *w = (struct vwin *)vh_alloc(sizeof *w, VH_WIN);
    if (!w)
        return NULL;
    w->flavor = flavor;
    int n = 0;
    w->group = (struct vcomm *)vh_alloc(sizeof *w->group, VH_COMM);
    if (!w->group || vcomm_capture(w->group, vh_in_comm(comm)) != 0 ||
        PMPI_Comm_size(vh_in_comm(comm), &n) != MPI_SUCCESS ||
        !(w->locks = crmpi_palloc((size_t)n * sizeof *w->locks)) ||
        vh_kv_append(&w->hints, &w->hintlen, vh_in_info(info)) != 0) {
        destroy(w);
        return NULL;
    }
    memset(w->locks, 0, (size_t)n * sizeof *w->locks);
    return w;
}

static int made(struct vwin *w, int rc, MPI_Win *win)
{
    if (rc != MPI_SUCCESS) {
        destroy(w);
        return rc;
    }
    vh_link(&w->h);
    *win = (MPI_Win)w;
    return MPI_SUCCESS;
}

int MPI_Win_create(void *base, MPI_Aint size, int disp_unit, MPI_Info info, MPI_Comm comm,
                   MPI_Win *win)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Win_create(base, size, disp_unit, info, comm, win);
    if (size > 0 && !crmpi_mem_restored(base, (size_t)size))
        return not_restored("MPI_Win_create", base, size);
    struct vwin *w = recipe(comm, info, MPI_WIN_FLAVOR_CREATE);
    if (!w)
        return MPI_ERR_NO_MEM;
    w->base = base;
    w->size = size;
    w->disp_unit = disp_unit;
    return made(w, PMPI_Win_create(base, size, disp_unit, vh_in_info(info), vh_in_comm(comm),
                                   &w->h.real.win), win);
}

int MPI_Win_allocate(MPI_Aint size, int disp_unit, MPI_Info info, MPI_Comm comm, void *baseptr,
                     MPI_Win *win)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Win_allocate(size, disp_unit, info, comm, baseptr, win);
    if (size < 0)
        return MPI_ERR_SIZE;
    struct vwin *w = recipe(comm, info, MPI_WIN_FLAVOR_ALLOCATE);
    if (!w)
        return MPI_ERR_NO_MEM;
    /* Aligned like MPI_Alloc_mem's; zero, as the other ranks' first reads
     * of memory nobody wrote should not differ between runs. */
    w->base = crmpi_palloc(size ? (size_t)size : 1);
    if (!w->base) {
        destroy(w);
        return MPI_ERR_NO_MEM;
    }
    memset(w->base, 0, size ? (size_t)size : 1);
    w->size = size;
    w->disp_unit = disp_unit;
    int rc = PMPI_Win_create(w->base, size, disp_unit, vh_in_info(info), vh_in_comm(comm),
                             &w->h.real.win);
    if (rc == MPI_SUCCESS)
        memcpy(baseptr, &w->base, sizeof w->base);   /* baseptr is a void ** */
    return made(w, rc, win);
}

int MPI_Win_create_dynamic(MPI_Info info, MPI_Comm comm, MPI_Win *win)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_Win_create_dynamic(info, comm, win);
    struct vwin *w = recipe(comm, info, MPI_WIN_FLAVOR_DYNAMIC);
    if (!w)
        return MPI_ERR_NO_MEM;
    return made(w, PMPI_Win_create_dynamic(vh_in_info(info), vh_in_comm(comm), &w->h.real.win),
                win);
}

int MPI_Win_attach(MPI_Win win, void *base, MPI_Aint size)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(win);
    if (!w)
        return PMPI_Win_attach(crmpi_passthrough() ? win : vh_in_win(win), base, size);
    if (size > 0 && !crmpi_mem_restored(base, (size_t)size))
        return not_restored("MPI_Win_attach", base, size);
    struct vwin_mem *att = crmpi_palloc((w->natt + 1) * sizeof *att);
    if (!att)
        return MPI_ERR_NO_MEM;
    int rc = PMPI_Win_attach(w->h.real.win, base, size);
    if (rc != MPI_SUCCESS) {
        crmpi_pfree(att);
        return rc;
    }
    if (w->natt)
        memcpy(att, w->att, w->natt * sizeof *att);
    att[w->natt++] = (struct vwin_mem){ base, size };
    crmpi_pfree(w->att);
    w->att = att;
    return MPI_SUCCESS;
}

int MPI_Win_detach(MPI_Win win, const void *base)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(win);
    if (!w)
        return PMPI_Win_detach(crmpi_passthrough() ? win : vh_in_win(win), base);
    int rc = PMPI_Win_detach(w->h.real.win, base);
    if (rc != MPI_SUCCESS)
        return rc;
    for (size_t i = 0; i < w->natt; i++) {
        if (w->att[i].base == base) {
            w->att[i] = w->att[--w->natt];
            break;
        }
    }
    return MPI_SUCCESS;
}

int MPI_Win_free(MPI_Win *win)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(*win);
    if (!w)
        return PMPI_Win_free(win);
    int rc = PMPI_Win_free(&w->h.real.win);
    if (rc != MPI_SUCCESS)
        return rc;
    vh_unlink(&w->h);
    destroy(w);
    *win = MPI_WIN_NULL;
    return MPI_SUCCESS;
}

/* ---- synchronisation: tracked so that a checkpoint completes it and a restart
 * re-enters it ----------------------------------------------------------------- */

int MPI_Win_fence(int assert, MPI_Win win)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(win);
    if (!w)
        return PMPI_Win_fence(assert, crmpi_passthrough() ? win : vh_in_win(win));
    int rc = PMPI_Win_fence(assert, w->h.real.win);
    if (rc == MPI_SUCCESS)
        w->fence = !(assert & MPI_MODE_NOSUCCEED);
    return rc;
}

static int valid_rank(const struct vwin *w, int rank)
{
    return rank >= 0 && rank < w->group->size;
}

int MPI_Win_lock(int lock_type, int rank, int assert, MPI_Win win)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(win);
    if (!w)
        return PMPI_Win_lock(lock_type, rank, assert, crmpi_passthrough() ? win : vh_in_win(win));
    int rc = PMPI_Win_lock(lock_type, rank, assert, w->h.real.win);
    if (rc == MPI_SUCCESS && valid_rank(w, rank))
        w->locks[rank] = lock_type;
    return rc;
}

int MPI_Win_unlock(int rank, MPI_Win win)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(win);
    if (!w)
        return PMPI_Win_unlock(rank, crmpi_passthrough() ? win : vh_in_win(win));
    int rc = PMPI_Win_unlock(rank, w->h.real.win);
    if (rc == MPI_SUCCESS && valid_rank(w, rank))
        w->locks[rank] = 0;
    return rc;
}

int MPI_Win_lock_all(int assert, MPI_Win win)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(win);
    if (!w)
        return PMPI_Win_lock_all(assert, crmpi_passthrough() ? win : vh_in_win(win));
    int rc = PMPI_Win_lock_all(assert, w->h.real.win);
    if (rc == MPI_SUCCESS)
        w->lock_all = 1;
    return rc;
}

int MPI_Win_unlock_all(MPI_Win win)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(win);
    if (!w)
        return PMPI_Win_unlock_all(crmpi_passthrough() ? win : vh_in_win(win));
    int rc = PMPI_Win_unlock_all(w->h.real.win);
    if (rc == MPI_SUCCESS)
        w->lock_all = 0;
    return rc;
}

/* Generalized active target: MPI_Win_start..complete (access),
 * MPI_Win_post..wait/test (exposure). */
#define PSCW_OPEN(NAME, FIELD)                                                          \
    int MPI_Win_##NAME(MPI_Group group, int assert, MPI_Win win)                        \
    {                                                                                   \
        CRMPI_LIB_SCOPE;                                                                \
        struct vwin *w = win_of(win);                                                   \
        if (!w)                                                                         \
            return PMPI_Win_##NAME(crmpi_passthrough() ? group : vh_in_group(group),    \
                                   assert, crmpi_passthrough() ? win : vh_in_win(win)); \
        int rc = PMPI_Win_##NAME(vh_in_group(group), assert, w->h.real.win);            \
        if (rc == MPI_SUCCESS)                                                          \
            w->FIELD = 1;                                                               \
        return rc;                                                                      \
    }
#define PSCW_CLOSE(NAME, FIELD)                                                         \
    int MPI_Win_##NAME(MPI_Win win)                                                     \
    {                                                                                   \
        CRMPI_LIB_SCOPE;                                                                \
        struct vwin *w = win_of(win);                                                   \
        if (!w)                                                                         \
            return PMPI_Win_##NAME(crmpi_passthrough() ? win : vh_in_win(win));         \
        int rc = PMPI_Win_##NAME(w->h.real.win);                                        \
        if (rc == MPI_SUCCESS)                                                          \
            w->FIELD = 0;                                                               \
        return rc;                                                                      \
    }
PSCW_OPEN(start, access)
PSCW_OPEN(post, exposure)
PSCW_CLOSE(complete, access)
PSCW_CLOSE(wait, exposure)
#undef PSCW_OPEN
#undef PSCW_CLOSE

int MPI_Win_test(MPI_Win win, int *flag)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(win);
    if (!w)
        return PMPI_Win_test(crmpi_passthrough() ? win : vh_in_win(win), flag);
    int rc = PMPI_Win_test(w->h.real.win, flag);
    if (rc == MPI_SUCCESS && *flag)
        w->exposure = 0;
    return rc;
}

/* ---- what the application sets ------------------------------------------------ */

/* The handler (predefined, or the application's from
 * MPI_Win_create_errhandler) is recorded and set again after a restart. */
int MPI_Win_set_errhandler(MPI_Win win, MPI_Errhandler errh)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(win);
    if (!w)
        return PMPI_Win_set_errhandler(crmpi_passthrough() ? win : vh_in_win(win),
                                       crmpi_passthrough() ? errh : vh_in_errh(errh));
    int rc = PMPI_Win_set_errhandler(w->h.real.win, vh_in_errh(errh));
    if (rc == MPI_SUCCESS)
        w->errh = errh;
    return rc;
}

int MPI_Win_set_name(MPI_Win win, const char *name)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(win);
    if (!w)
        return PMPI_Win_set_name(crmpi_passthrough() ? win : vh_in_win(win), name);
    int rc = PMPI_Win_set_name(w->h.real.win, name);
    if (rc == MPI_SUCCESS)
        vname_record(&w->name, name);
    return rc;
}

int MPI_Win_set_info(MPI_Win win, MPI_Info info)
{
    CRMPI_LIB_SCOPE;
    struct vwin *w = win_of(win);
    if (!w)
        return PMPI_Win_set_info(crmpi_passthrough() ? win : vh_in_win(win),
                                 crmpi_passthrough() ? info : vh_in_info(info));
    int rc = PMPI_Win_set_info(w->h.real.win, vh_in_info(info));
    char buf[64];
    if (rc == MPI_SUCCESS && vh_kv_append(&w->hints, &w->hintlen, vh_in_info(info)) != 0)
        cr_warn("%s: out of persistent memory for the info hints: they are not set again "
                "after a restart", label(w, buf, sizeof buf));
    return rc;
}

/* ---- checkpoint and restart ----------------------------------------------------- */

int vwin_blocked(void)
{
    int n = 0;
    char buf[64];
    for (struct vh *v = crmpi_st->live[VH_WIN].head; v; v = v->next) {
        struct vwin *w = (struct vwin *)v;
        if (w->access || w->exposure) {
            cr_err("%s: a generalized active-target epoch (MPI_Win_%s) is open at "
                   "crmpi_checkpoint(): it cannot be checkpointed; complete it before",
                   label(w, buf, sizeof buf), w->access ? "start" : "post");
            n++;
        }
        for (int r = 0; r < w->group->size; r++) {
            if (w->locks[r] == MPI_LOCK_EXCLUSIVE) {
                cr_err("%s: an exclusive lock on rank %d is held at crmpi_checkpoint(): "
                       "it cannot be checkpointed (shared locks and MPI_Win_lock_all can); "
                       "unlock it before", label(w, buf, sizeof buf), r);
                n++;
                break;
            }
        }
    }
    return n;
}

int vwin_checkpoint(void)
{
    int rc = 0;
    char buf[64];
    for (struct vh *v = crmpi_st->live[VH_WIN].head; v; v = v->next) {
        struct vwin *w = (struct vwin *)v;
        MPI_Win r = v->real.win;
        int mrc = MPI_SUCCESS;
        const char *what = "";
        if (w->fence) {
            what = "MPI_Win_fence";
            mrc = PMPI_Win_fence(0, r);     /* collective: every member is here */
        } else if (w->lock_all) {
            what = "MPI_Win_flush_all";
            mrc = PMPI_Win_flush_all(r);
        } else {
            what = "MPI_Win_flush";
            for (int t = 0; t < w->group->size && mrc == MPI_SUCCESS; t++)
                if (w->locks[t])
                    mrc = PMPI_Win_flush(t, r);
        }
        if (mrc != MPI_SUCCESS && !rc) {
            cr_err("%s: %s completing its operations at the checkpoint failed (MPI error %d)",
                   label(w, buf, sizeof buf), what, mrc);
            rc = -EIO;
        }
    }
    return rc;
}

int vwin_rebuild(struct vwin *w)
{
    MPI_Win *r = &w->h.real.win;
    const char *what = "making its communicator again";
    int rc = vcomm_rebuild(w->group) == 0 ? MPI_SUCCESS : MPI_ERR_COMM;
    MPI_Info hints = MPI_INFO_NULL;
    if (rc == MPI_SUCCESS && w->hintlen) {
        what = "making its info hints again";
        rc = vh_info_from_kv(w->hints, w->hintlen, &hints) == 0 ? MPI_SUCCESS : MPI_ERR_INFO;
    }
    if (rc == MPI_SUCCESS) {
        what = "making it again";
        MPI_Comm c = w->group->h.real.comm;
        rc = w->flavor == MPI_WIN_FLAVOR_DYNAMIC
                 ? PMPI_Win_create_dynamic(hints, c, r)
                 : PMPI_Win_create(w->base, w->size, w->disp_unit, hints, c, r);
        PMPI_Comm_free(&w->group->h.real.comm);    /* the window keeps its own */
    }
    if (hints != MPI_INFO_NULL)
        PMPI_Info_free(&hints);
    for (size_t i = 0; i < w->natt && rc == MPI_SUCCESS; i++) {
        what = "attaching its memory again";
        rc = PMPI_Win_attach(*r, w->att[i].base, w->att[i].size);
    }
    if (rc == MPI_SUCCESS && w->errh) {
        what = "setting its error handler";
        rc = PMPI_Win_set_errhandler(*r, vh_in_errh(w->errh));
    }
    if (rc == MPI_SUCCESS && w->name) {
        what = "setting its name";
        rc = PMPI_Win_set_name(*r, w->name);
    }
    /* Back into the epoch of the checkpoint (whose operations completed
     * there). The fence is collective, in creation order on every member. */
    if (rc == MPI_SUCCESS && w->fence) {
        what = "opening its fence epoch";
        rc = PMPI_Win_fence(MPI_MODE_NOPRECEDE, *r);
    }
    if (rc == MPI_SUCCESS && w->lock_all) {
        what = "taking MPI_Win_lock_all again";
        rc = PMPI_Win_lock_all(0, *r);
    }
    for (int t = 0; t < w->group->size && rc == MPI_SUCCESS; t++) {
        what = "taking its locks again";
        if (w->locks[t])
            rc = PMPI_Win_lock(w->locks[t], t, 0, *r);
    }
    if (rc != MPI_SUCCESS) {
        char buf[64];
        cr_err("%s: %s after the restart failed (MPI error %d)", label(w, buf, sizeof buf),
               what, rc);
        return -EIO;
    }
    return 0;
}

void vwin_release(struct vwin *w)
{
    MPI_Win *r = &w->h.real.win;
    if (*r == MPI_WIN_NULL || !*r)
        return;
    /* MPI_Win_free needs the epochs closed (tests simulating a restart). */
    for (int t = 0; t < w->group->size; t++)
        if (w->locks[t])
            PMPI_Win_unlock(t, *r);
    if (w->lock_all)
        PMPI_Win_unlock_all(*r);
    if (w->fence)
        PMPI_Win_fence(MPI_MODE_NOSUCCEED, *r);
    PMPI_Win_free(r);
}
