/*
 * uffd_sys.h - the one place that talks to <linux/userfaultfd.h> and to the
 * PAGEMAP_SCAN ioctl of /proc/self/pagemap.
 *
 * Debian 12 ships kernel headers from 6.1, which predate asynchronous
 * write-protection (UFFD_FEATURE_WP_ASYNC, 6.7), WP_UNPOPULATED (6.4) and
 * PAGEMAP_SCAN (6.7). uffd_sys.c defines what the installed headers lack
 * (each under #ifndef, values from the kernel's include/uapi), so the same
 * source builds against old and new headers; whether the running kernel
 * supports a feature is decided at run time by asking it (UFFDIO_API).
 * The trackers only see the small wrappers below.
 */
#ifndef CR_UFFD_SYS_H
#define CR_UFFD_SYS_H

#include <stddef.h>
#include <stdint.h>

/* Feature bits the trackers ask for (same values as the kernel's). */
#define CR_UFFD_FEATURE_PAGEFAULT_FLAG_WP (1ULL << 0)
#define CR_UFFD_FEATURE_WP_UNPOPULATED    (1ULL << 13)
#define CR_UFFD_FEATURE_WP_ASYNC          (1ULL << 15)

/* Open a userfaultfd (non-blocking, close-on-exec) and enable exactly the
 * features in `want`. Tries the userfaultfd(2) system call, then
 * /dev/userfaultfd; when both refuse for lack of privilege and
 * `user_mode_only_ok` is set, retries with UFFD_USER_MODE_ONLY (faults raised
 * by the kernel itself on our behalf, e.g. read(2) into a tracked page, are
 * then not delivered to a handler; harmless for async WP which the kernel
 * resolves without a handler).
 * Returns the fd (>= 0), or -errno with *why set to a static explanation. */
int cr_uffd_open(uint64_t want, int user_mode_only_ok, const char **why);

/* Like cr_uffd_open; *user_mode_only tells whether the fd only sees faults
 * raised in user mode (then a missing page touched by the kernel itself,
 * e.g. read(2) into it, fails with EFAULT instead of reaching a handler). */
int cr_uffd_open_ex(uint64_t want, int user_mode_only_ok, const char **why, int *user_mode_only);

/* ---- missing mode (lazy restore) ------------------------------------------ */
/* Register [addr, addr+len) for missing-page faults and write-protection at
 * once (a range belongs to one userfaultfd only: the lazy restore shares the
 * tracker's). */
int cr_uffd_register_missing_wp(int fd, uintptr_t addr, size_t len);
/* Drop every registration of [addr, addr+len) (the kernel clears the pages'
 * uffd-wp bits and wakes threads blocked on faults there). */
int cr_uffd_unregister(int fd, uintptr_t addr, size_t len);
/* Atomically fill missing pages [dst, dst+len) with a copy of src (outside
 * registered memory) and wake the threads waiting on them. -EEXIST when a
 * page of the range is already present (pages before it were filled). */
int cr_uffd_copy(int fd, uintptr_t dst, const void *src, size_t len);
/* Map the zero page at missing pages [addr, addr+len); -EEXIST as above. */
int cr_uffd_zeropage(int fd, uintptr_t addr, size_t len);

/* Register [addr, addr+len) in write-protect mode. */
int cr_uffd_register_wp(int fd, uintptr_t addr, size_t len);
/* Write-protect (protect=1) or un-protect [addr, addr+len); un-protecting
 * also wakes threads blocked on a fault there unless dontwake. */
int cr_uffd_wp(int fd, uintptr_t addr, size_t len, int protect, int dontwake);
/* Wake threads blocked on faults in [addr, addr+len). */
int cr_uffd_wake(int fd, uintptr_t addr, size_t len);

/* One write fault read from a userfaultfd (sync mode). */
struct cr_uffd_fault { uintptr_t addr; int is_wp; };
/* Read up to n pending fault messages; returns how many (0 if none), -errno. */
int cr_uffd_read_faults(int fd, struct cr_uffd_fault *out, int n);

/* ---- PAGEMAP_SCAN ---------------------------------------------------------- */
#define CR_PAGE_IS_WRITTEN  (1ULL << 1)
#define CR_PAGE_IS_PRESENT  (1ULL << 3)
#define CR_PAGE_IS_SWAPPED  (1ULL << 4)
#define CR_PAGE_IS_PFNZERO  (1ULL << 5)

#define CR_PM_SCAN_WP_MATCHING   (1ULL << 0)
#define CR_PM_SCAN_CHECK_WPASYNC (1ULL << 1)

struct cr_page_region { uint64_t start, end, categories; };

struct cr_pm_scan {
    uint64_t flags;            /* CR_PM_SCAN_* */
    uint64_t start, end;       /* range to walk */
    uint64_t category_mask;    /* required categories (after inversion) */
    uint64_t category_inverted;
    uint64_t category_anyof_mask;
    uint64_t return_mask;
    struct cr_page_region *vec;
    size_t vec_len;
    uint64_t walk_end;         /* out: where the walk stopped */
};

/* Open /proc/self/pagemap (close-on-exec). Returns fd or -errno. */
int cr_pagemap_open(void);
/* One PAGEMAP_SCAN call. Returns the number of regions filled into vec
 * (the walk stopped early if walk_end < end), or -errno. Fills at most the
 * kernel's own walk buffer (one PMD's worth of regions), whatever vec_len
 * says: only then is walk_end exact (see uffd_sys.c). */
long cr_pagemap_scan(int fd, struct cr_pm_scan *s);

#endif
