/*
 * fileio.c - open/fopen/close wrappers that note the application's files
 * (libcr/libcrmpi only; the table and what happens at checkpoint and
 * restore are in files.c).
 *
 * Each wrapper calls the C library's function (found with dlsym(RTLD_NEXT)
 * once, in a constructor, with the library depth raised so that dlsym's own
 * allocations never reach the persistent heap) and, when the caller is the
 * application (cr_files_app_context), notes the result. glibc's fopen and
 * fclose use its internal open/close, so a stream is noted once. Sockets
 * and pipes made by the application are noted only to be warned about.
 */
#include "interpose/interpose.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/compiler.h"

static struct {
    int (*open)(const char *, int, ...);
    int (*open64)(const char *, int, ...);
    int (*openat)(int, const char *, int, ...);
    int (*openat64)(int, const char *, int, ...);
    int (*creat)(const char *, mode_t);
    int (*creat64)(const char *, mode_t);
    FILE *(*fopen)(const char *, const char *);
    FILE *(*fopen64)(const char *, const char *);
    FILE *(*fdopen)(int, const char *);
    int (*close)(int);
    int (*fclose)(FILE *);
    int (*pipe)(int[2]);
    int (*pipe2)(int[2], int);
    int (*socket)(int, int, int);
} real;

#define RESOLVE(name) (*(void **)&real.name = dlsym(RTLD_NEXT, #name))

__attribute__((constructor)) static void fileio_init(void)
{
    cr_lib_enter();
    RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64);
    RESOLVE(creat); RESOLVE(creat64); RESOLVE(fopen); RESOLVE(fopen64);
    RESOLVE(fdopen); RESOLVE(close); RESOLVE(fclose); RESOLVE(pipe);
    RESOLVE(pipe2); RESOLVE(socket);
    cr_lib_leave();
}

static int mode_flags(const char *m)
{
    int acc = O_RDONLY, extra = 0;
    switch (m[0]) {
    case 'r': acc = O_RDONLY; break;
    case 'w': acc = O_WRONLY; extra = O_CREAT | O_TRUNC; break;
    case 'a': acc = O_WRONLY; extra = O_CREAT | O_APPEND; break;
    }
    for (const char *c = m + 1; *c && *c != ','; c++) {
        if (*c == '+')
            acc = O_RDWR;
        else if (*c == 'e')
            extra |= O_CLOEXEC;
    }
    return acc | extra;
}

static mode_t get_mode(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

static int note(int fd, const char *path, int flags, mode_t mode)
{
    if (fd >= 0 && cr_files_app_context()) {
        int saved = errno;
        cr_files_note_open(fd, path, flags, (int)mode, NULL);
        errno = saved;
    }
    return fd;
}

CR_EXPORT int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = get_mode(flags, ap);
    va_end(ap);
    return note(real.open(path, flags, mode), path, flags, mode);
}

CR_EXPORT int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = get_mode(flags, ap);
    va_end(ap);
    return note(real.open64(path, flags, mode), path, flags, mode);
}

CR_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = get_mode(flags, ap);
    va_end(ap);
    return note(real.openat(dirfd, path, flags, mode), path, flags, mode);
}

CR_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = get_mode(flags, ap);
    va_end(ap);
    return note(real.openat64(dirfd, path, flags, mode), path, flags, mode);
}

CR_EXPORT int creat(const char *path, mode_t mode)
{
    return note(real.creat(path, mode), path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

CR_EXPORT int creat64(const char *path, mode_t mode)
{
    return note(real.creat64(path, mode), path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

static FILE *note_stream(FILE *fp, const char *path, const char *mode)
{
    if (fp && cr_files_app_context()) {
        int saved = errno;
        cr_files_note_open(fileno(fp), path, mode_flags(mode), 0666, fp);
        errno = saved;
    }
    return fp;
}

CR_EXPORT FILE *fopen(const char *path, const char *mode)
{
    return note_stream(real.fopen(path, mode), path, mode);
}

CR_EXPORT FILE *fopen64(const char *path, const char *mode)
{
    return note_stream(real.fopen64(path, mode), path, mode);
}

CR_EXPORT FILE *fdopen(int fd, const char *mode)
{
    FILE *fp = real.fdopen(fd, mode);
    if (fp && cr_files_app_context())
        cr_files_note_fdopen(fd, fp);
    return fp;
}

CR_EXPORT int close(int fd)
{
    if (cr_files_app_context())
        cr_files_note_close(fd);
    return real.close(fd);
}

CR_EXPORT int fclose(FILE *fp)
{
    if (fp && cr_files_app_context())
        cr_files_note_close(fileno(fp));
    return real.fclose(fp);
}

CR_EXPORT int pipe(int fds[2])
{
    int rc = real.pipe(fds);
    if (rc == 0 && cr_files_app_context()) {
        cr_files_note_other(fds[0], "pipe");
        cr_files_note_other(fds[1], "pipe");
    }
    return rc;
}

CR_EXPORT int pipe2(int fds[2], int flags)
{
    int rc = real.pipe2(fds, flags);
    if (rc == 0 && cr_files_app_context()) {
        cr_files_note_other(fds[0], "pipe");
        cr_files_note_other(fds[1], "pipe");
    }
    return rc;
}

CR_EXPORT int socket(int domain, int type, int protocol)
{
    int fd = real.socket(domain, type, protocol);
    if (fd >= 0 && cr_files_app_context())
        cr_files_note_other(fd, "socket");
    return fd;
}
