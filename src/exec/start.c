/*
 * start.c - the persistent main: run the program's main() on a stack in the
 * region, fresh or resumed from the last checkpoint.
 *
 * cr_exec_main() is called in place of main by the __libc_start_main hook
 * (start_hook.c). In order:
 *  1. CRMPI_DISABLE=1: open the region and a fresh heap (crmalloc works),
 *     call main directly; cr_checkpoint() does nothing.
 *  2. ASLR: frames on persistent stacks hold return addresses into the
 *     executable and its libraries, so every run must load them at the same
 *     addresses. If randomisation is on, set ADDR_NO_RANDOMIZE and re-execute
 *     the program once (CRMPI_REEXEC guards against a loop).
 *  3. Open the region; reserve the pthreads' home stacks.
 *  4. Restore the last committed checkpoint if there is one (engine.c) and
 *     resume every thread that was running, main last; or else copy argv and
 *     envp into the region, allocate main's persistent stack and start main
 *     there. (With CR_EXEC_DEFER_RESTORE the restore waits for a later
 *     cr_exec_restore(), which libcrmpi calls from MPI_Init.)
 *  5. When main returns, leave its stack through the home context kept in a
 *     thread-local (never from the persistent stack) and return its value.
 * A normal exit with status 0 marks the checkpoint directory finished
 * (engine.c), so the next start is fresh.
 *
 * If the region cannot be set up and there is no checkpoint to restore, the
 * program runs without persistence (cr_checkpoint() then fails with the
 * reason); a checkpoint that cannot be restored stops the program with a
 * message naming the directory, never a silent fresh start.
 */
#include "exec/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <unistd.h>

#include "common/config.h"
#include "common/errors.h"
#include "common/fault.h"
#include "common/log.h"
#include "heap/heap.h"
#include "interpose/interpose.h"
#include "region/region.h"
#include "store/store.h"

#define RT cr_exec_rt_
#define REEXEC_ENV "CRMPI_REEXEC"

static pid_t start_pid;
static unsigned main_flags;      /* cr_exec_main's flags (DEFER_RESTORE: libcrmpi) */
static int init_failure;         /* why cr_checkpoint() cannot work, if it cannot */

static int aslr_enabled(void)
{
    int pers = personality(0xffffffff);
    if (pers == -1 || (pers & ADDR_NO_RANDOMIZE))
        return 0;
    char c = '1';
    int fd = open("/proc/sys/kernel/randomize_va_space", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &c, 1) != 1)
            c = '1';
        close(fd);
    }
    return c != '0';
}

/* Re-execute with ASLR off; returns only if that is not needed or failed. */
static void reexec_without_aslr(char **argv)
{
    if (!aslr_enabled()) {
        unsetenv(REEXEC_ENV);
        return;
    }
    if (getenv(REEXEC_ENV)) {
        cr_err("address space randomisation is still on after re-executing; "
               "a restart may fail to resume (set kernel.randomize_va_space=0)");
        return;
    }
    int pers = personality(0xffffffff);
    if (personality((unsigned long)pers | ADDR_NO_RANDOMIZE) == -1) {
        cr_perr("personality(ADDR_NO_RANDOMIZE)");
        return;
    }
    /* The real path, not /proc/self/exe, so the process keeps its name. */
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        cr_perr("readlink(/proc/self/exe)");
        strcpy(exe, "/proc/self/exe");
    } else {
        exe[len] = 0;
    }
    setenv(REEXEC_ENV, "1", 1);
    cr_info("re-executing %s with address space randomisation disabled", exe);
    extern char **environ;
    execve(exe, argv, environ);
    cr_perr("execve(%s) to disable address space randomisation", exe);
    unsetenv(REEXEC_ENV);
    (void)personality((unsigned long)pers);
}

static int open_region(void)
{
    const struct cr_config *cfg = cr_config();
    struct cr_region_params p = { cfg->region_base, cfg->region_max, cfg->tracker };
    int rc = cr_region_open(&p);
    if (rc)
        cr_errc(rc, "cannot open the persistent region at %#lx (%zu bytes)",
                (unsigned long)cfg->region_base, cfg->region_max);
    return rc;
}

/* One block in the region: the pointer array, then the strings. */
static char **copy_strings(char **v, int *count)
{
    size_t n = 0, bytes = 0;
    while (v && v[n])
        bytes += strlen(v[n++]) + 1;
    char **copy = crmalloc((n + 1) * sizeof *copy + bytes);
    if (!copy)
        return NULL;
    char *s = (char *)(copy + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(v[i]) + 1;
        memcpy(s, v[i], l);
        copy[i] = s;
        s += l;
    }
    copy[n] = NULL;
    if (count)
        *count = (int)n;
    return copy;
}

