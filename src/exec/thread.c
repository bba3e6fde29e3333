/*
 * thread.c - persistent threads: crthread_create/join/exit/self, their
 * persistent stacks and the real pthreads that carry them.
 *
 * Each persistent thread id (1..CR_MAX_THREADS-1; main is 0) owns a slot in
 * a fixed area of address space (below the region) that becomes the stack
 * of the pthread carrying it. glibc puts a thread's TCB and static TLS at the
 * top of a caller-provided stack, so the thread with a given id has its TLS
 * (errno, TLS variables) at the same address in every run: compiled code may
 * keep &errno in a callee-saved register across a checkpoint, and restored
 * frames must find it valid. The persistent stack on which start(arg) runs
 * comes from the persistent heap; the pthread's own stack is its "home"
 * (exec.h). After a restart, one new pthread per thread that was running at
 * the checkpoint resumes its saved context; finished threads stay finished
 * (their return value is in the region) until joined.
 */
#include "exec/exec.h"
#include "interpose/interpose.h"

#include <errno.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"
#include "region/region.h"

struct cr_exec_rt cr_exec_rt_ = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};
#define RT cr_exec_rt_

#define HOME_SLOT   (2UL << 20)      /* each pthread's own stack, TCB and TLS    */
#define HOME_GAP    (1UL << 30)      /* distance between the home area and region */

static __thread int self_id = -1;
static __thread int home_valid;
static __thread struct cr_ctx home_ctx;
static __thread void *home_result;

struct cr_ctx *cr_exec_home(void)
{
    home_valid = 1;
    return &home_ctx;
}

void cr_exec_set_home_result(void *r) { home_result = r; }
void *cr_exec_home_result(void) { return home_result; }
void cr_exec_set_self(uint32_t id) { self_id = (int)id; }

struct cr_pthread *cr_exec_self(void)
{
    if (self_id < 0 || !RT.root)
        return NULL;
    return &RT.root->threads[self_id];
}

void cr_exec_go_home(void *(*fn)(void *), void *arg)
{
    if (!home_valid) {
        /* Not persistent: the current stack is as good as any. */
        fn(arg);
        __builtin_unreachable();
    }
    /* Below the frame that saved home_ctx, leaving the red zone alone. */
    char *top = (char *)cr_ctx_sp(&home_ctx) - 256;
    cr_ctx_start(top, fn, arg, NULL);
}

static size_t default_stack_size(void)
{
    struct rlimit rl;
    size_t sz = 8UL << 20;
    if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        sz = CR_MIN(CR_MAX((size_t)rl.rlim_cur, 256UL << 10), 1UL << 30);
    return cr_align_up(sz, CR_PAGE_SIZE);
}

/* Reserve the fixed area of home slots (address space only). */
static int reserve_homes(void)
{
    const struct cr_config *cfg = cr_config();
    size_t len = HOME_SLOT * CR_MAX_THREADS;
    uintptr_t base = cfg->region_base - HOME_GAP - len;
    void *p = mmap((void *)base, len, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED) {
        int rc = errno == EEXIST ? CR_ECOLLISION : cr_neg_errno();
        cr_perr("mmap(%p, %zu) for the thread stacks area", (void *)base, len);
        return rc;
    }
    if ((uintptr_t)p != base) {   /* old kernels ignore MAP_FIXED_NOREPLACE */
        munmap(p, len);
        cr_err("thread stacks area %p is already mapped", (void *)base);
        return CR_ECOLLISION;
    }
    RT.homes = base;
    return 0;
}

int cr_exec_init(int persistent, struct cr_exec_root *root)
{
    int rc;
    if (RT.initialized) {
        /* A deferred restore (cr_exec_restore) replaces the fresh root. */
        if (root && persistent && RT.persistent)
            RT.root = root;
        return persistent && !RT.persistent ? -EBUSY : 0;
    }
    RT.stack_size = default_stack_size();
    if (persistent) {
        rc = reserve_homes();
        if (rc)
            return rc;
    }
    if (!root) {
        root = persistent ? crcalloc(1, sizeof *root) : calloc(1, sizeof *root);
        if (!root) {
            cr_err("cannot allocate the runtime's root block (%zu bytes)", sizeof *root);
            return -ENOMEM;
        }
        root->magic = CR_EXEC_MAGIC;
        root->version = CR_EXEC_VERSION;
        root->nthreads = 1;
        root->threads[0].state = CR_T_RUNNING;
        if (persistent)
            cr_region_set_root(CR_ROOT_EXEC, root);
    }
    RT.root = root;
    RT.persistent = persistent;
    RT.live = 1;
    RT.initialized = 1;
    self_id = 0;
    return 0;
}

