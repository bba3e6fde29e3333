/*
 * lazy.c - lazy restore: the program resumes before its pages are read.
 *
 * cr_lazy_start() takes an opened, verified restore handle (every metadata
 * checksum of the chain - index rows, thread rows, rank rows - was checked
 * by cr_restore_open) and:
 *  1. computes the final pieces of the image (newer epochs hide older ones);
 *  2. drops the pages a fresh start before the restore left in the region
 *     (libcrmpi restores from inside MPI_Init) and fills the header page,
 *     which stays present, by a plain copy: missing-page faults happen only
 *     on pages that are not present;
 *  3. puts the restored range in userfaultfd missing mode on the tracker's
 *     own fd (a range belongs to one userfaultfd; cr_region_missing_begin);
 *  4. starts a fault thread that serves a missing page by reading its
 *     source extent, checking the extent's CRC and UFFDIO_COPYing every
 *     page of it still missing (pages of no piece, or of a zero piece, get
 *     the zero page), and a prefetch thread that does the same for every
 *     extent in address order;
 *  5. reads the persistent thread stacks at once (resuming touches them
 *     first anyway).
 * One mutex orders the two threads and the discard hook: a page is filled
 * at most once ("resolved" bitmap); a page the program discards before it
 * was filled is marked resolved first, so a later fault there gets zeros,
 * never stale checkpoint contents. The two threads never touch region
 * memory (they copy from malloc'd buffers), so they cannot fault on it.
 *
 * The first checkpoint after a restart is full, and it must see every
 * page: the engine calls cr_lazy_wait() first, which waits for the
 * prefetch, ends missing mode (all persistent threads are stopped then),
 * stops the threads and closes the checkpoint files. A fork waits for the
 * prefetch too (a child does not inherit userfaultfd registrations).
 *
 * Corrupt page data found after the program resumed cannot be undone: the
 * process writes the marker file "restore-eager" in the checkpoint
 * directory, prints which epoch and extent are corrupt, and exits with
 * status 75 (EX_TEMPFAIL). The next start sees the marker and restores
 * eagerly, which checks every checksum before resuming and falls back to
 * the previous epoch; the marker is removed by that run's first commit.
 */
#include "exec/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"
#include "region/region.h"
#include "region/uffd_sys.h"
#include "store/store.h"

#define PAGE CR_PAGE_SIZE
#define EAGER_MARKER "restore-eager"
#define LAZY_EXIT_CORRUPT 75

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active;                  /* between cr_lazy_start and cr_lazy_wait's end */
    int complete;                /* every extent is in                            */
    struct cr_restore *r;
    struct cr_restore_piece *pc;
    size_t npc;
    uint8_t **done;              /* per link, per extent: filled                   */
    size_t nlinks;
    uint64_t *resolved;          /* per page of [base, base+size)                  */
    uintptr_t base;
    size_t size;
    int uffd, stopfd;
    uint8_t *buf;
    size_t buflen;
    pthread_t fault_th, prefetch_th;
    int urgent;                  /* threads about to take mu for a fault/discard  */
    double t0, t_complete;
    uint64_t faults, fetched;
} L = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .uffd = -1,
        .stopfd = -1 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int is_resolved(uintptr_t a)
{
    size_t p = (a - L.base) / PAGE;
    return (L.resolved[p / 64] >> (p % 64)) & 1;
}

static void set_resolved(uintptr_t a, size_t len)
{
    for (size_t p = (a - L.base) / PAGE, e = (a + len - L.base) / PAGE; p < e; p++)
        L.resolved[p / 64] |= 1ULL << (p % 64);
}

/* First piece ending after a. */
static size_t piece_at(uintptr_t a) { return cr_restore_piece_at(L.pc, L.npc, a); }

/* Corrupt data after the program resumed: see the file comment. */
static CR_NORETURN void corrupt(uint32_t link)
{
    const struct cr_config *cfg = cr_config();
    char path[PATH_MAX + 32];
    unsigned long long ep = (unsigned long long)cr_restore_link_epoch(L.r, link);
    if ((size_t)snprintf(path, sizeof path, "%s/" EAGER_MARKER, cfg->dir) < sizeof path) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            if (fsync(fd))
                cr_perr("fsync(%s)", path);
            close(fd);
        }
    }
    fprintf(stderr, "crmpi: lazy restore: page data of checkpoint epoch %llu in %s is corrupt "
            "(details above); the program already resumed and cannot go on. The next start "
            "restores eagerly, verifying every checksum first, and falls back to an older "
            "epoch.\n", ep, cfg->dir);
    _exit(LAZY_EXIT_CORRUPT);
}

