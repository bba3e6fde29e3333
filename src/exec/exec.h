/*
 * exec.h - persistent execution inside one process: persistent main and
 * threads, the checkpoint rendezvous, and the glue between them and the
 * region/store. Internal to the runtime (and to mpi-wrap, which drives
 * restart and checkpoints through the functions at the end).
 *
 * Every persistent thread (main is thread 0) runs on a stack allocated from
 * the persistent heap. It also has a "home": the stack of the real pthread
 * (or, for main, the process's original stack) that carries it. Home stacks
 * are never persistent. Whenever a persistent thread must stop at a
 * consistent point - arriving at cr_checkpoint(), blocking in a runtime
 * lock, condition or join - it saves its context into its persistent
 * control block and continues *on its home stack*, so its persistent frames
 * stay frozen exactly as saved until it resumes that context. The last
 * thread to stop runs the checkpoint, also on its home stack.
 *
 * Resume values passed through cr_ctx_resume():
 *   CR_RESUME_RESTARTED  the context is resumed in a new process (restart)
 *   CR_RESUME_DONE       the wait/checkpoint finished normally
 *   CR_RESUME_ROLLEDBACK the context is resumed by cr_rollback() (rollback.c)
 *   negative             the checkpoint failed with that status
 */
#ifndef CR_EXEC_H
#define CR_EXEC_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cr.h"
#include "cr_context.h"
#include "common/compiler.h"

struct cr_coll;
struct cr_store;
struct cr_thread_record;

#define CR_MAX_THREADS      256
#define CR_RESUME_RESTARTED 1
#define CR_RESUME_DONE      2
#define CR_HOME_RETURN      3      /* a thread left its persistent stack */
#define CR_RESUME_ROLLEDBACK 4

/* Thread states; the values of RUNNING/FINISHED match enum cr_thread_state. */
enum { CR_T_FREE = 0, CR_T_RUNNING = 1, CR_T_FINISHED = 2 };

/* A persistent thread's control block (lives in the region). */
struct cr_pthread {
    uint32_t state;
    uint32_t id;
    void *(*start)(void *);
    void *arg;
    void *stack_lo;              /* persistent stack [stack_lo, stack_lo+stack_size) */
    size_t stack_size;
    void *retval;                /* valid once CR_T_FINISHED                          */
    uint64_t ticket;             /* condition-variable wait ticket                    */
    struct cr_ctx ctx;           /* saved at every stop                               */
};

#define CR_EXEC_MAGIC   0x4345584543524d50ULL   /* "PMRCEXEC" */
#define CR_EXEC_VERSION 1

/* The runtime's persistent root (region root slot CR_ROOT_EXEC). */
struct cr_exec_root {
    uint64_t magic;
    uint32_t version;
    uint32_t nthreads;           /* high-water mark of ids handed out */
    int (*main)(int, char **, char **);
    int argc;
    char **argv, **envp;         /* copies in the region */
    struct cr_pthread threads[CR_MAX_THREADS];
};

/* The checkpoint callback run by the last thread to stop (see rendezvous.c).
 * Returns 0 or a negative status that every arrived thread receives. */
typedef int (*cr_collector_fn)(struct cr_exec_root *root, void *arg);

/* Process-local runtime state (never persistent). */
struct cr_exec_rt {
    pthread_mutex_t lock;        /* protects everything below and all thread states */
    pthread_cond_t cond;         /* broadcast on every state change                  */
    int initialized;
    int persistent;              /* region + heap in use: stacks are persistent      */
    struct cr_exec_root *root;
    int live;                    /* threads in CR_T_RUNNING                          */
    int stopped;                 /* of those, arrived or blocked (context saved)     */
    int arrived;                 /* of those, waiting in cr_checkpoint               */
    int busy;                    /* a checkpoint is being taken                      */
    uint64_t gen;                /* completed checkpoint rounds                      */
    int result;                  /* status of the last round                         */
    cr_collector_fn collector;   /* NULL: cr_checkpoint is a no-op (disabled)        */
    struct cr_pthread *collector_thread; /* this round's collector must run on it */
    void *collector_arg;
    size_t stack_size;           /* persistent stack size for new threads            */
    uintptr_t homes;             /* fixed area of the pthreads' own stacks           */
    pthread_t pt[CR_MAX_THREADS];
    uint8_t has_pt[CR_MAX_THREADS];
    /* rollback.c: a rollback was asked for this round; rollbacks done (a
     * stopped thread that sees it change acts on rb_action); what each
     * parked pthread does then; pthreads leaving after a rollback, not yet
     * joined (1; 2 while being joined) */
    int rb_req;
    uint64_t rb_gen;
    uint8_t rb_action[CR_MAX_THREADS];
    uint8_t stale[CR_MAX_THREADS];
};
enum { CR_RB_RESUME = 1, CR_RB_EXIT = 2 };
extern struct cr_exec_rt cr_exec_rt_;