void cr_exec_lazy_init(void)
{
    pthread_mutex_lock(&RT.lock);
    if (!RT.initialized && cr_exec_init(0, NULL) != 0)
        cr_err("cannot initialise persistent threads");
    pthread_mutex_unlock(&RT.lock);
}

int cr_exec_stack_alloc(size_t size, void **lo)
{
    void *p;
    if (RT.persistent) {
        p = cr_aligned_alloc(CR_PAGE_SIZE, size);
        if (!p) {
            cr_err("cannot allocate a %zu-byte persistent stack", size);
            return -ENOMEM;
        }
    } else {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            cr_perr("mmap(%zu) for a thread stack", size);
            return cr_neg_errno();
        }
    }
    *lo = p;
    return 0;
}

void cr_exec_stack_free(void *lo, size_t size)
{
    if (!lo)
        return;
    if (RT.persistent)
        crfree(lo);
    else if (munmap(lo, size) != 0)
        cr_perr("munmap(%p, %zu)", lo, size);
}

/* ---- the pthread carrying a persistent thread -------------------------------- */

/* The spawner waits on `ready` for the new pthread's verdict on whether it
 * may run on a persistent stack (prepared: cr_region_thread_prepare), so a
 * thread that may not is never started and crthread_create fails cleanly
 * instead of the thread dying at its first write fault. */
struct spawn_arg {
    struct cr_pthread *t;
    int resume;
    sem_t ready;
    int prepared;                /* 0, or the -errno of the preparation */
};

CR_NORETURN static void thread_exit_fallback(void *r)
{
    crthread_exit(r);
    __builtin_unreachable();
}

static void *thread_trampoline(void *p)
{
    struct cr_pthread *t = p;
    crthread_exit(t->start(t->arg));
    return NULL;
}

static void *thread_home(void *p)
{
    struct spawn_arg *sp = p;
    struct spawn_arg a = *sp;
    /* Only stacks in the region need it (the tracker's own fault handling). */
    int rc = RT.persistent ? cr_region_thread_prepare() : 0;
    if (rc)
        cr_errc(rc, "persistent thread %u: cannot prepare its pthread for a persistent stack",
                a.t->id);
    sp->prepared = rc;
    sem_post(&sp->ready);        /* sp belongs to the spawner from here */
    if (rc)
        return NULL;
    self_id = (int)a.t->id;
    if (cr_ctx_save(cr_exec_home()) == 0) {
        if (a.resume == CR_RESUME_ROLLEDBACK) {
            /* Spawned by the rollback collector: not before its round ends. */
            pthread_mutex_lock(&RT.lock);
            while (RT.busy)
                pthread_cond_wait(&RT.cond, &RT.lock);
            pthread_mutex_unlock(&RT.lock);
        }
        if (a.resume)
            cr_ctx_resume(&a.t->ctx, a.resume);
        cr_ctx_start((char *)a.t->stack_lo + a.t->stack_size, thread_trampoline, a.t,
                     thread_exit_fallback);
    }
    /* Back from the persistent stack (crthread_exit). */
    self_id = -1;
    return home_result;
}

/* The pthread's own stack: the thread's home slot when persistent. */
static int home_attr(pthread_attr_t *attr, uint32_t id)
{
    int rc = pthread_attr_init(attr);
    if (rc)
        return -rc;
    if (!RT.persistent)
        return 0;
    void *slot = (void *)(RT.homes + (uintptr_t)id * HOME_SLOT);
    /* The lowest page stays PROT_NONE: a guard against overflow. */
    if (mprotect((char *)slot + CR_PAGE_SIZE, HOME_SLOT - CR_PAGE_SIZE, PROT_READ | PROT_WRITE)) {
        cr_perr("mprotect(%p, %lu) for the stack of thread %u", slot, HOME_SLOT, id);
        pthread_attr_destroy(attr);
        return cr_neg_errno();
    }
    rc = pthread_attr_setstack(attr, (char *)slot + CR_PAGE_SIZE, HOME_SLOT - CR_PAGE_SIZE);
    if (rc) {
        pthread_attr_destroy(attr);
        return -rc;
    }
    return 0;
}

