/*
 * errors.h - status codes inside the runtime. The public codes are in cr.h;
 * internal functions return the same convention (0 / -errno / CR_E*).
 */
#ifndef CR_ERRORS_H
#define CR_ERRORS_H

#include "cr.h"
#include <errno.h>

/* -errno from the current errno, never 0 (a failed call that left errno 0
 * is reported as -EIO rather than as success). */
static inline int cr_neg_errno(void) { return errno > 0 ? -errno : -EIO; }

#endif
