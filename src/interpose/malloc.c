/*
 * malloc.c - the C library's malloc family, interposed (libcr/libcrmpi only).
 *
 * An unmodified program allocates with malloc; for it to survive a restart,
 * what its persistent threads allocate must come from the persistent heap.
 * Each call decides by its context (interpose.h):
 *   persistent heap  transparent mode active, the caller's frame is on a
 *                    persistent stack (the stacks live in the heap, so one
 *                    cr_heap_owns() on the frame address answers "persistent
 *                    thread?"), and no library wrapper or runtime code is
 *                    active on this thread (cr_lib_depth == 0);
 *   glibc            everything else: MPI/HDF5 inside wrappers, the
 *                    runtime's own code (collector and restore run on the
 *                    threads' home stacks, and bracket themselves anyway),
 *                    non-persistent threads (MPI progress threads, the uffd
 *                    handler), anything before the fresh-start/restart
 *                    decision, and forked children.
 * free, realloc and malloc_usable_size go by address (cr_heap_owns). realloc
 * from a context whose heap differs from the block's moves the block: a
 * buffer glibc allocated before the decision and grown by the application
 * becomes persistent.
 *
 * glibc's allocator is reached through the __libc_* entry points it
 * exports, never through dlsym (which allocates); the heap's own first use
 * and its logging run with the depth raised, so they cannot recurse into
 * the heap. What stays non-persistent: memory allocated before the decision
 * (for libcrmpi: before MPI_Init), memory MPI and HDF5 allocate for
 * themselves, and glibc-internal state kept in the C library's own data
 * (it is rebuilt by the new process; blocks it had placed in the heap are
 * merely leaked there after a restart).
 */
#include "interpose/interpose.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/compiler.h"
#include "cr.h"
#include "heap/heap.h"

extern void *__libc_malloc(size_t);
extern void  __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

static size_t (*libc_usable)(void *);

static inline int to_heap(void)
{
    if (cr_likely(!cr_interpose_active_) || cr_lib_depth)
        return 0;
    return cr_heap_owns(__builtin_frame_address(0));
}

static void after_fork_child(void)
{
    /* The child has no tracker and no checkpoint of its own. */
    cr_interpose_active_ = 0;
}

__attribute__((constructor)) static void malloc_init(void)
{
    libc_usable = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    (void)pthread_atfork(NULL, NULL, after_fork_child);
}

CR_EXPORT void *malloc(size_t n)
{
    if (!to_heap())
        return __libc_malloc(n);
    cr_lib_enter();
    void *p = crmalloc(n);
    cr_lib_leave();
    return p;
}

CR_EXPORT void *calloc(size_t nmemb, size_t size)
{
    if (!to_heap())
        return __libc_calloc(nmemb, size);
    cr_lib_enter();
    void *p = crcalloc(nmemb, size);
    cr_lib_leave();
    return p;
}

CR_EXPORT void free(void *p)
{
    if (!p)
        return;
    if (!cr_heap_owns(p)) {
        __libc_free(p);
        return;
    }
    int saved = errno;      /* free never changes errno (POSIX 2024) */
    cr_lib_enter();
    crfree(p);
    cr_lib_leave();
    errno = saved;
}

static size_t usable(void *p)
{
    if (cr_heap_owns(p)) {
        cr_lib_enter();
        size_t n = cr_malloc_usable_size(p);
        cr_lib_leave();
        return n;
    }
    if (!libc_usable)
        libc_usable = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    return libc_usable ? libc_usable(p) : 0;
}

CR_EXPORT size_t malloc_usable_size(void *p)
{
    return p ? usable(p) : 0;
}

CR_EXPORT void *realloc(void *p, size_t n)
{
    int dst = to_heap();
    if (!p)
        return dst ? malloc(n) : __libc_malloc(n);
    if (n == 0) {            /* glibc: realloc(p, 0) frees and returns NULL */
        free(p);
        return NULL;
    }
    int src = cr_heap_owns(p);
    if (src == dst) {
        if (!src)
            return __libc_realloc(p, n);
        cr_lib_enter();
        void *q = crrealloc(p, n);
        cr_lib_leave();
        return q;
    }
    /* Across heaps: allocate in the caller's, copy, free in the block's. */
    size_t old = usable(p);
    void *q;
    if (dst) {
        cr_lib_enter();
        q = crmalloc(n);
        cr_lib_leave();
    } else {
        q = __libc_malloc(n);
    }
    if (!q)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    free(p);
    return q;
}

static void *align_alloc(size_t align, size_t n)
{
    if (!to_heap())
        return __libc_memalign(align, n);
    void *p = NULL;
    cr_lib_enter();
    int rc = cr_posix_memalign(&p, align, n);
    cr_lib_leave();
    if (rc) {
        errno = rc > 0 ? rc : -rc;
        return NULL;
    }
    return p;
}

CR_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    int saved = errno;
    void *p = align_alloc(align, n);
    int rc = p ? 0 : errno;
    errno = saved;
    if (!p)
        return rc ? rc : ENOMEM;
    *out = p;
    return 0;
}

CR_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (align & (align - 1)) {
        errno = EINVAL;
        return NULL;
    }
    return align_alloc(align < sizeof(void *) ? sizeof(void *) : align, n);
}

CR_EXPORT void *memalign(size_t align, size_t n)
{
    if (align & (align - 1)) {   /* glibc rounds up; so do we */
        size_t a = sizeof(void *);
        while (a < align)
            a <<= 1;
        align = a;
    }
    return align_alloc(align < sizeof(void *) ? sizeof(void *) : align, n);
}

CR_EXPORT void *valloc(size_t n)
{
    if (!to_heap())
        return __libc_valloc(n);
    return align_alloc((size_t)sysconf(_SC_PAGESIZE), n);
}

CR_EXPORT void *pvalloc(size_t n)
{
    if (!to_heap())
        return __libc_pvalloc(n);
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return align_alloc(pg, (n + pg - 1) & ~(pg - 1));
}