static int exec_spawn(struct cr_pthread *t, int resume);

/* The runtime's allocations (spawn_arg, glibc's thread descriptors) stay
 * out of the persistent heap (transparent mode, interpose.h). */
int cr_exec_spawn(struct cr_pthread *t, int resume)
{
    cr_lib_enter();
    int rc = exec_spawn(t, resume);
    cr_lib_leave();
    return rc;
}

static int exec_spawn(struct cr_pthread *t, int resume)
{
    pthread_attr_t attr;
    struct spawn_arg *a = malloc(sizeof *a);
    if (!a)
        return -ENOMEM;
    a->t = t;
    a->resume = resume;
    a->prepared = 0;
    if (sem_init(&a->ready, 0, 0) != 0) {
        free(a);
        return cr_neg_errno();
    }
    int rc = home_attr(&attr, t->id);
    if (rc) {
        sem_destroy(&a->ready);
        free(a);
        return rc;
    }
    rc = pthread_create(&RT.pt[t->id], &attr, thread_home, a);
    pthread_attr_destroy(&attr);
    if (rc) {
        cr_errc(-rc, "pthread_create for persistent thread %u", t->id);
        sem_destroy(&a->ready);
        free(a);
        return -rc;
    }
    while (sem_wait(&a->ready) != 0 && errno == EINTR)
        ;
    rc = a->prepared;
    sem_destroy(&a->ready);
    free(a);
    if (rc) {                    /* it ended without running anything */
        pthread_join(RT.pt[t->id], NULL);
        return rc;
    }
    RT.has_pt[t->id] = 1;
    return 0;
}

/* ---- public API ---------------------------------------------------------------- */

/* ---- after a rollback (rollback.c) ------------------------------------------------ */

void cr_exec_rollback_continue(struct cr_pthread *self)
{
    /* self_id, not self->id: the control block is the checkpoint's now,
     * zeros for a thread created since */
    int action = RT.rb_action[self_id];
    pthread_mutex_unlock(&RT.lock);
    if (action == CR_RB_RESUME)
        cr_ctx_resume(&self->ctx, CR_RESUME_ROLLEDBACK);
    /* Created after the checkpoint: the thread does not exist there. Its
     * pthread ends (joined by cr_exec_reap_stale). */
    home_result = NULL;
    cr_ctx_resume(&home_ctx, CR_HOME_RETURN);
}

void cr_exec_reap_stale(void)
{
    for (uint32_t i = 0; i < CR_MAX_THREADS; i++) {
        pthread_mutex_lock(&RT.lock);
        int mine = RT.stale[i] == 1 && (int)i != self_id;
        if (mine)
            RT.stale[i] = 2;          /* claimed: no one else joins it */
        pthread_t pt = RT.pt[i];
        pthread_mutex_unlock(&RT.lock);
        if (!mine)
            continue;
        int rc = pthread_join(pt, NULL);
        if (rc)
            cr_errc(-rc, "pthread_join of a thread ended by a rollback (%u)", i);
        pthread_mutex_lock(&RT.lock);
        RT.stale[i] = 0;
        RT.has_pt[i] = 0;
        pthread_mutex_unlock(&RT.lock);
    }
}

CR_EXPORT int crthread_create(crthread_t *thread, void *(*start)(void *), void *arg)
{
    if (!thread || !start)
        return -EINVAL;
    cr_exec_lazy_init();
    struct cr_pthread *self = cr_exec_self();
    if (!self)
        return CR_ESTATE;    /* only persistent threads create persistent threads */
    cr_exec_reap_stale();     /* their slots become usable */
    void *stack;
    int rc = cr_exec_stack_alloc(RT.stack_size, &stack);
    if (rc)
        return rc;
    pthread_mutex_lock(&RT.lock);
    struct cr_pthread *t = NULL;
    for (uint32_t i = 1; i < CR_MAX_THREADS; i++)
        if (RT.root->threads[i].state == CR_T_FREE && !RT.has_pt[i]) {
            t = &RT.root->threads[i];
            t->id = i;
            break;
        }
    if (!t) {
        pthread_mutex_unlock(&RT.lock);
        cr_exec_stack_free(stack, RT.stack_size);
        cr_err("more than %d persistent threads", CR_MAX_THREADS - 1);
        return -EAGAIN;
    }
    t->start = start;
    t->arg = arg;
    t->stack_lo = stack;
    t->stack_size = RT.stack_size;
    t->retval = NULL;
    t->state = CR_T_RUNNING;
    if (t->id >= RT.root->nthreads)
        RT.root->nthreads = t->id + 1;
    rc = cr_exec_spawn(t, 0);
    if (rc) {
        t->state = CR_T_FREE;
        pthread_mutex_unlock(&RT.lock);
        cr_exec_stack_free(stack, RT.stack_size);
        return rc;
    }
    RT.live++;
    *thread = t->id;
    pthread_mutex_unlock(&RT.lock);
    return 0;
}

