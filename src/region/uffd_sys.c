/*
 * uffd_sys.c - userfaultfd and PAGEMAP_SCAN system interface (see uffd_sys.h).
 *
 * Feature negotiation: since Linux 5.x a userfaultfd accepts exactly one
 * UFFDIO_API call, so we first probe the supported features on a throw-away
 * fd and then open the real one asking only for what we need (asking for an
 * unknown feature makes UFFDIO_API fail with EINVAL).
 */
#include "uffd_sys.h"
#include "common/errors.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/userfaultfd.h>

/* ---- constants newer than Debian 12's headers (kernel include/uapi) ------ */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED  (1 << 0)
#define PAGE_IS_WRITTEN    (1 << 1)
#define PAGE_IS_FILE       (1 << 2)
#define PAGE_IS_PRESENT    (1 << 3)
#define PAGE_IS_SWAPPED    (1 << 4)
#define PAGE_IS_PFNZERO    (1 << 5)
#define PAGE_IS_HUGE       (1 << 6)
struct page_region { __u64 start, end, categories; };
#define PM_SCAN_WP_MATCHING   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct pm_scan_arg {
    __u64 size, flags, start, end, walk_end, vec, vec_len, max_pages;
    __u64 category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

_Static_assert(CR_UFFD_FEATURE_WP_ASYNC == UFFD_FEATURE_WP_ASYNC, "uffd feature value");
_Static_assert(CR_UFFD_FEATURE_WP_UNPOPULATED == UFFD_FEATURE_WP_UNPOPULATED, "uffd feature value");
_Static_assert(CR_UFFD_FEATURE_PAGEFAULT_FLAG_WP == UFFD_FEATURE_PAGEFAULT_FLAG_WP, "uffd feature value");
_Static_assert(CR_PAGE_IS_WRITTEN == PAGE_IS_WRITTEN && CR_PAGE_IS_PRESENT == PAGE_IS_PRESENT &&
               CR_PAGE_IS_SWAPPED == PAGE_IS_SWAPPED && CR_PAGE_IS_PFNZERO == PAGE_IS_PFNZERO,
               "pagemap category values");
_Static_assert(CR_PM_SCAN_WP_MATCHING == PM_SCAN_WP_MATCHING &&
               CR_PM_SCAN_CHECK_WPASYNC == PM_SCAN_CHECK_WPASYNC, "pagemap scan flags");
_Static_assert(sizeof(struct cr_page_region) == sizeof(struct page_region), "page_region layout");

/* A raw userfaultfd: the system call, else the /dev/userfaultfd device
 * (which grants access by file permission instead of by sysctl). */
static int uffd_raw(int flags)
{
    int fd = (int)syscall(SYS_userfaultfd, flags);
    if (fd >= 0 || (errno != EPERM && errno != ENOSYS))
        return fd >= 0 ? fd : -errno;
    int err = -errno;
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0)
        return err;
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    err = fd >= 0 ? fd : -errno;
    close(dev);
    return err;
}

static int uffd_api(int fd, uint64_t features, uint64_t *got)
{
    struct uffdio_api api = { .api = UFFD_API, .features = features };
    if (ioctl(fd, UFFDIO_API, &api) < 0)
        return -errno;
    if (got)
        *got = api.features;
    return 0;
}

/* Why userfaultfd(2) said EPERM, from the sysctl that decides it. */
static const char *eperm_reason(int flags)
{
    int v = -1;
    FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = -1;
        fclose(f);
    }
    if (v == 0 && !(flags & UFFD_USER_MODE_ONLY))
        return "userfaultfd handling kernel faults is not permitted: vm.unprivileged_userfaultfd=0, "
               "no CAP_SYS_PTRACE, no access to /dev/userfaultfd";
    if (v == 0)
        return "userfaultfd not permitted even for user-mode faults (a seccomp or LSM policy?)";
    return "userfaultfd not permitted (seccomp or LSM policy?)";
}

static int uffd_new(int flags, const char **why)
{
    int fd = uffd_raw(flags);
    if (fd == -EPERM)
        *why = eperm_reason(flags);
    else if (fd == -ENOSYS)
        *why = "kernel built without userfaultfd";
    else if (fd < 0)
        *why = "userfaultfd() failed";
    return fd;
}

