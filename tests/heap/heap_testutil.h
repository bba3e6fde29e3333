/*
 * heap_testutil.h - helpers shared by the heap tests: a fresh region+heap,
 * address-derived fill patterns, and capture of the library's stderr.
 */
#ifndef HEAP_TESTUTIL_H
#define HEAP_TESTUTIL_H

#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cr.h"
#include "heap/heap.h"
#include "region/region.h"

#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer only lets applications map inside its own app ranges. */
#define TEST_BASE 0x4000000000UL
#else
#define TEST_BASE 0x210000000000UL
#endif

/* Close whatever region/heap is open and start an empty heap in a region of
 * max bytes. */
static inline int heap_reset(size_t max)
{
    cr_heap_detach();
    if (cr_region_is_open())
        (void)cr_region_close();
    struct cr_region_params p = { .base = TEST_BASE, .max_size = max, .tracker = 0 };
    int rc = cr_region_open(&p);
    if (rc)
        return rc;
    return cr_heap_init(CR_HEAP_FRESH);
}

/* Word i of a block holds a value derived from the block's address, size
 * and i: an overlap or a stray write shows up as a mismatch. */
static inline uint64_t pat_word(const void *p, size_t size, size_t i)
{
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL ^ size ^ (i * 0xbf58476d1ce4e5b9ULL);
    return x ^ (x >> 29);
}

static inline void pat_fill(void *p, size_t size)
{
    uint64_t *w = p;
    for (size_t i = 0; i < size / 8; i++)
        w[i] = pat_word(p, size, i);
    for (size_t i = size & ~7UL; i < size; i++)
        ((unsigned char *)p)[i] = (unsigned char)(size + i);
}

static inline int pat_ok(const void *p, size_t size)
{
    const uint64_t *w = p;
    for (size_t i = 0; i < size / 8; i++)
        if (w[i] != pat_word(p, size, i))
            return 0;
    for (size_t i = size & ~7UL; i < size; i++)
        if (((const unsigned char *)p)[i] != (unsigned char)(size + i))
            return 0;
    return 1;
}

/* Redirect fd 2 into a temporary file; stderr_end returns what was written
 * (malloc'd, NUL-terminated) and restores fd 2. */
struct capture { int saved, fd; char path[64]; };

static inline void stderr_begin(struct capture *c)
{
    strcpy(c->path, "/tmp/crheap-stderr-XXXXXX");
    c->fd = mkstemp(c->path);
    fflush(stderr);
    c->saved = dup(2);
    dup2(c->fd, 2);
}

static inline char *stderr_end(struct capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    off_t n = lseek(c->fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)n + 1);
    if (buf && n > 0 && pread(c->fd, buf, (size_t)n, 0) != n)
        buf[0] = 0;
    close(c->fd);
    unlink(c->path);
    return buf;
}

#endif
