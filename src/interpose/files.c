/*
 * files.c - the application's open files across a restart.
 *
 * The open/fopen wrappers (fileio.c) note every descriptor the application
 * opens (application context: a persistent stack, no library active) in a
 * table in the persistent heap: the absolute path (from /proc/self/fd, so
 * relative paths and later chdir do not matter), the open flags and the
 * FILE* if a stream was made of it. Sockets, pipes and other non-regular
 * descriptors are noted too, only to warn at checkpoint that they will not
 * come back.
 *
 * At a checkpoint (all persistent threads stopped): every stream is flushed,
 * and each regular file's descriptor offset and size are recorded.
 *
 * At restore, before any persistent thread resumes: each file is opened
 * again without O_CREAT/O_TRUNC/O_EXCL and moved to its recorded descriptor
 * number (dup2); a writable file is cut back to its recorded size, so output
 * written after the checkpoint is not duplicated; the descriptor offset is
 * set back. Streams need nothing more: fopen made the FILE (and, on first
 * I/O, its buffer) with malloc in application context, so both are in the
 * persistent heap and were restored with it, flushed, with any read-ahead
 * consistent with the descriptor offset recorded. The only C-library state
 * outside them is the list of all streams that exit() flushes: the FILE is
 * linked into it again (_IO_link_in). Its lock is inside the same
 * allocation and was free at the checkpoint (glibc 2.36, struct locked_FILE).
 * If the recorded number is taken by a descriptor the new process opened
 * before (the runtime's, MPI's) a stream gets the new number patched into
 * its FILE; a raw descriptor cannot, and the restore is refused by name.
 */
#include "interpose/interpose.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "cr.h"
#include "heap/heap.h"

#define MAX_FILES 256
#define PATH_LEN 1024

enum { F_FREE = 0, F_REGULAR, F_OTHER };

struct fentry {
    int kind;
    int fd;
    int flags;
    int warned;
    FILE *fp;
    int64_t offset;
    int64_t size;
    char path[PATH_LEN];
};

struct cr_files {
    struct fentry e[MAX_FILES];
};

static struct cr_files *table;     /* process-local pointer to the persistent table */
/* Persistent threads may open and close files concurrently. A checkpoint
 * never finds it held: threads stop only at cr_checkpoint or runtime waits. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

extern void _IO_link_in(FILE *fp);

int cr_files_create(struct cr_files **out)
{
    *out = crcalloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

void cr_files_attach(struct cr_files *f) { table = f; }

int cr_files_app_context(void)
{
    return table && cr_lib_depth == 0 && cr_heap_owns(__builtin_frame_address(0));
}

static struct fentry *find(int fd)
{
    for (int i = 0; i < MAX_FILES; i++)
        if (table->e[i].kind != F_FREE && table->e[i].fd == fd)
            return &table->e[i];
    return NULL;
}

static struct fentry *slot(int fd)
{
    struct fentry *e = find(fd);
    for (int i = 0; !e && i < MAX_FILES; i++)
        if (table->e[i].kind == F_FREE)
            e = &table->e[i];
    if (!e)
        cr_warn("transparent mode: more than %d open files; descriptor %d will not be "
                "reopened after a restart", MAX_FILES, fd);
    return e;
}

void cr_files_note_open(int fd, const char *path, int flags, int mode, FILE *fp)
{
    (void)mode;
    if (fd < 0 || !table)
        return;
    cr_lib_enter();
    pthread_mutex_lock(&table_lock);
    struct stat sb;
    struct fentry *e = slot(fd);
    if (!e || fstat(fd, &sb) != 0)
        goto out;
    memset(e, 0, sizeof *e);
    e->fd = fd;
    e->flags = flags;
    e->fp = fp;
    if (!S_ISREG(sb.st_mode)) {
        e->kind = F_OTHER;
        snprintf(e->path, sizeof e->path, "%s", path ? path : "?");
        goto out;
    }
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, e->path, sizeof e->path - 1);
    if (n <= 0 || n >= (ssize_t)sizeof e->path - 1) {
        cr_warn("transparent mode: cannot record the path of %s (descriptor %d); it will "
                "not be reopened after a restart", path ? path : "?", fd);
        e->kind = F_FREE;
        goto out;
    }
    e->path[n] = 0;
    e->kind = F_REGULAR;
out:
    pthread_mutex_unlock(&table_lock);
    cr_lib_leave();
}

void cr_files_note_fdopen(int fd, FILE *fp)
{
    if (!table)
        return;
    pthread_mutex_lock(&table_lock);
    struct fentry *e = find(fd);
    if (e)
        e->fp = fp;
    pthread_mutex_unlock(&table_lock);
}

void cr_files_note_close(int fd)
{
    if (!table)
        return;
    pthread_mutex_lock(&table_lock);
    struct fentry *e = find(fd);
    if (e)
        e->kind = F_FREE;
    pthread_mutex_unlock(&table_lock);
}

void cr_files_note_other(int fd, const char *what)
{
    if (fd < 0 || !table)
        return;
    cr_lib_enter();
    pthread_mutex_lock(&table_lock);
    struct fentry *e = slot(fd);
    if (e) {
        memset(e, 0, sizeof *e);
        e->kind = F_OTHER;
        e->fd = fd;
        snprintf(e->path, sizeof e->path, "%s", what);
    }
    pthread_mutex_unlock(&table_lock);
    cr_lib_leave();
}

int cr_files_in_use(const struct cr_files *f)
{
    int n = 0;
    for (int i = 0; f && i < MAX_FILES; i++)
        n += f->e[i].kind != F_FREE;
    return n;
}

void cr_files_checkpoint(struct cr_files *f)
{
    fflush(NULL);      /* empty every stream's write buffer into its file */
    for (int i = 0; i < MAX_FILES; i++) {
        struct fentry *e = &f->e[i];
        if (e->kind == F_OTHER && !e->warned) {
            cr_warn("descriptor %d (%s) is not a regular file and will not be restored "
                    "after a restart", e->fd, e->path);
            e->warned = 1;
        }
        if (e->kind != F_REGULAR)
            continue;
        struct stat sb;
        off_t off = lseek(e->fd, 0, SEEK_CUR);
        if (off < 0 || fstat(e->fd, &sb) != 0) {
            cr_perr("transparent mode: descriptor %d (%s) cannot be recorded", e->fd, e->path);
            continue;
        }
        e->offset = off;
        e->size = sb.st_size;
        if (e->fp && !cr_heap_owns(e->fp) && !e->warned) {
            cr_warn("stream of %s was opened before checkpointing was set up; it will not "
                    "be usable after a restart", e->path);
            e->warned = 1;
        }
    }
}

