/*
 * log.c - leveled logging. Formats into a stack buffer and emits one write(2)
 * per line so concurrent threads and ranks do not interleave mid-line; never
 * allocates, so it is usable from the uffd handler thread and after a heap
 * corruption has been detected.
 */
#include "log.h"
#include "errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cr_log_level_ = CR_LOG_ERROR;
static int log_rank = -1;

void cr_log_set_level(int level) { cr_log_level_ = level; }
void cr_log_set_rank(int rank)   { log_rank = rank; }

static const char *const level_name[] = { "", "error", "warning", "info", "debug" };

void cr_log_write(int level, const char *file, int line, int err, const char *fmt, ...)
{
    int saved_errno = errno;
    char buf[1024];
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t n;
    if (log_rank >= 0)
        n = (size_t)snprintf(buf, sizeof buf, "crmpi[%d/%d] %s:%d: %s: ", log_rank,
                             (int)getpid(), base, line, level_name[level]);
    else
        n = (size_t)snprintf(buf, sizeof buf, "crmpi[%d] %s:%d: %s: ", (int)getpid(),
                             base, line, level_name[level]);
    if (n < sizeof buf) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(buf + n, sizeof buf - n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += (size_t)m;
    }
    if (err && n < sizeof buf)
        n += (size_t)snprintf(buf + n, sizeof buf - n, ": %s",
                              err > 256 ? cr_strerror(-err) : strerror(err));
    if (n >= sizeof buf - 1)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t w = write(STDERR_FILENO, buf + off, n - off);
        if (w <= 0 && errno != EINTR)
            break;
        if (w > 0)
            off += (size_t)w;
    }
    errno = saved_errno;
}
