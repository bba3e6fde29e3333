/*
 * vfile.c - MPI-IO files across a checkpoint.
 *
 * A file handle is virtual like the others. Its recipe is what opening it
 * took (its communicator's members and topology - the application may free
 * the communicator while the file is open -, absolute path, access mode) and what the application
 * set since (view, atomicity, a predefined error handler); the checkpoint
 * adds where it stood. After the drain has completed every pending file
 * request, each file open for writing is synced (MPI_File_sync: the data
 * written before the checkpoint must survive the node that wrote it), and
 * its individual and shared file pointers and its size are recorded. A
 * restart reopens the files in creation order (collectively, like the
 * communicators), cuts each writable one back to its size at the
 * checkpoint - what the run wrote after it is written again by the
 * re-execution, as with the POSIX files of transparent mode - and sets the
 * view, atomicity and pointers back.
 *
 * Info hints given at open and by MPI_File_set_info are given again at the
 * reopen (those of MPI_File_set_view are not kept). A split collective (MPI_File_*_begin/_end) in
 * progress at a checkpoint fails it (agreed: every member has the same
 * one). User file error handlers and data representations stay refused.
 */
#include "vhandle.h"
#include "wrap_support.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int writable(const struct vfile *f)
{
    return !(f->amode & MPI_MODE_RDONLY);
}

static int sequential(const struct vfile *f)
{
    return f->amode & MPI_MODE_SEQUENTIAL;
}

static void destroy(struct vfile *f)
{
    if (f->has_view) {
        vtype_drop(f->etype);
        vtype_drop(f->filetype);
    }
    crmpi_pfree(f->path);
    crmpi_pfree(f->hints);
    if (f->group)
        vcomm_destroy(f->group);
    f->h.magic = VH_DEAD;
    crmpi_pfree(f);
}

/* The path the restarted process must open: absolute, from the working
 * directory of now (a prefix such as "ufs:" is kept in front). */
static char *absolute(const char *name)
{
    const char *colon = strchr(name, ':'), *slash = strchr(name, '/');
    size_t pre = colon && (!slash || colon < slash) ? (size_t)(colon - name) + 1 : 0;
    const char *rest = name + pre;
    char cwd[PATH_MAX] = "";
    int rel = rest[0] != '/' && getcwd(cwd, sizeof cwd);
    size_t n = pre + (rel ? strlen(cwd) + 1 : 0) + strlen(rest) + 1;
    char *p = crmpi_palloc(n);
    if (p)
        snprintf(p, n, "%.*s%s%s%s", (int)pre, name, rel ? cwd : "", rel ? "/" : "", rest);
    return p;
}

int MPI_File_open(MPI_Comm comm, const char *filename, int amode, MPI_Info info, MPI_File *fh)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_File_open(comm, filename, amode, info, fh);
    struct vfile *f = (struct vfile *)vh_alloc(sizeof *f, VH_FILE);
    if (!f)
        return MPI_ERR_NO_MEM;
    f->path = absolute(filename);
    f->group = (struct vcomm *)vh_alloc(sizeof *f->group, VH_COMM);
    if (!f->path || !f->group || vcomm_capture(f->group, vh_in_comm(comm)) != 0 ||
        vh_kv_append(&f->hints, &f->hintlen, vh_in_info(info)) != 0) {
        destroy(f);
        return MPI_ERR_NO_MEM;
    }
    int rc = PMPI_File_open(vh_in_comm(comm), filename, amode, vh_in_info(info), &f->h.real.file);
    if (rc != MPI_SUCCESS) {
        destroy(f);
        return rc;
    }
    f->amode = amode;
    /* The handler it inherited (the files' default at this moment). */
    MPI_Errhandler e;
    if (PMPI_File_get_errhandler(f->h.real.file, &e) == MPI_SUCCESS) {
        f->errh = vh_back_errh(e);
        if (f->errh != e)
            PMPI_Errhandler_free(&e);   /* the reference get_errhandler added */
    }
    vh_link(&f->h);
    *fh = (MPI_File)f;
    return MPI_SUCCESS;
}

