/*
 * plain_compat.h - lets kill_app.c build against Open MPI alone (no
 * libcrmpi), to check that the answer a checkpointed, killed and restarted
 * run gives is the answer of plain MPI: crmalloc is calloc, checkpoints do
 * nothing, persistent threads are pthreads.
 */
#ifndef PLAIN_COMPAT_H
#define PLAIN_COMPAT_H

#include <mpi.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CRMPI_CHECKPOINTED 0
#define CRMPI_RESTARTED    1
typedef pthread_t crthread_t;
static inline void *crcalloc(size_t n, size_t s) { return calloc(n, s); }
static inline void *crmalloc(size_t n) { return malloc(n); }
static inline void crfree(void *p) { free(p); }
static inline int crmpi_checkpoint(void) { return CRMPI_CHECKPOINTED; }
static inline int cr_checkpoint(void) { return 0; }
static inline const char *cr_strerror(int code) { return strerror(code < 0 ? -code : code); }
static inline int crthread_create(crthread_t *t, void *(*fn)(void *), void *arg)
{
    return -pthread_create(t, NULL, fn, arg);
}
static inline int crthread_join(crthread_t t, void **ret) { return -pthread_join(t, ret); }

#endif