int cr_uffd_open(uint64_t want, int user_mode_only_ok, const char **why)
{
    int user_only;
    return cr_uffd_open_ex(want, user_mode_only_ok, why, &user_only);
}

int cr_uffd_open_ex(uint64_t want, int user_mode_only_ok, const char **why, int *user_mode_only)
{
    int flags = O_CLOEXEC | O_NONBLOCK;
    int fd = uffd_new(flags, why);
    if (fd == -EPERM && user_mode_only_ok) {
        flags |= UFFD_USER_MODE_ONLY;
        fd = uffd_new(flags, why);
    }
    if (fd < 0)
        return fd;
    uint64_t have = 0;
    int rc = uffd_api(fd, 0, &have);
    close(fd);
    if (rc < 0) {
        *why = "UFFDIO_API failed";
        return rc;
    }
    if ((have & want) != want) {
        if ((want & UFFD_FEATURE_WP_ASYNC) && !(have & UFFD_FEATURE_WP_ASYNC))
            *why = "kernel lacks UFFD_FEATURE_WP_ASYNC (needs Linux >= 6.7)";
        else if ((want & UFFD_FEATURE_WP_UNPOPULATED) && !(have & UFFD_FEATURE_WP_UNPOPULATED))
            *why = "kernel lacks UFFD_FEATURE_WP_UNPOPULATED (needs Linux >= 6.4)";
        else
            *why = "kernel lacks userfaultfd write-protect (needs Linux >= 5.7)";
        return -ENOSYS;
    }
    fd = uffd_raw(flags);
    if (fd < 0) {
        *why = "userfaultfd() failed on second open";
        return fd;
    }
    rc = uffd_api(fd, want, NULL);
    if (rc < 0) {
        *why = "UFFDIO_API refused the requested features";
        close(fd);
        return rc;
    }
    *user_mode_only = !!(flags & UFFD_USER_MODE_ONLY);
    return fd;
}

int cr_uffd_register_missing_wp(int fd, uintptr_t addr, size_t len)
{
    struct uffdio_register reg = {
        .range = { .start = addr, .len = len },
        .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
    };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
        int err = -errno;
        cr_perr("UFFDIO_REGISTER(MISSING|WP) of [%#lx, %#lx) failed", (unsigned long)addr,
                (unsigned long)(addr + len));
        return err;
    }
    return 0;
}

int cr_uffd_unregister(int fd, uintptr_t addr, size_t len)
{
    struct uffdio_range r = { .start = addr, .len = len };
    if (ioctl(fd, UFFDIO_UNREGISTER, &r) < 0) {
        int err = -errno;
        cr_perr("UFFDIO_UNREGISTER of [%#lx, %#lx) failed", (unsigned long)addr,
                (unsigned long)(addr + len));
        return err;
    }
    return 0;
}

/* UFFDIO_COPY / ZEROPAGE may stop early (EAGAIN: the mm changed, or a
 * signal): continue after the bytes done, reported in the result field. */
int cr_uffd_copy(int fd, uintptr_t dst, const void *src, size_t len)
{
    size_t done = 0;
    while (done < len) {
        struct uffdio_copy c = { .dst = dst + done, .src = (uintptr_t)src + done,
                                 .len = len - done, .mode = 0 };
        if (ioctl(fd, UFFDIO_COPY, &c) == 0)
            return 0;
        int err = errno;
        if (c.copy > 0)
            done += (size_t)c.copy;
        if (err == EAGAIN || err == EINTR)
            continue;
        if (err == EEXIST)
            return -EEXIST;
        cr_perr("UFFDIO_COPY to [%#lx, %#lx) failed", (unsigned long)(dst + done),
                (unsigned long)(dst + len));
        return -err;
    }
    return 0;
}

int cr_uffd_zeropage(int fd, uintptr_t addr, size_t len)
{
    size_t done = 0;
    while (done < len) {
        struct uffdio_zeropage z = { .range = { .start = addr + done, .len = len - done } };
        if (ioctl(fd, UFFDIO_ZEROPAGE, &z) == 0)
            return 0;
        int err = errno;
        if (z.zeropage > 0)
            done += (size_t)z.zeropage;
        if (err == EAGAIN || err == EINTR)
            continue;
        if (err == EEXIST)
            return -EEXIST;
        cr_perr("UFFDIO_ZEROPAGE of [%#lx, %#lx) failed", (unsigned long)(addr + done),
                (unsigned long)(addr + len));
        return -err;
    }
    return 0;
}