int MPI_File_close(MPI_File *fh)
{
    CRMPI_LIB_SCOPE;
    struct vfile *f = crmpi_passthrough() ? NULL : (struct vfile *)vh_get(*fh, VH_FILE);
    if (!f)
        return PMPI_File_close(fh);
    int rc = PMPI_File_close(&f->h.real.file);
    if (rc != MPI_SUCCESS)
        return rc;
    vh_unlink(&f->h);
    destroy(f);
    *fh = MPI_FILE_NULL;
    return MPI_SUCCESS;
}

int MPI_File_set_info(MPI_File fh, MPI_Info info)
{
    CRMPI_LIB_SCOPE;
    struct vfile *f = crmpi_passthrough() ? NULL : (struct vfile *)vh_get(fh, VH_FILE);
    if (!f)
        return PMPI_File_set_info(vh_in_file(fh), vh_in_info(info));
    int rc = PMPI_File_set_info(f->h.real.file, vh_in_info(info));
    if (rc == MPI_SUCCESS && vh_kv_append(&f->hints, &f->hintlen, vh_in_info(info)) != 0)
        cr_warn("%s: out of persistent memory for the info hints: they are not set again "
                "after a restart", f->path);
    return rc;
}

int MPI_File_set_view(MPI_File fh, MPI_Offset disp, MPI_Datatype etype, MPI_Datatype filetype,
                      const char *datarep, MPI_Info info)
{
    CRMPI_LIB_SCOPE;
    struct vfile *f = crmpi_passthrough() ? NULL : (struct vfile *)vh_get(fh, VH_FILE);
    if (!f)
        return PMPI_File_set_view(vh_in_file(fh), disp, etype, filetype, datarep, info);
    if (strlen(datarep) >= sizeof f->datarep)
        return crmpi_refuse("MPI_File_set_view with a user data representation");
    int rc = PMPI_File_set_view(f->h.real.file, disp, vh_in_type(etype), vh_in_type(filetype),
                                datarep, vh_in_info(info));
    if (rc != MPI_SUCCESS)
        return rc;
    vtype_hold(etype);           /* the application may free them now */
    vtype_hold(filetype);
    if (f->has_view) {
        vtype_drop(f->etype);
        vtype_drop(f->filetype);
    }
    f->has_view = 1;
    f->disp = disp;
    f->etype = etype;
    f->filetype = filetype;
    strcpy(f->datarep, datarep);
    return MPI_SUCCESS;
}

/* The types of the view as the application named them: MPI hands out new
 * handles of derived types, which the caller frees - here a reference more
 * on the recorded virtual type. */
static MPI_Datatype view_type(MPI_Datatype real, MPI_Datatype recorded)
{
    int ni, na, nd, comb;
    if (PMPI_Type_get_envelope(real, &ni, &na, &nd, &comb) == MPI_SUCCESS &&
        comb == MPI_COMBINER_NAMED)
        return real;
    PMPI_Type_free(&real);
    vtype_hold(recorded);
    return recorded;
}

int MPI_File_get_view(MPI_File fh, MPI_Offset *disp, MPI_Datatype *etype,
                      MPI_Datatype *filetype, char *datarep)
{
    CRMPI_LIB_SCOPE;
    struct vfile *f = crmpi_passthrough() ? NULL : (struct vfile *)vh_get(fh, VH_FILE);
    if (!f)
        return PMPI_File_get_view(vh_in_file(fh), disp, etype, filetype, datarep);
    MPI_Datatype e, t;
    int rc = PMPI_File_get_view(f->h.real.file, disp, &e, &t, datarep);
    if (rc != MPI_SUCCESS)
        return rc;
    *etype = view_type(e, f->etype);
    *filetype = view_type(t, f->filetype);
    return MPI_SUCCESS;
}

int MPI_File_set_atomicity(MPI_File fh, int flag)
{
    CRMPI_LIB_SCOPE;
    struct vfile *f = crmpi_passthrough() ? NULL : (struct vfile *)vh_get(fh, VH_FILE);
    if (!f)
        return PMPI_File_set_atomicity(vh_in_file(fh), flag);
    int rc = PMPI_File_set_atomicity(f->h.real.file, flag);
    if (rc == MPI_SUCCESS)
        f->atomic = flag != 0;
    return rc;
}

