/*
 * tracker_mprotect.c - dirty tracking by page protection and SIGSEGV, for
 * kernels or sandboxes without a usable userfaultfd.
 *
 * Armed pages are PROT_READ. A write faults; our SIGSEGV handler makes the
 * page writable and then sets its bit in a dirty bitmap (mapped outside the
 * region; the handler only uses mprotect(2), atomics and write(2), all
 * async-signal-safe). Faults outside the tracked range, or not caused by our
 * protection, go to the handler that was installed before ours (or to the
 * default action, which then kills the process as it would have).
 *
 * Ordering (nothing lost) is the same as for uffd-sync: the collector clears
 * a run's bits and then re-protects it before reporting it; the handler
 * un-protects before setting the bit.
 *
 * Limits, by design of the mechanism:
 *  - every protection change may split a VMA; a scattered write pattern can
 *    hit vm.max_map_count. The handler then un-protects the whole 2 MiB
 *    chunk and marks all of it written: over-reporting, never losing.
 *  - the kernel does not raise SIGSEGV for its own accesses: a system call
 *    writing into an armed page (read(2) into a region buffer) fails with
 *    EFAULT. Use a uffd tracker where that matters. crmpi's own such writes
 *    (a restore's preads) open the pages first (open_write, through
 *    cr_region_populate) and count them as written.
 *  - an application that later installs its own SIGSEGV handler without
 *    chaining to ours disables tracking.
 *
 * The handler runs on an alternate signal stack (SA_ONSTACK, one per
 * thread that runs on a persistent stack: thread_prepare). Those stacks lie
 * in the region and are armed like any page, so the first write below the
 * stack pointer faults, and the kernel cannot push the handler's frame onto
 * the page that faulted: it kills the process instead (seen: kill_iter
 * died at its first checkpoint, fault address one word below the stack
 * pointer, both in the region).
 */
#include "tracker.h"
#include "page_bitmap.h"
#include "common/errors.h"
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Read by the signal handler: plain globals, published with atomics. */
static struct cr_page_bitmap mp_dirty, mp_populated;
static uintptr_t mp_lo, mp_hi;          /* tracked [lo, hi) */
static int mp_active;
static struct sigaction mp_old;         /* handler before ours */
static int mp_fallback_logged;

static void say(const char *msg)
{
    ssize_t r = write(STDERR_FILENO, msg, strlen(msg));
    (void)r;
}

static void chain(int sig, siginfo_t *si, void *uc)
{
    if (mp_old.sa_flags & SA_SIGINFO) {
        mp_old.sa_sigaction(sig, si, uc);
        return;
    }
    if (mp_old.sa_handler != SIG_DFL && mp_old.sa_handler != SIG_IGN) {
        mp_old.sa_handler(sig);
        return;
    }
    /* Default action: restore it and return; the access faults again and the
     * kernel kills the process with the usual core dump. */
    signal(sig, SIG_DFL);
}

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    int saved_errno = errno;
    uintptr_t a = (uintptr_t)si->si_addr;
    if (__atomic_load_n(&mp_active, __ATOMIC_ACQUIRE) && si->si_code == SEGV_ACCERR &&
        a >= mp_lo && a < __atomic_load_n(&mp_hi, __ATOMIC_ACQUIRE)) {
        uintptr_t page = cr_align_down(a, CR_PAGE_SIZE);
        if (mprotect((void *)page, CR_PAGE_SIZE, PROT_READ | PROT_WRITE) == 0) {
            cr_page_bitmap_set(&mp_dirty, page);
            errno = saved_errno;
            return;
        }
        /* Out of VMAs (ENOMEM): open the whole chunk, report it all. */
        uintptr_t lo = cr_align_down(a, CR_REGION_CHUNK);
        uintptr_t hi = CR_MIN(lo + CR_REGION_CHUNK, __atomic_load_n(&mp_hi, __ATOMIC_ACQUIRE));
        lo = CR_MAX(lo, mp_lo);
        if (mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE) == 0) {
            cr_page_bitmap_set_range(&mp_dirty, lo, hi - lo);
            if (!__atomic_exchange_n(&mp_fallback_logged, 1, __ATOMIC_RELAXED))
                say("crmpi: mprotect tracker: out of memory mappings (vm.max_map_count); "
                    "tracking whole 2 MiB chunks where needed\n");
            errno = saved_errno;
            return;
        }
        say("crmpi: mprotect tracker: cannot make a region page writable\n");
    }
    errno = saved_errno;
    chain(sig, si, uc);
}

static int mp_probe(const char **why)
{
    (void)why;
    return 0;   /* mprotect and signals are always there */
}

static int mp_init(struct cr_tracker *t)
{
    int rc = cr_page_bitmap_init(&mp_dirty, t->base, t->max);
    if (rc < 0)
        return rc;
    rc = cr_page_bitmap_init(&mp_populated, t->base, t->max);
    if (rc < 0)
        goto free_dirty;
    mp_lo = mp_hi = t->base;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &mp_old) != 0) {
        rc = cr_neg_errno();
        cr_perr("mprotect tracker: sigaction(SIGSEGV) failed");
        goto free_populated;
    }
    __atomic_store_n(&mp_active, 1, __ATOMIC_RELEASE);
    return 0;

