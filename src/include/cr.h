/*
 * cr.h - public API of libcr, the crmpi runtime for one process.
 *
 * A program linked with -lcr keeps its state in a persistent region: memory
 * from crmalloc() and the stacks of main and of persistent threads. Calling
 * cr_checkpoint() (every persistent thread calls it: it is a rendezvous)
 * saves the pages written since the previous checkpoint and every thread's
 * context into the checkpoint directory. When the program is killed and
 * started again with the same command, it resumes from its last committed
 * checkpoint: cr_checkpoint() returns CR_RESTARTED there.
 *
 * Configuration is by environment variables (CRMPI_DIR, CRMPI_LOG, ...):
 * see README.md, or run `crmpi-ckpt env`.
 *
 * Error convention: functions returning int return 0 (or a documented
 * non-negative value) on success and a negative code on failure: -errno for
 * system errors (-ENOMEM, -EIO, ...) and the CR_E* codes below for
 * crmpi's own. cr_strerror() names any of them. errno is not relied on.
 */
#ifndef CR_H
#define CR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CR_API __attribute__((visibility("default")))
#define CR_WUR __attribute__((warn_unused_result))
#define CR_MALLOC_ATTR __attribute__((malloc))
#define CR_ALLOC_SIZE(...) __attribute__((alloc_size(__VA_ARGS__)))
#else
#define CR_API
#define CR_WUR
#define CR_MALLOC_ATTR
#define CR_ALLOC_SIZE(...)
#endif

/* ---- status codes -------------------------------------------------------- */

#define CR_CHECKPOINTED 0   /* cr_checkpoint(): a checkpoint was taken       */
#define CR_RESTARTED    1   /* cr_checkpoint(): resumed from a checkpoint    */
#define CR_ROLLEDBACK   2   /* cr_checkpoint(): cr_rollback() came back here */

/* crmpi's own error codes, below -256 so they never clash with -errno. */
enum cr_error {
    CR_ECORRUPT    = -257, /* checkpoint data fails a checksum or is malformed  */
    CR_EFORMAT     = -258, /* not a crmpi checkpoint, or another format version */
    CR_EMISMATCH   = -259, /* written by another executable or library build    */
    CR_ENOCKPT     = -260, /* no committed checkpoint in the directory          */
    CR_ERANKS      = -261, /* written by a job with another number of ranks     */
    CR_ECOLLISION  = -262, /* the region's fixed address is already mapped      */
    CR_ESTATE      = -263, /* call not valid in the current state (API misuse)  */
    CR_EUNSUPPORTED= -264, /* feature cannot be checkpointed                    */
    CR_EFOREIGN    = -265, /* checkpoint belongs to another job                 */
    CR_EPERM_TRUST = -266, /* checkpoint files not owned by us or writable by others */
    CR_EINJECTED   = -267, /* failure injected by CRMPI_FAULT (tests)           */
    CR_EREMOTE     = -268, /* the operation failed on another rank              */
};

/* Human-readable text for any status code (0, -errno or CR_E*). Never NULL. */
CR_API const char *cr_strerror(int code);

/* ---- persistent heap ----------------------------------------------------- */
/* Same semantics as the C library's malloc family; memory lives in the
 * persistent region and is restored with it. Exhaustion: NULL, errno=ENOMEM. */
CR_API void *crmalloc(size_t size) CR_MALLOC_ATTR CR_ALLOC_SIZE(1);
CR_API void *crcalloc(size_t nmemb, size_t size) CR_MALLOC_ATTR CR_ALLOC_SIZE(1, 2);
CR_API void *crrealloc(void *ptr, size_t size) CR_ALLOC_SIZE(2);
CR_API void  crfree(void *ptr);
CR_API int   cr_posix_memalign(void **memptr, size_t alignment, size_t size);
CR_API void *cr_aligned_alloc(size_t alignment, size_t size) CR_MALLOC_ATTR CR_ALLOC_SIZE(2);
CR_API size_t cr_malloc_usable_size(void *ptr);


/* ---- persistent threads and checkpoints ---------------------------------- */
/* A program linked with -lcr runs main() on a persistent stack (the library
 * interposes __libc_start_main; the program needs no change). Threads made
 * with crthread_create() are persistent too. Restored: crmalloc() memory,
 * the persistent stacks and, in transparent mode (the default;
 * CRMPI_INTERPOSE=0 turns it off), malloc() memory of persistent threads,
 * the executable's globals and its open regular files. Programs that never
 * call cr_checkpoint() behave as without the library. */

