/*
 * start_hook_mpi.c - libcrmpi's __libc_start_main: main becomes persistent
 * as with libcr, but the restore of a checkpoint is deferred to MPI_Init
 * (CR_EXEC_DEFER_RESTORE), because restoring an MPI job needs its
 * collective, which needs MPI. Built into libcrmpi only (test programs that
 * link the layer's objects keep their own main).
 */
#include "exec/exec.h"

#include <dlfcn.h>
#include <unistd.h>

typedef int (*main_fn)(int, char **, char **);
typedef int (*libc_start_main_fn)(main_fn, int, char **, void (*)(void), void (*)(void),
                                  void (*)(void), void *);

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                      void (*fini)(void), void (*rtld_fini)(void), void *stack_end);

static main_fn real_main;

static int wrapper_main(int argc, char **argv, char **envp)
{
    return cr_exec_main(real_main, argc, argv, envp, CR_EXEC_DEFER_RESTORE);
}

CR_EXPORT int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                                void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
    libc_start_main_fn real = (libc_start_main_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    if (!real) {
        static const char msg[] = "crmpi: __libc_start_main not found in the C library\n";
        if (write(2, msg, sizeof msg - 1) < 0)
            _exit(127);
        _exit(127);
    }
    real_main = main;
    return real(wrapper_main, argc, argv, init, fini, rtld_fini, stack_end);
}