CR_EXPORT crthread_t crthread_self(void)
{
    struct cr_pthread *t = cr_exec_self();
    return t ? t->id : CRTHREAD_INVALID;
}

/* Leaving the persistent stack of a finished thread: on its home stack,
 * mark it finished and let a rendezvous that was only waiting for this
 * thread go on, then go back to the pthread's start routine. Only once off
 * that stack does the thread stop counting as live: a joiner may free the
 * stack from then on, and a rollback rewrite its pages. */
static void *home_after_exit(void *unused)
{
    struct cr_pthread *t = cr_exec_self();
    pthread_mutex_lock(&RT.lock);
    t->retval = home_result;
    t->state = CR_T_FINISHED;
    RT.live--;
    pthread_cond_broadcast(&RT.cond);
    cr_exec_maybe_checkpoint();
    pthread_mutex_unlock(&RT.lock);
    cr_ctx_resume(&home_ctx, CR_HOME_RETURN);
}

CR_EXPORT void crthread_exit(void *retval)
{
    struct cr_pthread *t = cr_exec_self();
    if (!t) {
        cr_err("crthread_exit called by a thread that is not a persistent thread");
        pthread_exit(retval);
    }
    if (t->id == 0)
        exit(0);    /* main: ends the program like returning from main */
    home_result = retval;
    cr_exec_go_home(home_after_exit, NULL);
}

struct join_arg {
    struct cr_pthread *target;
    void *retval;
    void *stack_lo;
    size_t stack_size;
};

static int join_ready(struct cr_pthread *self, void *p)
{
    return ((struct join_arg *)p)->target->state == CR_T_FINISHED;
}

static void join_take(struct cr_pthread *self, void *p)
{
    struct join_arg *j = p;
    /* Taken under the lock: once FREE, the block may be reused at once. */
    j->retval = j->target->retval;
    j->stack_lo = j->target->stack_lo;
    j->stack_size = j->target->stack_size;
    j->target->stack_lo = NULL;
    j->target->state = CR_T_FREE;
}

CR_EXPORT int crthread_join(crthread_t thread, void **retval)
{
    cr_exec_lazy_init();
    struct cr_pthread *self = cr_exec_self();
    if (!self)
        return CR_ESTATE;
    if (thread == 0 || thread >= CR_MAX_THREADS)
        return -ESRCH;
    if (thread == self->id)
        return -EDEADLK;
    struct cr_pthread *t = &RT.root->threads[thread];
    pthread_mutex_lock(&RT.lock);
    int state = t->state;
    pthread_mutex_unlock(&RT.lock);
    if (state == CR_T_FREE)
        return -ESRCH;
    struct join_arg j = { .target = t };
    struct cr_wait w = { join_ready, join_take, &j };
    cr_exec_block(self, &w);
    /* The slot is free now; the pthread that carried the thread (if it ran
     * in this process) is at most finishing its home routine. */
    cr_exec_reap_stale();     /* a pthread ended by a rollback may hold the slot */
    pthread_mutex_lock(&RT.lock);
    int has_pt = RT.has_pt[thread] && !RT.stale[thread];
    pthread_t pt = RT.pt[thread];
    pthread_mutex_unlock(&RT.lock);
    if (has_pt) {
        int rc = pthread_join(pt, NULL);
        if (rc)
            cr_errc(-rc, "pthread_join of persistent thread %u", thread);
        pthread_mutex_lock(&RT.lock);
        RT.has_pt[thread] = 0;
        pthread_mutex_unlock(&RT.lock);
    }
    cr_exec_stack_free(j.stack_lo, j.stack_size);
    if (retval)
        *retval = j.retval;
    return 0;
}