/* ---- thread.c -------------------------------------------------------------- */
/* Set up the runtime. persistent: take memory from the heap and place the
 * pthreads' stacks at fixed addresses. root: an existing (restored) root, or
 * NULL to create one. Idempotent for the non-persistent case. */
CR_MUST_CHECK int cr_exec_init(int persistent, struct cr_exec_root *root);
/* Non-persistent initialisation on first use by a program whose main was not
 * started by cr_exec_main (unit tests, CRMPI_DISABLE). */
void cr_exec_lazy_init(void);
/* The calling thread's control block, or NULL for a non-persistent thread. */
struct cr_pthread *cr_exec_self(void);
/* Mark the calling pthread as persistent thread `id` with home context `home`. */
void cr_exec_set_self(uint32_t id);
/* Run fn(arg) on the calling thread's home stack (never returns; fn must end
 * by resuming a context). Without a home (non-persistent main), fn runs on
 * the current stack, which is not persistent then. */
CR_NORETURN void cr_exec_go_home(void *(*fn)(void *), void *arg);
/* Home context of the calling pthread: saved by whoever switches it onto a
 * persistent stack; resumed with CR_HOME_RETURN to leave that stack. */
struct cr_ctx *cr_exec_home(void);
void cr_exec_set_home_result(void *r);
void *cr_exec_home_result(void);
/* Allocate / free a persistent stack (heap, or mmap when not persistent). */
CR_MUST_CHECK int cr_exec_stack_alloc(size_t size, void **lo);
void cr_exec_stack_free(void *lo, size_t size);
/* Start a pthread for persistent thread t; resume: 0 runs t->start on a
 * fresh persistent stack, else continue t->ctx with that resume value
 * (CR_RESUME_RESTARTED, or CR_RESUME_ROLLEDBACK: the pthread first waits
 * for the rollback round to end). */
CR_MUST_CHECK int cr_exec_spawn(struct cr_pthread *t, int resume);

/* Join the pthreads that leave after a rollback (not the caller's own);
 * call without the runtime lock. */
void cr_exec_reap_stale(void);
/* In a stopped thread's home routine, lock held, once RT.rb_gen changed:
 * unlock and continue as the rollback decided (resume the checkpoint's
 * context or end the pthread). */
CR_NORETURN void cr_exec_rollback_continue(struct cr_pthread *self);

/* ---- sync.c ---------------------------------------------------------------- */
/* A wait the calling persistent thread may block in while counting as
 * stopped: ready() and take() run under cr_exec_rt_.lock. */
struct cr_wait {
    int (*ready)(struct cr_pthread *self, void *arg);
    void (*take)(struct cr_pthread *self, void *arg);
    void *arg;
};
/* Block until w->ready(), then w->take(); context saved meanwhile. */
void cr_exec_block(struct cr_pthread *self, const struct cr_wait *w);

/* ---- rendezvous.c ---------------------------------------------------------- */
/* With the lock held: if every live thread is stopped and at least one has
 * arrived, take the checkpoint now (the caller is on its home stack). */
void cr_exec_maybe_checkpoint(void);
/* cr_checkpoint(), but the collector of this round runs on the calling
 * thread, whichever thread stops last: the MPI layer needs it, because
 * writing an epoch calls MPI and MPI may only be called from the thread
 * the application's thread level allows (crmpi_checkpoint's caller). */
int cr_exec_checkpoint_here(void);
/* cr_rollback()'s arrival (rollback.c); returns only on failure. */
int cr_exec_rollback_arrive(void);
/* Replace the collector (tests, and the engine at start). */
void cr_exec_set_collector(cr_collector_fn fn, void *arg);

/* ---- engine.c -------------------------------------------------------------- */
/* The checkpoint collector: dirty extents + thread contexts -> one epoch. */
int cr_engine_checkpoint(struct cr_exec_root *root, void *arg);
/* Collective used for epochs (default cr_coll_self()). */
void cr_exec_set_coll(struct cr_coll *coll);
struct cr_coll *cr_exec_coll(void);
/* Restore the newest valid checkpoint into the open region. Returns 0 with
 * *recs (malloc'd, *n entries) on success, CR_ENOCKPT when there is none,
 * or the refusal status (already reported). */