/* Zeros into [a, a+len). UFFDIO_ZEROPAGE refuses (EEXIST) a page that
 * holds a uffd-wp PTE marker - what the write-protect tracker leaves on a
 * page discarded (MADV_DONTNEED) or never populated - although such a page
 * faults as missing; UFFDIO_COPY accepts markers, so those pages get a copy
 * of a zero page. Without this, a fault there loops forever (zeropage
 * EEXIST, wake, fault again). Returns 0 or -EEXIST when every page was
 * already present, else a negative errno. */
static int fill_zero(uintptr_t a, size_t len)
{
    static const uint8_t zeros[PAGE] __attribute__((aligned(PAGE)));
    int rc = cr_uffd_zeropage(L.uffd, a, len);
    if (rc != -EEXIST)
        return rc;
    int any = 0;
    for (uintptr_t p = a; p < a + len; p += PAGE) {
        rc = cr_uffd_copy(L.uffd, p, zeros, PAGE);
        if (rc == 0)
            any = 1;
        else if (rc != -EEXIST)
            return rc;
    }
    return any ? 0 : -EEXIST;
}

/* Fill the still unresolved pages of [a, a+len) from src, which holds the
 * contents of memory from address ea on (or with zeros). */
static void fill_unresolved(uintptr_t a, size_t len, const uint8_t *src, uintptr_t ea, int zero)
{
    uintptr_t end = a + len;
    while (a < end) {
        if (is_resolved(a)) {
            a += PAGE;
            continue;
        }
        uintptr_t b = a + PAGE;
        while (b < end && !is_resolved(b))
            b += PAGE;
        int rc = zero ? fill_zero(a, b - a)
                      : cr_uffd_copy(L.uffd, a, src + (a - ea), b - a);
        if (rc < 0 && rc != -EEXIST) {
            fprintf(stderr, "crmpi: lazy restore: cannot fill [%#lx, %#lx): %s\n",
                    (unsigned long)a, (unsigned long)b, cr_strerror(rc));
            _exit(LAZY_EXIT_CORRUPT);
        }
        set_resolved(a, b - a);
        a = b;
    }
}

/* Fetch extent (link, ext) and fill its unresolved pages. L.mu held. */
static void fetch_extent(uint32_t link, uint64_t ext)
{
    if (L.done[link][ext])
        return;
    uintptr_t ea;
    size_t elen;
    cr_restore_extent(L.r, link, ext, &ea, &elen);
    if (elen > L.buflen) {
        uint8_t *nb = realloc(L.buf, elen);
        if (!nb) {
            fprintf(stderr, "crmpi: lazy restore: no memory for a %zu-byte extent\n", elen);
            _exit(LAZY_EXIT_CORRUPT);
        }
        L.buf = nb;
        L.buflen = elen;
    }
    int rc = cr_restore_fetch(L.r, link, ext, L.buf);
    if (rc == CR_ECORRUPT)
        corrupt(link);
    if (rc < 0) {
        fprintf(stderr, "crmpi: lazy restore: cannot read checkpoint data: %s\n", cr_strerror(rc));
        _exit(LAZY_EXIT_CORRUPT);
    }
    L.fetched++;
    for (size_t i = piece_at(ea); i < L.npc && L.pc[i].addr < ea + elen; i++)
        if (L.pc[i].link == link && L.pc[i].ext == ext)
            fill_unresolved(L.pc[i].addr, L.pc[i].len, L.buf, ea, L.pc[i].zero);
    L.done[link][ext] = 1;
}

/* L.mu for a fault or a discard: the application is waiting. The prefetch
 * thread lets these go first (a mutex is not fair: a prefetch looping over
 * 1 MiB extents kept a faulting program waiting for seconds, measured with
 * a 4 GiB heap). */
static void lock_urgent(void)
{
    __atomic_add_fetch(&L.urgent, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_lock(&L.mu);
    __atomic_sub_fetch(&L.urgent, 1, __ATOMIC_ACQ_REL);
}

/* Serve one missing page. */
static void serve(uintptr_t a)
{
    a &= ~(PAGE - 1);
    lock_urgent();
    L.faults++;
    if (a >= L.base && a < L.base + L.size && !is_resolved(a)) {
        size_t i = piece_at(a);
        if (i < L.npc && L.pc[i].addr <= a && !L.pc[i].zero)
            fetch_extent(L.pc[i].link, L.pc[i].ext);
    }
    /* Still missing: no contents in the checkpoint, a zero piece, or
     * discarded since it was filled. */
    if (a >= L.base && a < L.base + L.size && !is_resolved(a))
        fill_unresolved(a, PAGE, NULL, 0, 1);
    else if (fill_zero(a, PAGE) == -EEXIST)
        (void)cr_uffd_wake(L.uffd, a, PAGE);
    pthread_mutex_unlock(&L.mu);
}

static void *fault_main(void *unused)
{
    struct pollfd pf[2] = { { .fd = L.uffd, .events = POLLIN }, { .fd = L.stopfd, .events = POLLIN } };
    for (;;) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            cr_perr("lazy restore: poll");
            _exit(LAZY_EXIT_CORRUPT);
        }
        if (pf[1].revents)
            return NULL;
        struct cr_uffd_fault f[64];
        int n = cr_uffd_read_faults(L.uffd, f, 64);
        for (int i = 0; i < n; i++)
            if (!f[i].is_wp)
                serve(f[i].addr);
    }
}

