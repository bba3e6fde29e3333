/*
 * page_copy.h - copying whole pages into a buffer that is not read again
 * soon (the checkpoint staging buffer), with run-time CPU dispatch.
 *
 * The blocking phase of an asynchronous checkpoint copies each dirty page
 * of the region into the staging buffer; the pages are scattered (1% of
 * 1 GiB written: 2621 extents of one page), so the copy is bound by reading
 * them from memory. Two things help there, measured on this project's VMs
 * (AMD EPYC, 2621 pages of 1 GiB, median of 9): stores that bypass the
 * cache, so no line of the staging buffer is first read for ownership,
 * and a prefetch two pages ahead, which the hardware prefetcher (stopping
 * at page boundaries) does not issue: 1.50 ms with memcpy, 1.15 ms so.
 * On CPUs without AVX2 (or under the sanitizers, which must see every
 * access as a memcpy) this is memcpy.
 */
#ifndef CR_PAGE_COPY_H
#define CR_PAGE_COPY_H

#include <stddef.h>

/* Copy len bytes from src to dst, which are page-aligned with len a
 * multiple of the page size (anything else is copied with memcpy).
 * next, if not NULL, is an address the caller reads soon after (how far
 * ahead is the caller's choice): prefetched while the last pages of this
 * run are copied.
 * Call cr_page_copy_done() after the last copy and before another thread
 * reads dst (it orders the non-temporal stores). */
void cr_page_copy(void *dst, const void *src, size_t len, const void *next);
void cr_page_copy_done(void);

#endif