CR_MUST_CHECK int cr_engine_restore(struct cr_thread_record **recs, size_t *n);
/* Whether a checkpoint directory says "the last run finished normally". */
int cr_engine_dir_finished(void);
/* Called at a normal exit (status 0): record that the next start is fresh. */
void cr_engine_mark_finished(void);

/* At exit of the process that started the program: commit a pending
 * asynchronous epoch if the collective allows it here (a single process;
 * an MPI job commits in MPI_Finalize), then stop the writer thread. */
void cr_engine_at_exit(void);

/* For rollback.c, in the rollback collector (every persistent thread
 * stopped): wait for a lazy restore, commit the pending epoch, and give the
 * store and the epoch the region was last collected at (the last
 * checkpoint). *untracked: lazily restored and no epoch since, so the
 * tracker does not know every page written since (the pages the lazy
 * restore filled are not write-protected until the next collection).
 * CR_ENOCKPT when there is none or it failed. */
CR_MUST_CHECK int cr_engine_rollback_base(struct cr_store **st, uint64_t *epoch,
                                          int *untracked);
/* The rollback collected the tracker but could not restore: the written
 * pages are known to no one, the next epoch must be full and no rollback
 * is possible before it. */
void cr_engine_rollback_lost(void);
/* A rollback finished: its figures for cr_checkpoint_stats. */
void cr_engine_rollback_done(double seconds, uint64_t bytes, uint64_t pages);

/* ---- rollback.c ------------------------------------------------------------ */
/* The collector of a rollback round (rendezvous.c runs it instead of the
 * checkpoint collector when RT.rb_req is set), runtime lock held. 0: done,
 * RT's thread accounting reset and RT.rb_gen advanced; else nothing changed. */
int cr_rollback_collect(struct cr_exec_root *root);

/* ---- staging.c ------------------------------------------------------------- */
struct cr_extent;
/* A warm buffer of at least `bytes` bytes outside the region, kept for the
 * next checkpoint; NULL when more than CRMPI_STAGING_MAX or unavailable
 * (the checkpoint is then written synchronously). */
void *cr_staging_get(size_t bytes);
size_t cr_staging_size(void);
/* In a fork() child: the buffer was not inherited. */
void cr_staging_forget(void);
/* The re-arm owed by a region snapshot (cr_region_rearm), judged against
 * what the epoch saves of the snapshot's extents ext[0..n): with data (their
 * non-zero bytes back to back, the staged copy) a page is unchanged when its
 * contents equal its copy, so this may run while the application writes
 * again; with data NULL (the epoch is then written from the region in
 * place, after this call) a page is unchanged when the snapshot reported it.
 * Changed pages are reported by the next collection. */
CR_MUST_CHECK int cr_staging_rearm(const struct cr_extent *ext, size_t n, const uint8_t *data);

/* ---- copy_team.c ------------------------------------------------------------ */
/* Copy the non-zero extents ext[0..n) back to back into dst, in the
 * blocking phase, with the team of CRMPI_STAGE_THREADS threads (the caller
 * and idle helpers; the caller alone when the rank has one PU). dst is
 * ready for another thread to read on return. */
void cr_copy_team_stage(uint8_t *dst, const struct cr_extent *ext, size_t n);
/* The team's size, the caller included (decided on first use). */
unsigned cr_copy_team_size(void);
/* Join the helper threads (at exit). */
void cr_copy_team_stop(void);

/* ---- writer.c -------------------------------------------------------------- */
/* One job for the background writer: publish the index of the previous
 * epoch (pub, may be NULL; its failure fails the job), then put every
 * non-zero extent of ext[] from data (their bytes back to back, in order),
 * then finish. */
struct cr_epoch;
struct cr_extent;
struct cr_index_pub;
struct cr_store;
struct cr_write_job {
    int rearm;                   /* first cr_staging_rearm(dirty, ndirty, data) */
    struct cr_index_pub *pub;
    struct cr_epoch *ep;
    const struct cr_extent *ext; /* the epoch's extents                          */
    size_t n;
    const uint8_t *data;         /* staged bytes of the written extents          */
    const struct cr_extent *dirty; /* the written extents: ext, unless composed  */
    size_t ndirty;
    /* A full epoch composed from the chain of committed epoch `parent` in st
     * and the staged pages (compose.c); st NULL otherwise. */
    struct cr_store *st;
    uint64_t parent;
};
/* Hand a job over (starting the thread on first use). 0, CR_ESTATE (a job
 * is still running), or -errno when the thread cannot be started. The job
 * is held until cr_writer_release() (or a wait): the checkpoint call
 * releases it as it returns to the application. */