/* Open e->path again at descriptor e->fd (or patch the stream). */
static int reopen(struct fentry *e)
{
    int flags = e->flags & ~(O_CREAT | O_EXCL | O_TRUNC);
    int fd = open(e->path, flags);
    if (fd < 0) {
        cr_perr("cannot reopen %s (descriptor %d) after the restart", e->path, e->fd);
        return -errno;
    }
    if (fd == e->fd)
        return 0;
    if (fcntl(e->fd, F_GETFD) == -1) {
        if (dup2(fd, e->fd) < 0) {
            cr_perr("dup2(%d, %d) for %s", fd, e->fd, e->path);
            close(fd);
            return -errno;
        }
        close(fd);
        return 0;
    }
    if (e->fp && cr_heap_owns(e->fp)) {
        e->fp->_fileno = fd;          /* the application only sees the FILE* */
        e->fd = fd;
        return 0;
    }
    cr_err("cannot give %s its descriptor number %d again after the restart: the new "
           "process already uses it", e->path, e->fd);
    close(fd);
    return CR_EUNSUPPORTED;
}

int cr_files_restore(struct cr_files *f)
{
    table = f;
    for (int i = 0; i < MAX_FILES; i++) {
        struct fentry *e = &f->e[i];
        if (e->kind != F_REGULAR)
            continue;
        int rc = reopen(e);
        if (rc)
            return rc;
        struct stat sb;
        if (fstat(e->fd, &sb) != 0)
            return -errno;
        if ((e->flags & O_ACCMODE) != O_RDONLY && sb.st_size > e->size &&
            ftruncate(e->fd, e->size) != 0) {
            cr_perr("ftruncate(%s, %lld)", e->path, (long long)e->size);
            return -errno;
        }
        if (sb.st_size < e->size)
            cr_warn("%s is shorter (%lld bytes) than at the checkpoint (%lld)", e->path,
                    (long long)sb.st_size, (long long)e->size);
        if (lseek(e->fd, e->offset, SEEK_SET) < 0) {
            cr_perr("lseek(%s, %lld)", e->path, (long long)e->offset);
            return -errno;
        }
        if (e->fp && cr_heap_owns(e->fp)) {
            e->fp->_flags &= ~0x80;   /* _IO_LINKED: not in this process's list yet */
            _IO_link_in(e->fp);
        }
    }
    return 0;
}
