/*
 * rendezvous.c - cr_checkpoint(): all live persistent threads meet, the last
 * one to stop takes the checkpoint, then all continue.
 *
 * A thread calling cr_checkpoint() saves its context and waits on its home
 * stack (exec.h): it has "arrived". Threads waiting in crthread_join or a
 * runtime mutex/condition have saved their context too and count as
 * stopped. Whichever thread makes "stopped == live" true with at least one
 * arrival - an arriving thread, a thread starting to wait, or a finishing
 * thread - runs the collector on its home stack with the runtime lock held,
 * so nothing persistent changes during the checkpoint. The collector's
 * status goes to every thread that arrived for that round: they resume
 * their saved context with it, and cr_checkpoint() returns CR_CHECKPOINTED
 * or the error. In a restarted process the same contexts are resumed with
 * CR_RESUME_RESTARTED: cr_checkpoint() returns CR_RESTARTED.
 *
 * cr_exec_checkpoint_here() names the collector's thread instead: the
 * thread that completes the condition then only wakes it. The MPI layer
 * uses it so that the epoch's MPI calls come from the thread that called
 * crmpi_checkpoint() (MPI_THREAD_SINGLE/FUNNELED allow no other).
 */
#include "exec/exec.h"

#include "common/log.h"
#include "interpose/interpose.h"

#define RT cr_exec_rt_

void cr_exec_set_collector(cr_collector_fn fn, void *arg)
{
    pthread_mutex_lock(&RT.lock);
    RT.collector = fn;
    RT.collector_arg = arg;
    pthread_mutex_unlock(&RT.lock);
}

void cr_exec_maybe_checkpoint(void)
{
    if (RT.busy || RT.arrived == 0 || RT.stopped < RT.live)
        return;
    if (RT.collector_thread && RT.collector_thread != cr_exec_self()) {
        pthread_cond_broadcast(&RT.cond);   /* the named collector takes it */
        return;
    }
    RT.collector_thread = NULL;
    RT.busy = 1;
    int rc = RT.collector ? RT.collector(RT.root, RT.collector_arg) : 0;
    RT.result = rc;
    RT.stopped -= RT.arrived;
    RT.arrived = 0;
    RT.gen++;
    RT.busy = 0;
    pthread_cond_broadcast(&RT.cond);
}

static void *home_arrive(void *unused)
{
    struct cr_pthread *self = cr_exec_self();
    pthread_mutex_lock(&RT.lock);
    RT.arrived++;
    RT.stopped++;
    uint64_t gen = RT.gen;
    cr_exec_maybe_checkpoint();
    while (RT.gen == gen) {
        pthread_cond_wait(&RT.cond, &RT.lock);
        if (RT.gen == gen && RT.collector_thread == self)
            cr_exec_maybe_checkpoint();
    }
    int rc = RT.result;
    pthread_mutex_unlock(&RT.lock);
    cr_ctx_resume(&self->ctx, rc < 0 ? rc : CR_RESUME_DONE);
}

static int checkpoint(int here)
{
    cr_exec_lazy_init();
    struct cr_pthread *self = cr_exec_self();
    if (!self)
        return CR_ESTATE;       /* not a persistent thread */
    if (!RT.collector)
        return CR_CHECKPOINTED; /* CRMPI_DISABLE: nothing to do */
    if (here) {
        pthread_mutex_lock(&RT.lock);
        RT.collector_thread = self;
        pthread_mutex_unlock(&RT.lock);
    }
    /* The caller's library depth (interpose.h) lives in this frame, so a
     * thread resumed by a restore continues with the depth it had here:
     * 0 for the application, 1 inside crmpi_checkpoint(), whose restart
     * path calls MPI again. */
    int depth = cr_lib_depth;
    int v = cr_ctx_save(&self->ctx);
    if (v == 0)
        cr_exec_go_home(home_arrive, NULL);
    cr_lib_depth = depth;
    if (v == CR_RESUME_RESTARTED)
        return CR_RESTARTED;
    if (v == CR_RESUME_DONE)
        return CR_CHECKPOINTED;
    return v;
}

CR_EXPORT int cr_checkpoint(void)
{
    return checkpoint(0);
}

int cr_exec_checkpoint_here(void)
{
    return checkpoint(1);
}