int cr_uffd_register_wp(int fd, uintptr_t addr, size_t len)
{
    struct uffdio_register reg = {
        .range = { .start = addr, .len = len },
        .mode = UFFDIO_REGISTER_MODE_WP,
    };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
        int err = -errno;
        cr_perr("UFFDIO_REGISTER(WP) of [%#lx, %#lx) failed", (unsigned long)addr,
                (unsigned long)(addr + len));
        return err;
    }
    return 0;
}

int cr_uffd_wp(int fd, uintptr_t addr, size_t len, int protect, int dontwake)
{
    struct uffdio_writeprotect wp = {
        .range = { .start = addr, .len = len },
        .mode = (protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0) |
                (dontwake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0),
    };
    /* EAGAIN: the mm changed under us (e.g. a concurrent munmap); retry. */
    for (;;) {
        if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            break;
    }
    int err = -errno;
    cr_perr("UFFDIO_WRITEPROTECT(%s) of [%#lx, %#lx) failed", protect ? "WP" : "un-WP",
            (unsigned long)addr, (unsigned long)(addr + len));
    return err;
}

int cr_uffd_wake(int fd, uintptr_t addr, size_t len)
{
    struct uffdio_range r = { .start = addr, .len = len };
    if (ioctl(fd, UFFDIO_WAKE, &r) < 0) {
        int err = -errno;
        cr_perr("UFFDIO_WAKE of [%#lx, %#lx) failed", (unsigned long)addr,
                (unsigned long)(addr + len));
        return err;
    }
    return 0;
}

int cr_uffd_read_faults(int fd, struct cr_uffd_fault *out, int n)
{
    struct uffd_msg msg[64];
    if (n > (int)CR_ARRAY_SIZE(msg))
        n = (int)CR_ARRAY_SIZE(msg);
    ssize_t got = read(fd, msg, (size_t)n * sizeof msg[0]);
    if (got < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    int k = 0;
    for (int i = 0; i < (int)(got / (ssize_t)sizeof msg[0]); i++) {
        if (msg[i].event != UFFD_EVENT_PAGEFAULT)
            continue;   /* we ask for no other events */
        out[k].addr = (uintptr_t)msg[i].arg.pagefault.address;
        out[k].is_wp = !!(msg[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP);
        k++;
    }
    return k;
}

int cr_pagemap_open(void)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = -errno;
        cr_perr("open(/proc/self/pagemap) failed");
        return err;
    }
    return fd;
}

/* The kernel collects a scan's output in a buffer of one PMD's worth of
 * regions (PAGEMAP_WALK_SIZE >> PAGE_SHIFT) and, when that fills while the
 * caller's vector still has room, flushes it and walks on inside the same
 * ioctl. On the kernels seen here (6.18) the walk_end of such a call is
 * the address where the buffer first filled, although the walk went to the
 * end: a caller resuming at walk_end walks the rest again and is handed the
 * pages it already has (a re-arming scan, pages written again meanwhile;
 * any other scan, every page after walk_end twice). A vector no longer
 * than that buffer keeps each ioctl to one inner walk, so walk_end is
 * exact. A PMD maps one page table: page size / 8 entries of 8 bytes (512
 * on x86-64; also right for every arm64 page size). */
static size_t scan_vec_max(void)
{
    return (size_t)sysconf(_SC_PAGESIZE) / 8;   /* from the auxiliary vector: no syscall */
}

long cr_pagemap_scan(int fd, struct cr_pm_scan *s)
{
    size_t vec_max = scan_vec_max();
    struct pm_scan_arg a = {
        .size = sizeof a,
        .flags = s->flags,
        .start = s->start,
        .end = s->end,
        .vec = (uintptr_t)s->vec,
        .vec_len = s->vec_len < vec_max ? s->vec_len : vec_max,
        .category_inverted = s->category_inverted,
        .category_mask = s->category_mask,
        .category_anyof_mask = s->category_anyof_mask,
        .return_mask = s->return_mask,
    };
    long n = ioctl(fd, PAGEMAP_SCAN, &a);
    if (n < 0)
        return -errno;
    s->walk_end = a.walk_end;
    return n;
}
