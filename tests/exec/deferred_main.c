/*
 * deferred_main.c - kill-test program for the deferred restore that
 * libcrmpi uses: the program starts fresh on its persistent stack, and the
 * restore happens later, from inside main, through cr_exec_restore() (in
 * libcrmpi: from MPI_Init, once the collective exists).
 *
 * This executable brings its own __libc_start_main hook (the same shape as
 * src/exec/start_hook.c, with CR_EXEC_DEFER_RESTORE) and links the runtime
 * statically. main() first does some work that must be redone on every start
 * (the "MPI_Init" part, here: nothing persistent), then calls
 * cr_exec_restore(): on a restart it does not return, and execution goes on
 * after the checkpoint. The rest is kill_iter's computation.
 */
#include "exec/exec.h"
#include "store/store.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef int (*main_fn)(int, char **, char **);
typedef int (*lsm_fn)(main_fn, int, char **, void (*)(void), void (*)(void),
                      void (*)(void), void *);
static main_fn real_main;

static int wrapper(int argc, char **argv, char **envp)
{
    return cr_exec_main(real_main, argc, argv, envp, CR_EXEC_DEFER_RESTORE);
}

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                      void (*fini)(void), void (*rtld_fini)(void), void *stack_end);
int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                      void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
    lsm_fn real = (lsm_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    if (!real)
        _exit(127);
    real_main = main;
    return real(wrapper, argc, argv, init, fini, rtld_fini, stack_end);
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 1000;
    int rc = cr_exec_restore(cr_coll_self());
    if (rc != CR_ENOCKPT) {
        fprintf(stderr, "deferred_main: cr_exec_restore returned %d (%s)\n", rc, cr_strerror(rc));
        return 1;
    }
    uint64_t *a = crmalloc(512 * sizeof *a);
    if (!a)
        return 1;
    for (int i = 0; i < 512; i++)
        a[i] = (uint64_t)i;
    uint64_t hash = 0;
    long restarts = 0;
    for (long s = 0; s < steps; s++) {
        for (int k = 0; k < 64; k++) {
            size_t i = (size_t)(s * 31 + k) % 512;
            a[i] = mix(a[i] + (uint64_t)s);
        }
        hash = mix(hash ^ a[s % 512]);
        rc = cr_checkpoint();
        if (rc == CR_RESTARTED)
            restarts++;
        else if (rc < 0) {
            fprintf(stderr, "deferred_main: checkpoint failed: %s\n", cr_strerror(rc));
            return 1;
        }
    }
    printf("steps %ld hash %016llx\n", steps, (unsigned long long)hash);
    fprintf(stderr, "deferred_main: %ld restarts\n", restarts);
    return 0;
}
