/*
 * gc.c - deleting the epoch files the index no longer names, off the
 * checkpoint's critical path.
 *
 * Commit publishes the new index and then sweeps the directory (rank 0).
 * Finding the victims is a readdir; deleting them is not cheap: unlinking
 * a multi-GiB epoch file frees its extents (0.1-0.35 s per GiB measured on
 * ext4 with the discard mount option), which used to be charged to every
 * commit. The names are therefore collected synchronously, against the
 * index just written, and unlinked by a helper thread while the
 * application computes. The thread is joined before the next epoch file
 * is created (cr_gc_wait in begin), so it can never delete a file created
 * after its list was made (a new epoch may reuse the number of an
 * uncommitted leftover it is deleting), and by cr_store_close. A crash
 * while it runs leaves files the next sweep finds again. In a child
 * forked while it ran the thread does not exist: the child forgets it and
 * leaves the deleting to the parent.
 */
#include "store/internal.h"
#include "common/log.h"
#include "common/quiet_thread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cr_gc {
    pthread_t th;
    pid_t owner;                   /* process that created the thread */
    char dir[PATH_MAX];
    size_t n;
    char (*names)[NAME_MAX + 1];
};

static int is_epoch_name(const char *name, uint64_t *epoch)
{
    unsigned long long v;
    int n = 0;
    if (sscanf(name, "epoch-%12llu.h5%n", &v, &n) != 1 || name[n] || strlen(name) != 21)
        return 0;
    *epoch = v;
    return 1;
}

/* Files that live beside an epoch file only while it is made, and that
 * only this sweep removes when a killed process leaves one behind:
 * - Open MPI's MPI-IO (OMPIO, sharedfp/lockedfile) probes whether the
 *   filesystem supports fcntl locks on every collective file open: each
 *   rank creates "<file>.locktest.<rank>" beside the file and unlinks it at
 *   once (seen by inotify during H5Fcreate of an epoch);
 * - rank 0's layout record for the other ranks, "<file>.layout", the
 *   "<file>.layout.tmp" it is renamed from, and the empty
 *   "<file>.layout.failed.<16 hex digits>" that says it could not be
 *   written (epoch.c; deleted at commit). */
static int is_failed_tail(const char *t)
{
    if (strncmp(t, ".failed.", 8) || strlen(t + 8) != 16)
        return 0;
    return strspn(t + 8, "0123456789abcdef") == 16;
}

static int is_transient_name(const char *name, uint64_t *epoch)
{
    unsigned long long e;
    int m = 0;
    if (sscanf(name, "epoch-%12llu.h5.layout%n", &e, &m) == 1 && m == 28 &&
        (!name[m] || !strcmp(name + m, ".tmp") || is_failed_tail(name + m))) {
        *epoch = e;
        return 1;
    }
    unsigned long long v;
    unsigned rank;
    int n = 0;
    if (sscanf(name, "epoch-%12llu.h5.locktest.%u%n", &v, &rank, &n) != 2 || name[n] ||
        strncmp(name + 21, ".locktest.", 10))
        return 0;
    *epoch = v;
    return 1;
}

static void gc_unlink_all(const struct cr_gc *g)
{
    int dfd = open(g->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        cr_perr("open(%s) for garbage collection", g->dir);
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        if (unlinkat(dfd, g->names[i], 0) < 0 && errno != ENOENT)   /* gone is fine */
            cr_perr("unlink(%s/%s)", g->dir, g->names[i]);
        else
            cr_dbg("%s: removed %s", g->dir, g->names[i]);
    }
    close(dfd);
}

static void gc_free(struct cr_gc *g)
{
    if (g) {
        free(g->names);
        free(g);
    }
}

static void *gc_main(void *arg)
{
    gc_unlink_all(arg);
    return NULL;
}

/* With every signal blocked: the application's (and crmpi's own stop)
 * signals must not be delivered to a thread it does not know about. */
static int start_thread(struct cr_gc *g)
{
    return cr_quiet_thread_create(&g->th, gc_main, g, CR_QUIET_ALL);
}

void cr_gc_wait(struct cr_store *st)
{
    struct cr_gc *g = st->gc;
    if (!g)
        return;
    st->gc = NULL;
    if (g->owner != getpid())       /* forked child: the parent's thread */
        return;                     /* (its memory is the child's copy)  */
    pthread_join(g->th, NULL);
    gc_free(g);
}

/* The epoch files older than `below` that ix does not name, and the
 * transient files (is_transient_name) of those epoch numbers. Newer files may be epochs still being
 * written (asynchronous checkpoints create the next epoch's file before the
 * previous index is published). No sweep runs during an epoch file's
 * creation (begin waits for the thread; the deferred sweep runs on the
 * writer, which the next begin waits for), so none of them is in use. */
static struct cr_gc *gc_collect(const char *dir, const struct cr_index *ix, uint64_t below)
{
    struct cr_gc *g = calloc(1, sizeof *g);
    DIR *d = g ? opendir(dir) : NULL;
    if (!d) {
        cr_perr("opendir(%s) for garbage collection", dir);
        free(g);
        return NULL;
    }
    snprintf(g->dir, sizeof g->dir, "%s", dir);
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t ep;
        if (is_epoch_name(de->d_name, &ep)) {
            if (ep >= below || cr_index_find(ix, ep))
                continue;
        } else if (!is_transient_name(de->d_name, &ep) || ep >= below) {
            continue;
        }
        if (g->n == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            void *p = realloc(g->names, ncap * sizeof *g->names);
            if (!p)
                break;              /* the next sweep finds the rest */
            g->names = p;
            cap = ncap;
        }
        snprintf(g->names[g->n++], sizeof *g->names, "%s", de->d_name);
    }
    closedir(d);
    if (!g->n) {
        gc_free(g);
        return NULL;
    }
    g->owner = getpid();
    return g;
}

/* Delete every epoch file the index does not name, and every lock probe
 * (rank 0). */
void cr_gc_sweep(struct cr_store *st)
{
    cr_gc_wait(st);
    struct cr_gc *g = gc_collect(st->dir, &st->ix, UINT64_MAX);
    if (!g)
        return;
    if (!st->gc_inline && start_thread(g) == 0) {
        st->gc = g;
        return;
    }
    gc_unlink_all(g);               /* no thread: delete before returning */
    gc_free(g);
}

void cr_gc_sweep_here(const char *dir, const struct cr_index *ix, uint64_t below)
{
    struct cr_gc *g = gc_collect(dir, ix, below);
    if (g)
        gc_unlink_all(g);
    gc_free(g);
}