/* Identifies a persistent thread; main is 0. */
typedef uint32_t crthread_t;
#define CRTHREAD_INVALID ((crthread_t)-1)

/* Like pthread_create: run start(arg) on a new persistent thread. Returns 0,
 * -EINVAL (NULL argument), -EAGAIN (more than 255 threads alive or not yet
 * joined), -ENOMEM (no room for its stack in the region), CR_ESTATE (the
 * caller is not itself a persistent thread). */
CR_API int crthread_create(crthread_t *thread, void *(*start)(void *), void *arg) CR_WUR;
/* Wait for a persistent thread to finish and collect its return value (also
 * for a thread that finished before a restart). Waiting counts as having
 * arrived at a checkpoint rendezvous. Returns 0, -ESRCH (no such thread, or
 * joined already), -EDEADLK (joining oneself), CR_ESTATE (not called from a
 * persistent thread). */
CR_API int crthread_join(crthread_t thread, void **retval);
/* End the calling persistent thread with retval (in main: exit(0)). */
CR_API void crthread_exit(void *retval) __attribute__((noreturn));
/* The calling thread's id, or CRTHREAD_INVALID for a thread that is not
 * persistent (e.g. made by pthread_create). */
CR_API crthread_t crthread_self(void);

/* Take a checkpoint. Every live persistent thread must call it (it is a
 * rendezvous; threads waiting in crthread_join, cr_mutex_lock or
 * cr_cond_wait count as arrived); the last one to arrive writes the pages
 * written since the previous checkpoint and every thread's context to the
 * checkpoint directory (CRMPI_DIR), then all continue.
 * Returns CR_CHECKPOINTED (0) after a checkpoint was committed,
 * CR_RESTARTED (1) when the program was restarted from this checkpoint,
 * or a negative status when the checkpoint failed (the previous one stays
 * valid and the program can go on): -errno, CR_E*. CR_ESTATE when the
 * caller is not a persistent thread. With CRMPI_DISABLE=1 it does nothing
 * and returns CR_CHECKPOINTED. */
CR_API int cr_checkpoint(void) CR_WUR;

/* Asynchronous checkpoints (the default, CRMPI_CKPT_MODE=async): when
 * cr_checkpoint() returns CR_CHECKPOINTED, the pages and contexts have been
 * copied to a staging buffer and a background thread is writing them; the
 * checkpoint is committed - becomes the restart point - at the next
 * cr_checkpoint(), at cr_checkpoint_wait() or at exit(). Until then a crash
 * restarts from the previous committed one. A failed background write is
 * reported by the call that commits (the next checkpoint then is full).
 * With CRMPI_CKPT_MODE=sync, cr_checkpoint() returns after the commit.
 *
 * cr_checkpoint_wait: wait for the pending checkpoint's writes and commit
 * it. Returns 0 (committed, or nothing pending) or its error: -errno,
 * CR_E* (the previous committed checkpoint stays valid). */
CR_API int cr_checkpoint_wait(void) CR_WUR;

/* In-memory rollback (speculative execution): return the whole process to
 * its last checkpoint without restarting it. Every live persistent thread
 * must arrive (as for cr_checkpoint(); threads waiting in crthread_join,
 * cr_mutex_lock or cr_cond_wait count as arrived). Then the pages written or
 * discarded since that checkpoint get their contents at the checkpoint back
 * (read from the checkpoint directory - the cost grows with the pages
 * written since, not with the heap), and every thread continues from where
 * it was at the checkpoint: the cr_checkpoint() call that took it returns
 * CR_ROLLEDBACK; threads that were waiting wait again; threads created
 * since end, threads finished since run again. A pending asynchronous
 * checkpoint is committed first. Restored: crmalloc()/malloc() memory,
 * persistent stacks, the executable's globals (transparent mode). Not
 * undone: output already written, other processes, memory outside the
 * region.
 * On success it does not return. Errors (nothing was changed): CR_ESTATE
 * (not a persistent thread, or persistence is off), CR_ENOCKPT (no
 * checkpoint committed in this run or restored, or the last one failed),
 * CR_EUNSUPPORTED (an MPI job - a rank cannot roll back alone -, or the
 * application has files open through transparent mode), -errno / CR_E*
 * reading the checkpoint (the next checkpoint is then full). */
CR_API int cr_rollback(void) CR_WUR;