free_populated:
    cr_page_bitmap_fini(&mp_populated);
free_dirty:
    cr_page_bitmap_fini(&mp_dirty);
    return rc;
}

static int protect(uintptr_t addr, size_t len, int prot)
{
    if (mprotect((void *)addr, len, prot) == 0)
        return 0;
    int err = cr_neg_errno();
    cr_perr("mprotect(%s) of [%#lx, %#lx) failed", prot & PROT_WRITE ? "RW" : "R",
            (unsigned long)addr, (unsigned long)(addr + len));
    return err;
}

static int mp_add_range(struct cr_tracker *t, uintptr_t addr, size_t len)
{
    int rc = protect(addr, len, PROT_READ);
    if (rc == 0 && addr + len > mp_hi)
        __atomic_store_n(&mp_hi, addr + len, __ATOMIC_RELEASE);
    return rc;
}

static int mp_rearm(void *unused, uintptr_t addr, size_t len)
{
    return protect(addr, len, PROT_READ);
}

static int mp_collect(struct cr_tracker *t, uintptr_t start, uintptr_t end,
                      cr_extent_fn fn, void *arg)
{
    static const struct cr_page_bitmap_rearm r = { .rearm = mp_rearm };
    return cr_page_bitmap_collect(&mp_dirty, &mp_populated, start, end, &r, fn, arg);
}

static int mp_collect_populated(struct cr_tracker *t, uintptr_t start, uintptr_t end,
                                cr_extent_fn fn, void *arg)
{
    return cr_page_bitmap_report_union(&mp_populated, &mp_dirty, start, end, fn, arg);
}

static int mp_discard(struct cr_tracker *t, uintptr_t addr, size_t len)
{
    int rc = protect(addr, len, PROT_READ);
    cr_page_bitmap_clear_range(&mp_dirty, addr, len);
    cr_page_bitmap_clear_range(&mp_populated, addr, len);
    return rc;
}

static int mp_open_write(struct cr_tracker *t, uintptr_t addr, size_t len)
{
    (void)t;
    /* As the handler does: writable first, then marked. */
    int rc = protect(addr, len, PROT_READ | PROT_WRITE);
    if (rc == 0)
        cr_page_bitmap_set_range(&mp_dirty, addr, len);
    return rc;
}

/* ---- alternate signal stacks ------------------------------------------------ */
static pthread_key_t mp_alt_key;
static pthread_once_t mp_alt_once = PTHREAD_ONCE_INIT;
static int mp_alt_key_ok;
static __thread void *mp_alt;      /* this thread's, once installed */

static size_t alt_size(void)
{
    size_t n = 64 << 10;           /* the handler needs little; glibc's minimum is less */
#ifdef _SC_SIGSTKSZ
    long s = sysconf(_SC_SIGSTKSZ);
    if (s > 0 && (size_t)s > n)
        n = (size_t)s;
#endif
    return cr_align_up(n, CR_PAGE_SIZE);
}

/* At the thread's exit (pthread key destructor, on that thread). */
static void alt_free(void *p)
{
    stack_t ss = { .ss_flags = SS_DISABLE };
    (void)sigaltstack(&ss, NULL);
    munmap(p, alt_size());
}

static void alt_key_create(void) { mp_alt_key_ok = pthread_key_create(&mp_alt_key, alt_free) == 0; }

static int mp_thread_prepare(struct cr_tracker *t)
{
    (void)t;
    if (mp_alt)
        return 0;
    size_t n = alt_size();
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                   -1, 0);
    if (p == MAP_FAILED) {
        int rc = cr_neg_errno();
        cr_perr("mprotect tracker: no memory for a signal stack");
        return rc;
    }
    stack_t ss = { .ss_sp = p, .ss_size = n, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0) {
        int rc = cr_neg_errno();
        cr_perr("mprotect tracker: sigaltstack");
        munmap(p, n);
        return rc;
    }
    mp_alt = p;
    pthread_once(&mp_alt_once, alt_key_create);
    if (mp_alt_key_ok)
        (void)pthread_setspecific(mp_alt_key, p);
    return 0;
}

static void mp_fini(struct cr_tracker *t)
{
    __atomic_store_n(&mp_active, 0, __ATOMIC_RELEASE);
    struct sigaction cur;
    /* Put the previous handler back only if nobody replaced ours since. */
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == segv_handler && sigaction(SIGSEGV, &mp_old, NULL) != 0)
        cr_perr("mprotect tracker: restoring the previous SIGSEGV handler failed");
    mp_lo = mp_hi = 0;
    cr_page_bitmap_fini(&mp_dirty);
    cr_page_bitmap_fini(&mp_populated);
}

const struct cr_tracker_ops cr_tracker_mprotect = {
    .name = "mprotect",
    .kind = CR_TRACKER_MPROTECT,
    .probe = mp_probe,
    .init = mp_init,
    .add_range = mp_add_range,
    .collect = mp_collect,
    .collect_populated = mp_collect_populated,
    .discard = mp_discard,
    .open_write = mp_open_write,
    .thread_prepare = mp_thread_prepare,
    .fini = mp_fini,
};