/* A file's handler (predefined, or the application's from
 * MPI_File_create_errhandler), and the default one set on MPI_FILE_NULL,
 * are recorded and set again after a restart. */
int MPI_File_set_errhandler(MPI_File fh, MPI_Errhandler errh)
{
    CRMPI_LIB_SCOPE;
    if (crmpi_passthrough())
        return PMPI_File_set_errhandler(fh, errh);
    struct vfile *f = (struct vfile *)vh_get(fh, VH_FILE);
    int rc = PMPI_File_set_errhandler(vh_in_file(fh), vh_in_errh(errh));
    if (rc == MPI_SUCCESS && f)
        f->errh = errh;
    else if (rc == MPI_SUCCESS && fh == MPI_FILE_NULL)
        crmpi_st->file_null_errh = errh;
    return rc;
}

/* ---- checkpoint and restart ----------------------------------------------------- */

int vfile_checkpoint(void)
{
    int rc = 0;
    for (struct vh *v = crmpi_st->live[VH_FILE].head; v; v = v->next) {
        struct vfile *f = (struct vfile *)v;
        MPI_File r = v->real.file;
        /* Collective: every member takes part, whatever failed before. */
        int src = writable(f) ? PMPI_File_sync(r) : MPI_SUCCESS;
        int prc = PMPI_File_get_size(r, &f->size);
        if (prc == MPI_SUCCESS && !sequential(f))
            prc = PMPI_File_get_position(r, &f->pos);
        if (prc == MPI_SUCCESS)
            prc = PMPI_File_get_position_shared(r, &f->pos_shared);
        if (f->split && !rc) {
            cr_err("%s: a split collective (MPI_File_*_begin) is in progress at "
                   "crmpi_checkpoint(): it cannot be checkpointed; end it before", f->path);
            rc = CR_EUNSUPPORTED;
        }
        if (!rc && (src != MPI_SUCCESS || prc != MPI_SUCCESS)) {
            cr_err("%s: %s failed at the checkpoint (MPI error %d)", f->path,
                   src != MPI_SUCCESS ? "MPI_File_sync" : "reading the file pointers",
                   src != MPI_SUCCESS ? src : prc);
            rc = -EIO;
        }
    }
    return rc;
}

int vfile_rebuild(struct vfile *f)
{
    MPI_File *r = &f->h.real.file;
    /* Without MPI_MODE_CREATE/EXCL: the file is the checkpoint's, and one
     * that vanished since is an error, not an empty new file. */
    int amode = f->amode & ~(MPI_MODE_CREATE | MPI_MODE_EXCL);
    const char *what = "making its communicator again";
    int rc = vcomm_rebuild(f->group) == 0 ? MPI_SUCCESS : MPI_ERR_COMM;
    MPI_Info hints = MPI_INFO_NULL;
    if (rc == MPI_SUCCESS && f->hintlen) {
        what = "making its info hints again";
        rc = vh_info_from_kv(f->hints, f->hintlen, &hints) == 0 ? MPI_SUCCESS : MPI_ERR_INFO;
    }
    if (rc == MPI_SUCCESS) {
        what = "reopening it";
        rc = PMPI_File_open(f->group->h.real.comm, f->path, amode, hints, r);
        PMPI_Comm_free(&f->group->h.real.comm);    /* the file keeps its own */
    }
    if (hints != MPI_INFO_NULL)
        PMPI_Info_free(&hints);
    if (rc == MPI_SUCCESS && writable(f)) {
        what = "cutting it back to its size at the checkpoint";
        rc = PMPI_File_set_size(*r, f->size);
    }
    if (rc == MPI_SUCCESS && f->has_view) {
        what = "setting its view";
        rc = PMPI_File_set_view(*r, f->disp, vh_in_type(f->etype), vh_in_type(f->filetype),
                                f->datarep, MPI_INFO_NULL);
    }
    if (rc == MPI_SUCCESS && f->atomic) {
        what = "setting atomic mode";
        rc = PMPI_File_set_atomicity(*r, 1);
    }
    if (rc == MPI_SUCCESS && !sequential(f)) {
        what = "setting its file pointer";
        rc = PMPI_File_seek(*r, f->pos, MPI_SEEK_SET);
    }
    if (rc == MPI_SUCCESS) {
        what = "setting its shared file pointer";
        rc = PMPI_File_seek_shared(*r, f->pos_shared, MPI_SEEK_SET);
    }
    if (rc == MPI_SUCCESS && f->errh) {
        what = "setting its error handler";
        rc = PMPI_File_set_errhandler(*r, vh_in_errh(f->errh));
    }
    if (rc != MPI_SUCCESS) {
        cr_err("%s: %s after the restart failed (MPI error %d)", f->path, what, rc);
        return -EIO;
    }
    return 0;
}

