/*
 * quiet_thread.c - see quiet_thread.h. The new thread inherits the mask in
 * effect at pthread_create, so the caller's is set around the call.
 */
#include "common/quiet_thread.h"

#include <signal.h>

int cr_quiet_thread_create(pthread_t *t, void *(*fn)(void *), void *arg,
                           enum cr_quiet_signals which)
{
    sigset_t all, old;
    sigfillset(&all);
    if (which == CR_QUIET_BUT_FAULTS) {
        sigdelset(&all, SIGSEGV);
        sigdelset(&all, SIGBUS);
    }
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