/* Figures about the checkpoints this process took (for benchmarks and
 * monitoring). size: sizeof(struct cr_checkpoint_stats) as compiled by the
 * caller, so the struct can grow. Returns 0 or -EINVAL. The "last_" fields
 * other than last_epoch, last_write_seconds and last_commit_seconds
 * describe the last cr_checkpoint() call; the others the last commit. */
struct cr_checkpoint_stats {
    uint64_t checkpoints;     /* committed by this process              */
    uint64_t failures;        /* rounds or commits that failed           */
    uint64_t last_epoch;      /* number of the last committed epoch      */
    uint64_t last_bytes;      /* page bytes of the last one              */
    uint64_t last_extents;
    int      last_full;       /* the last one was a full checkpoint      */
    double   last_seconds;    /* time the threads were stopped for it    */
    uint64_t total_bytes;
    double   total_seconds;   /* sum of last_seconds                     */
    /* since asynchronous checkpoints */
    int      last_async;      /* its bytes were staged for the writer    */
    double   last_stage_seconds;  /* copying to the staging buffer       */
    double   last_begin_seconds;  /* creating the epoch file (collective) */
    double   last_write_seconds;  /* put + fsync of the last committed one */
    double   last_commit_seconds; /* waiting for the writer + commit     */
    double   total_write_seconds;
    int      writing;         /* the writer is still busy with the pending one */
    double   restore_seconds; /* restart: time restoring before the program
                                 resumed (0 if this process did not restart) */
    double   restore_full_seconds; /* restart: until every page was back (lazy
                                 restore: known once the prefetch finished) */
    /* since cr_rollback */
    uint64_t rollbacks;       /* done by this process                    */
    double   last_rollback_seconds; /* threads stopped for the last one   */
    uint64_t last_rollback_pages;   /* pages written since the checkpoint */
    uint64_t last_rollback_bytes;   /* checkpoint bytes read back for them */
    /* since deferred re-arming */
    double   last_rearm_seconds; /* the writer re-arming dirty-page tracking
                                  for the last committed one (not part of
                                  last_write_seconds)                     */
    /* since the index publication was timed apart */
    double   last_index_seconds; /* publishing the previous epoch's index
                                  (its commit record: temp file, fsync,
                                  rename, fsync of the directory), done
                                  before the last committed one was written
                                  (not part of last_write_seconds)        */
    /* since the scan was timed apart */
    double   last_collect_seconds; /* finding the pages written since the
                                  previous checkpoint (PAGEMAP_SCAN), part
                                  of last_seconds                         */
};
CR_API int cr_checkpoint_stats(struct cr_checkpoint_stats *out, size_t size);

/* A mutex and a condition variable for persistent threads. Waiting in them
 * counts as having arrived at a checkpoint rendezvous. To survive a restart
 * they must live in persistent memory (crmalloc or a persistent stack); a
 * zero-filled object is a valid unlocked mutex / empty condition. Only
 * persistent threads may use them (CR_ESTATE otherwise). No error checking
 * beyond what is listed: not recursive. */
typedef struct cr_mutex {
    uint32_t owner;           /* thread id + 1, 0 when unlocked */
    uint32_t reserved_;
} cr_mutex_t;
typedef struct cr_cond {
    uint64_t head, tail;      /* wake-up tickets */
} cr_cond_t;
#define CR_MUTEX_INITIALIZER { 0, 0 }
#define CR_COND_INITIALIZER  { 0, 0 }

CR_API int cr_mutex_init(cr_mutex_t *m);            /* 0, -EINVAL                */
CR_API int cr_mutex_destroy(cr_mutex_t *m);         /* 0, -EBUSY (locked)        */
CR_API int cr_mutex_lock(cr_mutex_t *m);            /* 0, -EDEADLK (own it)      */
CR_API int cr_mutex_trylock(cr_mutex_t *m);         /* 0, -EBUSY                 */
CR_API int cr_mutex_unlock(cr_mutex_t *m);          /* 0, -EPERM (not the owner) */
CR_API int cr_cond_init(cr_cond_t *c);
CR_API int cr_cond_destroy(cr_cond_t *c);           /* 0, -EBUSY (waiters)       */
/* Unlock m, wait for a signal, lock m again. -EPERM if m is not owned. */
CR_API int cr_cond_wait(cr_cond_t *c, cr_mutex_t *m);
CR_API int cr_cond_signal(cr_cond_t *c);            /* wakes one waiter          */
CR_API int cr_cond_broadcast(cr_cond_t *c);         /* wakes all waiters         */

#ifdef __cplusplus
}
#endif
#endif /* CR_H */