CR_MUST_CHECK int cr_writer_submit(const struct cr_write_job *job);
/* Let a held job run (no effect when none is held). */
void cr_writer_release(void);
/* Where a job's time went (each part apart: they are different work). */
struct cr_writer_times {
    double write;                /* the epoch's puts and finish (tables, fsync) */
    double rearm;                /* re-arming dirty-page tracking first          */
    double index;                /* publishing the previous epoch's index        */
};
/* Wait for the job: its put/finish status (or the index publication's);
 * *t (may be NULL) its times, zero when no job ran. */
int cr_writer_wait(struct cr_writer_times *t);
/* Whether a job is still being written. */
int cr_writer_busy(void);
/* Run fn(arg) on the writer thread once its current job is done (before
 * cr_writer_wait returns), or here and now when no job is pending: small
 * bookkeeping writes that must not wait inside a checkpoint call. */
void cr_writer_then(void (*fn)(void *), void *arg);
/* Wait for the job, then end and join the thread. */
void cr_writer_stop(void);

/* ---- compose.c: full epochs composed from the previous chain ---------------- */
/* The extents of a composed full epoch: the union of the populated extents
 * pop and the written data extents of dirty (both sorted, disjoint), cut
 * at CR_EXTENT_MAX, into *out (capacity *cap, grown with realloc). */
CR_MUST_CHECK int cr_compose_plan(const struct cr_extent *pop, size_t np,
                                  const struct cr_extent *dirty, size_t nd,
                                  struct cr_extent **out, size_t *nout, size_t *cap);
/* Put every extent of job j's epoch (j->st set): built from the chain of
 * j->parent overlaid with j->dirty's staged bytes. Any one thread; no HDF5,
 * no MPI. Does not finish the epoch. */
CR_MUST_CHECK int cr_compose_put(const struct cr_write_job *j);

/* ---- lazy.c ------------------------------------------------------------------ */
struct cr_restore;
/* Lazy restore (see lazy.c): takes ownership of r on success (0); the
 * program may resume at once. -ENOTSUP: the tracker cannot serve missing
 * pages (the caller restores eagerly; r is still the caller's). */
CR_MUST_CHECK int cr_lazy_start(struct cr_restore *r, size_t nlinks,
                                const struct cr_thread_record *rec, size_t nrec);
/* If a lazy restore is under way: wait until every page is in, end missing
 * mode, stop its threads. Call with every persistent thread stopped (the
 * checkpoint collector). *full_seconds: from its start to the last page. */
CR_MUST_CHECK int cr_lazy_wait(double *full_seconds);
/* The "restore-eager" marker a lazy restore leaves when it found corrupt
 * data: the next start restores eagerly; removed by its first commit. */
int cr_lazy_marker_present(void);
void cr_lazy_marker_remove(void);

/* ---- start.c --------------------------------------------------------------- */
/* Run main as a persistent program (see start.c). flags: CR_EXEC_DEFER_RESTORE
 * leaves the restore to a later cr_exec_restore() call (libcrmpi: from
 * MPI_Init, once the collective exists). */
#define CR_EXEC_DEFER_RESTORE 0x1u
int cr_exec_main(int (*main)(int, char **, char **), int argc, char **argv,
                 char **envp, unsigned flags);
/* In libraries that contain the __libc_start_main hook (start_hook.c): make
 * it pass CR_EXEC_DEFER_RESTORE. libcrmpi calls this from a constructor
 * (shared-library constructors run before the program's _start). */
void cr_exec_defer_restore(void);
/* From the main persistent thread: if the checkpoint directory holds a
 * committed checkpoint, restore it (with coll for the store) and continue
 * there - this call does not return then, cr_checkpoint() returns
 * CR_RESTARTED in the resumed code. Returns CR_ENOCKPT when there is nothing
 * to restore (continue fresh), or a refusal status after which the caller
 * must not continue (the region may be partly overwritten). */
CR_MUST_CHECK int cr_exec_restore(struct cr_coll *coll);
/* Whether this process is a rank of an MPI job (libcrmpi: restore deferred
 * to MPI_Init, or epochs written through an MPI collective). */
int cr_exec_in_mpi_job(void);

#endif
