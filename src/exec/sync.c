/*
 * sync.c - blocking inside the runtime: the mutex and condition variable
 * that persistent threads share, and the generic "block while counting as
 * stopped" that crthread_join uses too.
 *
 * A thread that must wait saves its context into its persistent control
 * block and waits on its home stack (exec.h). Its persistent frames are
 * frozen from then on, so a checkpoint taken while it waits is consistent:
 * the thread counts as arrived at the rendezvous. All waiting uses the one
 * runtime lock and condition (cr_exec_rt_.lock/cond, broadcast on every
 * change): persistent threads are few, and one lock makes the "every live
 * thread is stopped" test exact. The state of a cr_mutex_t/cr_cond_t is a
 * few integers in the caller's memory, changed only under the runtime lock:
 * kept in persistent memory it is checkpointed with everything else; on a
 * restart a waiting thread re-evaluates its wait from that state. A
 * zero-filled object is a valid unlocked mutex / empty condition.
 */
#include "exec/exec.h"

#include <errno.h>

#include "common/log.h"

#define RT cr_exec_rt_

static void *home_block(void *p)
{
    const struct cr_wait *w = p;
    struct cr_pthread *self = cr_exec_self();
    pthread_mutex_lock(&RT.lock);
    RT.stopped++;
    uint64_t rb = RT.rb_gen;
    cr_exec_maybe_checkpoint();
    while (RT.rb_gen == rb && (RT.busy || !w->ready(self, w->arg)))
        pthread_cond_wait(&RT.cond, &RT.lock);
    if (RT.rb_gen != rb)
        cr_exec_rollback_continue(self);   /* w is gone with the frame rolled back */
    w->take(self, w->arg);
    RT.stopped--;
    pthread_cond_broadcast(&RT.cond);
    pthread_mutex_unlock(&RT.lock);
    cr_ctx_resume(&self->ctx, CR_RESUME_DONE);
}

void cr_exec_block(struct cr_pthread *self, const struct cr_wait *w)
{
    for (;;) {
        pthread_mutex_lock(&RT.lock);
        if (w->ready(self, w->arg)) {
            w->take(self, w->arg);
            pthread_mutex_unlock(&RT.lock);
            return;
        }
        pthread_mutex_unlock(&RT.lock);
        int v = cr_ctx_save(&self->ctx);
        if (v == 0)
            cr_exec_go_home(home_block, (void *)w);
        if (v == CR_RESUME_DONE)
            return;
        /* CR_RESUME_RESTARTED (a new process) or CR_RESUME_ROLLEDBACK: wait
         * again from the restored state. */
    }
}

/* ---- mutex -------------------------------------------------------------------- */

static int mutex_free(struct cr_pthread *self, void *m)
{
    return ((cr_mutex_t *)m)->owner == 0;
}

static void mutex_take(struct cr_pthread *self, void *m)
{
    ((cr_mutex_t *)m)->owner = self->id + 1;
}

static struct cr_pthread *caller(void)
{
    cr_exec_lazy_init();
    return cr_exec_self();
}

CR_EXPORT int cr_mutex_init(cr_mutex_t *m)
{
    if (!m)
        return -EINVAL;
    *m = (cr_mutex_t)CR_MUTEX_INITIALIZER;
    return 0;
}

CR_EXPORT int cr_mutex_destroy(cr_mutex_t *m)
{
    if (!m)
        return -EINVAL;
    pthread_mutex_lock(&RT.lock);
    int busy = m->owner != 0;
    pthread_mutex_unlock(&RT.lock);
    return busy ? -EBUSY : 0;
}

CR_EXPORT int cr_mutex_lock(cr_mutex_t *m)
{
    struct cr_pthread *self = caller();
    if (!m)
        return -EINVAL;
    if (!self)
        return CR_ESTATE;
    /* owner is written under the runtime lock by whoever takes or frees the
     * mutex: read it there too (ThreadSanitizer saw the unlocked read). */
    pthread_mutex_lock(&RT.lock);
    int mine = m->owner == self->id + 1;
    pthread_mutex_unlock(&RT.lock);
    if (mine)
        return -EDEADLK;
    struct cr_wait w = { mutex_free, mutex_take, m };
    cr_exec_block(self, &w);
    return 0;
}

CR_EXPORT int cr_mutex_trylock(cr_mutex_t *m)
{
    struct cr_pthread *self = caller();
    if (!m)
        return -EINVAL;
    if (!self)
        return CR_ESTATE;
    int rc = -EBUSY;
    pthread_mutex_lock(&RT.lock);
    if (m->owner == 0) {
        m->owner = self->id + 1;
        rc = 0;
    }
    pthread_mutex_unlock(&RT.lock);
    return rc;
}

CR_EXPORT int cr_mutex_unlock(cr_mutex_t *m)
{
    struct cr_pthread *self = caller();
    if (!m)
        return -EINVAL;
    if (!self)
        return CR_ESTATE;
    int rc = 0;
    pthread_mutex_lock(&RT.lock);
    if (m->owner != self->id + 1)
        rc = -EPERM;
    else {
        m->owner = 0;
        pthread_cond_broadcast(&RT.cond);
    }
    pthread_mutex_unlock(&RT.lock);
    return rc;
}

/* ---- condition variable -------------------------------------------------------- */
/* Tickets: a waiter takes ticket tail++; signal admits one more (head++),
 * broadcast admits all (head = tail); a waiter with ticket < head is woken. */

static int cond_admitted(struct cr_pthread *self, void *c)
{
    return self->ticket < ((cr_cond_t *)c)->head;
}

static void nothing(struct cr_pthread *self, void *c)
{
}

CR_EXPORT int cr_cond_init(cr_cond_t *c)
{
    if (!c)
        return -EINVAL;
    *c = (cr_cond_t)CR_COND_INITIALIZER;
    return 0;
}

CR_EXPORT int cr_cond_destroy(cr_cond_t *c)
{
    if (!c)
        return -EINVAL;
    pthread_mutex_lock(&RT.lock);
    int busy = c->head != c->tail;
    pthread_mutex_unlock(&RT.lock);
    return busy ? -EBUSY : 0;
}

CR_EXPORT int cr_cond_wait(cr_cond_t *c, cr_mutex_t *m)
{
    struct cr_pthread *self = caller();
    if (!c || !m)
        return -EINVAL;
    if (!self)
        return CR_ESTATE;
    pthread_mutex_lock(&RT.lock);
    if (m->owner != self->id + 1) {
        pthread_mutex_unlock(&RT.lock);
        return -EPERM;
    }
    self->ticket = c->tail++;
    m->owner = 0;
    pthread_cond_broadcast(&RT.cond);
    pthread_mutex_unlock(&RT.lock);
    struct cr_wait w = { cond_admitted, nothing, c };
    cr_exec_block(self, &w);
    struct cr_wait wm = { mutex_free, mutex_take, m };
    cr_exec_block(self, &wm);
    return 0;
}

CR_EXPORT int cr_cond_signal(cr_cond_t *c)
{
    if (!c)
        return -EINVAL;
    pthread_mutex_lock(&RT.lock);
    if (c->head < c->tail) {
        c->head++;
        pthread_cond_broadcast(&RT.cond);
    }
    pthread_mutex_unlock(&RT.lock);
    return 0;
}

CR_EXPORT int cr_cond_broadcast(cr_cond_t *c)
{
    if (!c)
        return -EINVAL;
    pthread_mutex_lock(&RT.lock);
    if (c->head != c->tail) {
        c->head = c->tail;
        pthread_cond_broadcast(&RT.cond);
    }
    pthread_mutex_unlock(&RT.lock);
    return 0;
}