static void *prefetch_main(void *unused)
{
    for (size_t i = 0; i < L.npc; i++) {
        while (__atomic_load_n(&L.urgent, __ATOMIC_ACQUIRE))
            sched_yield();
        pthread_mutex_lock(&L.mu);
        if (!L.pc[i].zero)
            fetch_extent(L.pc[i].link, L.pc[i].ext);
        pthread_mutex_unlock(&L.mu);
    }
    pthread_mutex_lock(&L.mu);
    L.complete = 1;
    L.t_complete = now();
    pthread_cond_broadcast(&L.cv);
    pthread_mutex_unlock(&L.mu);
    cr_dbg("lazy restore complete: %.3f s, %llu extents read, %llu faults served",
           L.t_complete - L.t0, (unsigned long long)L.fetched, (unsigned long long)L.faults);
    return NULL;
}

static void on_discard(void *unused, uintptr_t a, size_t len)
{
    lock_urgent();
    if (L.active && !L.complete) {
        uintptr_t lo = CR_MAX(a, L.base), hi = CR_MIN(a + len, L.base + L.size);
        if (lo < hi)
            set_resolved(lo, hi - lo);
    }
    pthread_mutex_unlock(&L.mu);
}

static void wait_complete(void)
{
    pthread_mutex_lock(&L.mu);
    while (L.active && !L.complete)
        pthread_cond_wait(&L.cv, &L.mu);
    pthread_mutex_unlock(&L.mu);
}

static void atfork_prepare(void) { wait_complete(); }

/* Pages present before missing mode starts (the region's header page)
 * would never fault: copy their final contents in now. */
static int fill_present(uintptr_t a, size_t len)
{
    for (uintptr_t p = a; p < a + len; p += PAGE) {
        size_t i = piece_at(p);
        if (i >= L.npc || L.pc[i].addr > p || L.pc[i].zero) {
            memset((void *)p, 0, PAGE);
            continue;
        }
        uintptr_t ea;
        size_t elen;
        cr_restore_extent(L.r, L.pc[i].link, L.pc[i].ext, &ea, &elen);
        uint8_t *tmp = malloc(elen);
        if (!tmp)
            return -ENOMEM;
        int rc = cr_restore_fetch(L.r, L.pc[i].link, L.pc[i].ext, tmp);
        if (rc == 0)
            memcpy((void *)p, tmp + (p - ea), PAGE);
        free(tmp);
        if (rc)
            return rc;
        set_resolved(p, PAGE);
    }
    return 0;
}

static void lazy_free(void)
{
    for (size_t i = 0; L.done && i < L.nlinks; i++)
        free(L.done[i]);
    free(L.done);
    free(L.pc);
    free(L.resolved);
    free(L.buf);
    L.done = NULL;
    L.pc = NULL;
    L.resolved = NULL;
    L.buf = NULL;
    L.buflen = 0;
}

int cr_lazy_marker_present(void)
{
    char path[PATH_MAX + 32];
    if ((size_t)snprintf(path, sizeof path, "%s/" EAGER_MARKER, cr_config()->dir) >= sizeof path)
        return 0;
    return access(path, F_OK) == 0;
}

void cr_lazy_marker_remove(void)
{
    char path[PATH_MAX + 32];
    if ((size_t)snprintf(path, sizeof path, "%s/" EAGER_MARKER, cr_config()->dir) < sizeof path &&
        unlink(path) != 0 && errno != ENOENT)
        cr_perr("unlink(%s)", path);
}

