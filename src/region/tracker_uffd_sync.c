/*
 * tracker_uffd_sync.c - dirty tracking by synchronous userfaultfd
 * write-protection with a handler thread (Linux >= 6.4 for WP_UNPOPULATED).
 *
 * The usable range is registered in WP mode and write-protected; with
 * WP_UNPOPULATED never-touched pages carry a WP marker, so their first
 * write faults too. A faulting thread blocks while the kernel queues a
 * message on the userfaultfd; our handler thread (polling the uffd and an
 * exit pipe, as libfabric's uffd monitor does) un-protects the page, which
 * wakes the writer, and then sets the page's bit in a dirty bitmap. The
 * handler never touches registered memory (it would fault on itself and
 * deadlock): its bitmaps are mapped outside the region and log.c formats
 * on the stack.
 *
 * Ordering (nothing lost, nothing late): the handler marks the page dirty
 * and then un-protects it (which wakes the writer), so a write that has
 * completed always has its bit set. The collector clears a run's bits and
 * re-protects the run. Both steps are done under `lock` by each side, so
 * they cannot interleave: otherwise the collector could clear a bit the
 * handler just set and re-protect, and the handler then un-protect, leaving
 * a writable page with a clear bit (a lost write). Either the handler runs
 * first (the collector reports the page; the woken write lands before the
 * re-protection and is read by the caller, or after it and faults again) or
 * the collector runs first (the bit is set afterwards and reported next
 * time). The lock is never held while calling back into the caller, which
 * may write to the region.
 *
 * Kernel-mode faults (a read(2) into a protected page) are delivered to the
 * handler like user ones, which is why we do not accept UFFD_USER_MODE_ONLY
 * here: those faults would fail with EFAULT instead.
 */
#include "tracker.h"
#include "page_bitmap.h"
#include "uffd_sys.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/quiet_thread.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WANT_FEATURES (CR_UFFD_FEATURE_PAGEFAULT_FLAG_WP | CR_UFFD_FEATURE_WP_UNPOPULATED)

struct sync_state {
    int uffd;
    int exit_pipe[2];
    pthread_t thread;
    pthread_mutex_t lock;   /* orders handler and collector, see above */
    struct cr_page_bitmap dirty;
    struct cr_page_bitmap populated;
};