/* ---- leaving and entering main's persistent stack ----------------------------- */

CR_NORETURN static void leave_main(void *result)
{
    cr_exec_set_home_result(result);
    cr_ctx_resume(cr_exec_home(), CR_HOME_RETURN);
}

static void *main_trampoline(void *p)
{
    struct cr_exec_root *root = p;
    int rc = root->main(root->argc, root->argv, root->envp);
    leave_main((void *)(intptr_t)rc);
}

static void on_normal_exit(int status, void *unused)
{
    /* Only the process that started the program (not a forked child): the
     * pending asynchronous checkpoint is committed and the writer joined;
     * only after a successful end is the run marked finished (after an
     * error exit the checkpoint stays usable). */
    if (getpid() != start_pid || !RT.persistent)
        return;
    cr_engine_at_exit();
    if (status == 0)
        cr_engine_mark_finished();
}

static int fresh_start(int (*main)(int, char **, char **), int argc, char **argv, char **envp)
{
    int rc = cr_heap_init(CR_HEAP_FRESH);
    if (rc) {
        cr_errc(rc, "cannot initialise the persistent heap");
        return rc;
    }
    rc = cr_exec_init(1, NULL);
    if (rc)
        return rc;
    struct cr_exec_root *root = RT.root;
    struct cr_pthread *t = &root->threads[0];
    root->main = main;
    root->argv = copy_strings(argv, &root->argc);
    root->envp = copy_strings(envp, NULL);
    if (!root->argv || !root->envp) {
        cr_err("cannot copy argv/envp into the region");
        return -ENOMEM;
    }
    (void)argc;
    rc = cr_exec_stack_alloc(RT.stack_size, &t->stack_lo);
    if (rc)
        return rc;
    t->stack_size = RT.stack_size;
    t->id = 0;
    return 0;
}

/* Recreate every thread that was running at the checkpoint; main is
 * resumed by the caller. */
static int resume_threads(const struct cr_thread_record *rec, size_t n)
{
    struct cr_exec_root *root = cr_region_root(CR_ROOT_EXEC);
    if (!root || root->magic != CR_EXEC_MAGIC || root->version != CR_EXEC_VERSION) {
        cr_err("the restored region has no valid runtime root block (%p)", (void *)root);
        return CR_ECORRUPT;
    }
    int rc = cr_exec_init(1, root);
    if (rc)
        return rc;
    int main_running = 0;
    RT.live = 0;
    pthread_mutex_lock(&RT.lock);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (rec[i].tid >= CR_MAX_THREADS) {
            rc = CR_ECORRUPT;
            break;
        }
        struct cr_pthread *t = &root->threads[rec[i].tid];
        memcpy(&t->ctx, rec[i].ctx, sizeof t->ctx);
        t->state = rec[i].state;
        t->id = rec[i].tid;
        if (rec[i].state != CR_T_RUNNING)
            continue;
        RT.live++;
        if (rec[i].tid == 0)
            main_running = 1;
        else
            rc = cr_exec_spawn(t, 1);
    }
    pthread_mutex_unlock(&RT.lock);
    if (rc == 0 && !main_running) {
        cr_err("the checkpoint has no running main thread");
        rc = CR_ECORRUPT;
    }
    return rc;
}

/* The collector when persistence could not be set up: every checkpoint
 * fails with the reason. */
static int report_init_failure(struct cr_exec_root *root, void *unused)
{
    return init_failure;
}

static CR_NORETURN void refuse(int rc)
{
    fprintf(stderr, "crmpi: cannot restart from the checkpoint in %s: %s.\n"
            "crmpi: remove that directory to run the program from the beginning.\n",
            cr_config()->dir, cr_strerror(rc));
    _exit(EXIT_FAILURE);
}

/* On the home stack: restore, then resume main (never returns), or return
 * CR_ENOCKPT. A failure after pages were written is fatal. */
