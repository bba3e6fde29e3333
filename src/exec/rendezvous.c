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
 * A round asked for by cr_rollback() (rollback.c; RT.rb_req) runs the
 * rollback collector instead: on success every stopped thread, seeing
 * RT.rb_gen change, continues as the rollback decided rather than from its
 * own saved context.
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
    int rollback = RT.rb_req;
    RT.rb_req = 0;
    int rc = rollback ? cr_rollback_collect(RT.root)
                      : RT.collector ? RT.collector(RT.root, RT.collector_arg) : 0;
    RT.result = rc;
    if (!rollback || rc) {
        RT.stopped -= RT.arrived;
        RT.arrived = 0;
    }   /* else the rollback reset the accounting: every thread resumes */
    RT.gen++;
    RT.busy = 0;
    pthread_cond_broadcast(&RT.cond);
}

static void *home_arrive(void *rollback_p)
{
    int rollback = rollback_p != NULL;
    struct cr_pthread *self = cr_exec_self();
    pthread_mutex_lock(&RT.lock);
    RT.arrived++;
    RT.stopped++;
    uint64_t gen = RT.gen, rb = RT.rb_gen;
    if (rollback) {
        RT.rb_req = 1;
        RT.collector_thread = self;
    }
    cr_exec_maybe_checkpoint();
    while (RT.gen == gen) {
        pthread_cond_wait(&RT.cond, &RT.lock);
        if (RT.gen == gen && RT.collector_thread == self)
            cr_exec_maybe_checkpoint();
    }
    if (RT.rb_gen != rb)
        cr_exec_rollback_continue(self);
    int rc = RT.result;
    pthread_mutex_unlock(&RT.lock);
    cr_ctx_resume(&self->ctx, rc < 0 ? rc : CR_RESUME_DONE);
}

static int checkpoint(int here, int rollback)
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
        cr_exec_go_home(home_arrive, rollback ? (void *)1 : NULL);
    cr_lib_depth = depth;
    if (v == CR_RESUME_RESTARTED)
        return CR_RESTARTED;
    if (v == CR_RESUME_ROLLEDBACK)
        return CR_ROLLEDBACK;
    if (v == CR_RESUME_DONE)
        return CR_CHECKPOINTED;
    return v;
}

CR_EXPORT int cr_checkpoint(void)
{
    int rc = checkpoint(0, 0);
    cr_writer_release();       /* the call is over: the epoch may be written */
    return rc;
}

int cr_exec_checkpoint_here(void)
{
    return checkpoint(1, 0);
}

/* cr_rollback(): arrive like a checkpoint, asking for a rollback round
 * (rollback.c). Returns only when the rollback failed (nothing changed). */
int cr_exec_rollback_arrive(void)
{
    int v = checkpoint(0, 1);
    /* A successful rollback resumes the checkpoint's contexts instead. */
    return v < 0 ? v : CR_ESTATE;
}