static int sync_probe(const char **why)
{
    int fd = cr_uffd_open(WANT_FEATURES, 0, why);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

static void handle_faults(struct sync_state *s)
{
    struct cr_uffd_fault f[64];
    for (;;) {
        int n = cr_uffd_read_faults(s->uffd, f, (int)CR_ARRAY_SIZE(f));
        if (n <= 0) {
            if (n < 0)
                cr_errc(n, "uffd-sync: reading fault messages failed");
            return;
        }
        for (int i = 0; i < n; i++) {
            uintptr_t page = cr_align_down(f[i].addr, CR_PAGE_SIZE);
            /* Mark, then un-protect (wakes the writer): see the file comment. */
            pthread_mutex_lock(&s->lock);
            cr_page_bitmap_set(&s->dirty, page);
            if (cr_uffd_wp(s->uffd, page, CR_PAGE_SIZE, 0, 0) < 0)
                (void)cr_uffd_wake(s->uffd, page, CR_PAGE_SIZE);   /* never leave it blocked */
            pthread_mutex_unlock(&s->lock);
        }
    }
}

static void *handler_main(void *arg)
{
    struct sync_state *s = arg;
    struct pollfd p[2] = { { s->uffd, POLLIN, 0 }, { s->exit_pipe[0], POLLIN, 0 } };
    for (;;) {
        int n = poll(p, 2, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            cr_perr("uffd-sync: poll on the userfaultfd failed; write tracking stops");
            return NULL;
        }
        if (p[1].revents)
            return NULL;
        if (p[0].revents & (POLLERR | POLLHUP)) {
            cr_err("uffd-sync: userfaultfd reported an error; write tracking stops");
            return NULL;
        }
        if (p[0].revents & POLLIN)
            handle_faults(s);
    }
}

static int sync_init(struct cr_tracker *t)
{
    const char *why = NULL;
    struct sync_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int rc = cr_uffd_open(WANT_FEATURES, 0, &why);
    if (rc < 0) {
        cr_errc(rc, "uffd-sync: %s", why);
        goto free_state;
    }
    s->uffd = rc;
    pthread_mutex_init(&s->lock, NULL);
    if (pipe2(s->exit_pipe, O_CLOEXEC) != 0) {
        rc = cr_neg_errno();
        cr_perr("uffd-sync: pipe2 failed");
        goto close_uffd;
    }
    rc = cr_page_bitmap_init(&s->dirty, t->base, t->max);
    if (rc < 0)
        goto close_pipe;
    rc = cr_page_bitmap_init(&s->populated, t->base, t->max);
    if (rc < 0)
        goto free_dirty;
    /* The handler takes no signals: the application's handlers might touch
     * the region and block the only thread that can unblock them. */
    rc = -cr_quiet_thread_create(&s->thread, handler_main, s, CR_QUIET_ALL);
    if (rc < 0) {
        cr_errc(rc, "uffd-sync: cannot start the fault handler thread");
        goto free_populated;
    }
    t->priv = s;
    return 0;

free_populated:
    cr_page_bitmap_fini(&s->populated);
free_dirty:
    cr_page_bitmap_fini(&s->dirty);
close_pipe:
    close(s->exit_pipe[0]);
    close(s->exit_pipe[1]);
close_uffd:
    close(s->uffd);
free_state:
    free(s);
    return rc;
}

static int sync_add_range(struct cr_tracker *t, uintptr_t addr, size_t len)
{
    struct sync_state *s = t->priv;
    int rc = cr_uffd_register_wp(s->uffd, addr, len);
    if (rc < 0)
        return rc;
    return cr_uffd_wp(s->uffd, addr, len, 1, 0);
}

static int sync_rearm(void *arg, uintptr_t addr, size_t len)
{
    struct sync_state *s = arg;
    return cr_uffd_wp(s->uffd, addr, len, 1, 0);
}
static void sync_lock(void *arg) { pthread_mutex_lock(&((struct sync_state *)arg)->lock); }
static void sync_unlock(void *arg) { pthread_mutex_unlock(&((struct sync_state *)arg)->lock); }

static int sync_collect(struct cr_tracker *t, uintptr_t start, uintptr_t end,
                        cr_extent_fn fn, void *arg)
{
    struct sync_state *s = t->priv;
    const struct cr_page_bitmap_rearm r = {
        .rearm = sync_rearm, .lock = sync_lock, .unlock = sync_unlock, .arg = s,
    };
    return cr_page_bitmap_collect(&s->dirty, &s->populated, start, end, &r, fn, arg);
}

static int sync_collect_populated(struct cr_tracker *t, uintptr_t start, uintptr_t end,
                                  cr_extent_fn fn, void *arg)
{
    struct sync_state *s = t->priv;
    return cr_page_bitmap_report_union(&s->populated, &s->dirty, start, end, fn, arg);
}

static int sync_discard(struct cr_tracker *t, uintptr_t addr, size_t len)
{
    struct sync_state *s = t->priv;
    pthread_mutex_lock(&s->lock);
    cr_page_bitmap_clear_range(&s->dirty, addr, len);
    cr_page_bitmap_clear_range(&s->populated, addr, len);
    /* DONTNEED dropped the WP markers with the ptes: put them back. */
    int rc = cr_uffd_wp(s->uffd, addr, len, 1, 0);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static void sync_fini(struct cr_tracker *t)
{
    struct sync_state *s = t->priv;
    if (!s)
        return;
    char c = 0;
    if (write(s->exit_pipe[1], &c, 1) != 1)
        cr_perr("uffd-sync: cannot signal the handler thread to exit");
    else
        pthread_join(s->thread, NULL);
    close(s->uffd);   /* unregisters and wakes anyone still blocked */
    close(s->exit_pipe[0]);
    close(s->exit_pipe[1]);
    cr_page_bitmap_fini(&s->dirty);
    cr_page_bitmap_fini(&s->populated);
    free(s);
    t->priv = NULL;
}

const struct cr_tracker_ops cr_tracker_uffd_sync = {
    .name = "uffd-sync",
    .kind = CR_TRACKER_UFFD_SYNC,
    .probe = sync_probe,
    .init = sync_init,
    .add_range = sync_add_range,
    .collect = sync_collect,
    .collect_populated = sync_collect_populated,
    .discard = sync_discard,
    .fini = sync_fini,
};