int cr_lazy_start(struct cr_restore *r, size_t nlinks, const struct cr_thread_record *rec,
                  size_t nrec)
{
    struct cr_restore_info info;
    cr_restore_info(r, &info);
    L.t0 = now();
    L.r = r;
    L.base = (uintptr_t)cr_region_base();
    L.size = cr_align_up(info.region_size, PAGE);
    L.nlinks = nlinks;
    L.complete = 0;
    L.faults = L.fetched = 0;
    int rc = cr_restore_pieces(r, &L.pc, &L.npc);
    if (rc)
        goto free_all;
    rc = -ENOMEM;
    L.resolved = calloc(L.size / PAGE / 64 + 1, sizeof *L.resolved);
    L.done = calloc(nlinks, sizeof *L.done);
    if (!L.resolved || !L.done)
        goto free_all;
    uint64_t *rows = calloc(nlinks, sizeof *rows);
    if (!rows)
        goto free_all;
    /* per link: the largest extent index any piece names, + 1 */
    for (size_t k = 0; k < L.npc; k++)
        rows[L.pc[k].link] = CR_MAX(rows[L.pc[k].link], L.pc[k].ext + 1);
    for (size_t i = 0; i < nlinks; i++)
        if (!(L.done[i] = calloc(rows[i] + 1, 1)))
            break;
    int short_of_memory = nlinks && !L.done[nlinks - 1];
    free(rows);
    if (short_of_memory)
        goto free_all;
    /* Pages already present would never fault. With libcrmpi the restore
     * runs after a fresh start (main called MPI_Init), so heap metadata,
     * argv copies and main's stack are present with the fresh run's
     * contents: drop them (they read as zeros until the checkpoint's
     * contents are fetched), and copy in the header page, which stays. */
    if (L.size > PAGE) {
        rc = cr_region_discard((void *)(L.base + PAGE), L.size - PAGE);
        if (rc)
            goto free_all;
    }
    rc = fill_present(L.base, PAGE);
    if (rc)
        goto free_all;
    rc = cr_region_missing_begin(L.size, &L.uffd);
    if (rc)
        goto free_all;
    L.stopfd = eventfd(0, EFD_CLOEXEC);
    if (L.stopfd < 0) {
        rc = cr_neg_errno();
        goto end_missing;
    }
    L.active = 1;
    cr_region_set_discard_hook(on_discard, NULL);
    rc = -pthread_create(&L.fault_th, NULL, fault_main, NULL);
    if (rc)
        goto close_stop;
    /* Stacks first, before the prefetch starts: resuming touches them at
     * once. */
    pthread_mutex_lock(&L.mu);
    for (size_t t = 0; t < nrec; t++) {
        uintptr_t lo = CR_MAX((uintptr_t)rec[t].stack_lo, L.base);
        uintptr_t hi = CR_MIN((uintptr_t)rec[t].stack_hi, L.base + L.size);
        for (size_t i = piece_at(lo); i < L.npc && L.pc[i].addr < hi; i++)
            if (!L.pc[i].zero)
                fetch_extent(L.pc[i].link, L.pc[i].ext);
    }
    pthread_mutex_unlock(&L.mu);
    rc = -pthread_create(&L.prefetch_th, NULL, prefetch_main, NULL);
    if (rc) {
        uint64_t one = 1;
        if (write(L.stopfd, &one, sizeof one) < 0)
            cr_perr("write(eventfd)");
        pthread_join(L.fault_th, NULL);
        goto close_stop;
    }
    static int atfork_set;
    if (!atfork_set && pthread_atfork(atfork_prepare, NULL, NULL) == 0)
        atfork_set = 1;
    cr_dbg("lazy restore of epoch %llu: %zu pieces, resuming after %.3f ms",
           (unsigned long long)info.epoch, L.npc, 1e3 * (now() - L.t0));
    return 0;
close_stop:
    cr_region_set_discard_hook(NULL, NULL);
    L.active = 0;
    close(L.stopfd);
    L.stopfd = -1;
end_missing:
    if (cr_region_missing_end())
        cr_err("cannot leave userfaultfd missing mode after a failed lazy start");
free_all:
    lazy_free();
    L.r = NULL;
    return rc;
}

int cr_lazy_wait(double *full_seconds)
{
    if (!L.active)
        return 0;
    wait_complete();
    int rc = cr_region_missing_end();
    if (rc) {
        cr_errc(rc, "cannot end the lazy restore's missing mode");
        return rc;
    }
    uint64_t one = 1;
    if (write(L.stopfd, &one, sizeof one) < 0)
        cr_perr("write(eventfd)");
    pthread_join(L.fault_th, NULL);
    pthread_join(L.prefetch_th, NULL);
    cr_region_set_discard_hook(NULL, NULL);
    pthread_mutex_lock(&L.mu);
    L.active = 0;
    pthread_mutex_unlock(&L.mu);
    close(L.stopfd);
    L.stopfd = -1;
    if (full_seconds)
        *full_seconds = L.t_complete - L.t0;
    cr_restore_close(L.r);
    L.r = NULL;
    lazy_free();
    return 0;
}
