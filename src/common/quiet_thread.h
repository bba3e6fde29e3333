/*
 * quiet_thread.h - starting the runtime's own threads (checkpoint writer,
 * staging copy team, store GC, uffd-sync fault handler) with signals
 * blocked.
 *
 * Why: a process-directed signal goes to any thread that does not block it.
 * The application's handlers (and crmpi's own stop signals,
 * mpi-wrap/jobctl.c) must run on the application's threads, never on a
 * thread they do not know about, which may hold a lock they need or be the
 * only thread that can unblock them.
 */
#ifndef CR_QUIET_THREAD_H
#define CR_QUIET_THREAD_H

#include <pthread.h>

enum cr_quiet_signals {
    CR_QUIET_ALL = 0,        /* every signal blocked                          */
    CR_QUIET_BUT_FAULTS,     /* SIGSEGV and SIGBUS left open: a thread that reads
                              * the region under the mprotect tracker, where
                              * they are synchronous and handled */
};

/* pthread_create(t, NULL, fn, arg) with the new thread's signal mask set as
 * `which` says; the caller's mask is unchanged. Returns pthread_create's
 * result (0 or a positive errno). */
int cr_quiet_thread_create(pthread_t *t, void *(*fn)(void *), void *arg,
                           enum cr_quiet_signals which);

#endif