void vfile_release(struct vfile *f)
{
    if (f->h.real.file != MPI_FILE_NULL)
        PMPI_File_close(&f->h.real.file);
}

/* ---- split collectives ------------------------------------------------------------ */
/* One may be in progress between its _begin and its _end; a checkpoint
 * then cannot capture it (vfile_checkpoint fails the checkpoint). */

static struct vfile *split_mark(MPI_File fh, int on)
{
    struct vfile *f = crmpi_passthrough() ? NULL : (struct vfile *)vh_get(fh, VH_FILE);
    if (f)
        f->split = on;
    return f;
}

#define SPLIT_BEGIN(NAME, PARAMS, ...)                                              \
    int MPI_File_##NAME##_begin PARAMS                                              \
    {                                                                               \
        CRMPI_LIB_SCOPE;                                                            \
        int rc = PMPI_File_##NAME##_begin(__VA_ARGS__);                             \
        if (rc == MPI_SUCCESS)                                                      \
            split_mark(fh, 1);                                                      \
        return rc;                                                                  \
    }
#define SPLIT_END(NAME, CONST)                                                      \
    int MPI_File_##NAME##_end(MPI_File fh, CONST void *buf, MPI_Status *status)     \
    {                                                                               \
        CRMPI_LIB_SCOPE;                                                            \
        int rc = PMPI_File_##NAME##_end(crmpi_passthrough() ? fh : vh_in_file(fh),  \
                                        buf, status);                               \
        if (rc == MPI_SUCCESS)                                                      \
            split_mark(fh, 0);                                                      \
        return rc;                                                                  \
    }
#define IN_FILE (crmpi_passthrough() ? fh : vh_in_file(fh))
#define IN_TYPE (crmpi_passthrough() ? type : vh_in_type(type))
SPLIT_BEGIN(read_at_all, (MPI_File fh, MPI_Offset off, void *buf, int n, MPI_Datatype type),
            IN_FILE, off, buf, n, IN_TYPE)
SPLIT_BEGIN(write_at_all, (MPI_File fh, MPI_Offset off, const void *buf, int n, MPI_Datatype type),
            IN_FILE, off, buf, n, IN_TYPE)
SPLIT_BEGIN(read_all, (MPI_File fh, void *buf, int n, MPI_Datatype type), IN_FILE, buf, n, IN_TYPE)
SPLIT_BEGIN(write_all, (MPI_File fh, const void *buf, int n, MPI_Datatype type),
            IN_FILE, buf, n, IN_TYPE)
SPLIT_BEGIN(read_ordered, (MPI_File fh, void *buf, int n, MPI_Datatype type),
            IN_FILE, buf, n, IN_TYPE)
SPLIT_BEGIN(write_ordered, (MPI_File fh, const void *buf, int n, MPI_Datatype type),
            IN_FILE, buf, n, IN_TYPE)
SPLIT_END(read_at_all, )
SPLIT_END(write_at_all, const)
SPLIT_END(read_all, )
SPLIT_END(write_all, const)
SPLIT_END(read_ordered, )
SPLIT_END(write_ordered, const)
#undef SPLIT_BEGIN
#undef SPLIT_END
#undef IN_FILE
#undef IN_TYPE