static int restore_and_resume(void)
{
    struct cr_thread_record *rec = NULL;
    size_t n = 0;
    int rc = cr_engine_restore(&rec, &n);
    if (rc == CR_ENOCKPT)
        return rc;
    if (rc)
        refuse(rc);
    rc = cr_heap_init(CR_HEAP_RESTORED);
    if (rc) {
        cr_errc(rc, "the restored persistent heap is not usable");
        refuse(rc);
    }
    rc = cr_transparent_restored();   /* globals and files, before anyone resumes */
    if (rc)
        refuse(rc);
    /* Before any thread resumes: one that reached cr_checkpoint() first
     * would otherwise find no collector and return at once, without a
     * rendezvous (seen with cr_rollback's kill test). */
    cr_exec_set_collector(cr_engine_checkpoint, NULL);
    rc = resume_threads(rec, n);
    free(rec);
    if (rc)
        refuse(rc);
    cr_exec_set_self(0);
    (void)cr_fault("restore-resuming");
    /* With libcrmpi this runs inside MPI_Init's wrapper, whose frame is
     * abandoned; main's own depth comes back with its cr_checkpoint frame. */
    cr_lib_depth = 0;
    cr_ctx_resume(&RT.root->threads[0].ctx, CR_RESUME_RESTARTED);
}

int cr_exec_main(int (*main)(int, char **, char **), int argc, char **argv, char **envp,
                 unsigned flags)
{
    const struct cr_config *cfg = cr_config();
    if (cfg->disable) {
        /* crmalloc still needs the region and a heap; nothing else runs. */
        if (open_region() == 0 && cr_heap_init(CR_HEAP_FRESH) != 0)
            cr_err("cannot initialise the heap: crmalloc will fail");
        cr_exec_lazy_init();
        return main(argc, argv, envp);
    }
    reexec_without_aslr(argv);
    start_pid = getpid();
    main_flags = flags;
    if (on_exit(on_normal_exit, NULL) != 0)
        cr_warn("on_exit failed: a normal end will not be recorded");
    int rc = open_region();
    if (rc == 0)
        rc = cr_region_thread_prepare();    /* main runs on a persistent stack */
    if (rc == 0 && !(flags & CR_EXEC_DEFER_RESTORE)) {
        cr_exec_set_coll(cr_coll_self());
        /* Returns only when there is nothing to restore. */
        if (cr_ctx_save(cr_exec_home()) == 0)
            rc = restore_and_resume();
        else
            return (int)(intptr_t)cr_exec_home_result();
        if (rc == CR_ENOCKPT)
            rc = 0;
    }
    if (rc == 0)
        rc = fresh_start(main, argc, argv, envp);
    /* Deferred: transparent mode starts once MPI_Init decided (home_restore). */
    if (rc == 0 && !(flags & CR_EXEC_DEFER_RESTORE) && cr_transparent_fresh() != 0)
        cr_err("transparent mode is off for this run");
    if (rc) {
        init_failure = rc;
        cr_err("running %s without checkpoint/restart: %s", argv[0], cr_strerror(rc));
        cr_exec_lazy_init();
        cr_exec_set_collector(report_init_failure, NULL);
        return main(argc, argv, envp);
    }
    cr_exec_set_collector(cr_engine_checkpoint, NULL);
    struct cr_pthread *t = &RT.root->threads[0];
    if (cr_ctx_save(cr_exec_home()) == 0)
        cr_ctx_start((char *)t->stack_lo + t->stack_size, main_trampoline, RT.root, leave_main);
    return (int)(intptr_t)cr_exec_home_result();
}

int cr_exec_in_mpi_job(void)
{
    return (main_flags & CR_EXEC_DEFER_RESTORE) || cr_exec_coll() != cr_coll_self();
}

/* Called by main (on its persistent stack), e.g. from MPI_Init in libcrmpi. */
static struct cr_coll *restore_coll;

static void *home_restore(void *unused)
{
    cr_exec_set_coll(restore_coll);
    int rc = restore_and_resume();
    if (rc == CR_ENOCKPT && cr_transparent_fresh() != 0)
        cr_err("transparent mode is off for this run");
    /* Nothing to restore: back to the caller on its persistent stack. */
    cr_ctx_resume(&RT.root->threads[0].ctx, rc == CR_ENOCKPT ? CR_RESUME_DONE : rc);
}

int cr_exec_restore(struct cr_coll *coll)
{
    struct cr_pthread *self = cr_exec_self();
    if (!self || self->id != 0 || !RT.persistent)
        return CR_ESTATE;
    restore_coll = coll;
    int v = cr_ctx_save(&self->ctx);
    if (v == 0)
        cr_exec_go_home(home_restore, NULL);
    return v == CR_RESUME_DONE ? CR_ENOCKPT : v;
}
