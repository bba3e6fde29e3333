/*
 * crmpi-layout-helper - lays out the epoch files of a single-process
 * checkpoint store with HDF5, outside the application's process, so the
 * checkpoint call does not wait for it (src/store/layout_helper.c, which
 * starts it and speaks to it on its standard input). Not for running by
 * hand: it serves requests until its standard input closes.
 */
#include "store/internal.h"
#include "common/config.h"

#include <signal.h>
#include <unistd.h>
#include <sys/resource.h>

int main(void)
{
    /* Its owner may die at any point: a reply to a closed socket is an
     * error (EPIPE), not a signal. */
    signal(SIGPIPE, SIG_IGN);
    /* Nothing of the application's but the socket (standard input) and
     * the log (standard error): descriptors it inherited without
     * close-on-exec stay the application's alone. */
    (void)close_range(3, ~0U, 0);
    /* The writer's priority (src/exec/writer.c says why): it shares the
     * application's core, and at the application's priority, woken by a
     * request, it took the core from the rest of the checkpoint call
     * (begin measured the same ~1 ms as laying out in the call). */
    unsigned nice = cr_config()->writer_nice;
    if (nice > 19)
        nice = 19;
    if (nice)
        (void)setpriority(PRIO_PROCESS, 0, (int)nice);
    return cr_layout_helper_serve(0) ? 1 : 0;
}
