/*
 * start_hook.c - interpose __libc_start_main so that linking -lcr is enough
 * to make main() persistent.
 *
 * The program's _start calls __libc_start_main(main, ...). libcr appears
 * before libc in the executable's lookup scope, so this definition is found
 * first; it calls glibc's (found with dlsym(RTLD_NEXT)) with a wrapper main
 * that runs the real one through cr_exec_main(). This file is built into the
 * shared libraries only (object library cr_start), never into the static
 * cr_internal used by unit tests, whose programs must keep their own main.
 */
#include "exec/exec.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"

typedef int (*main_fn)(int, char **, char **);
typedef int (*libc_start_main_fn)(main_fn, int, char **, void (*)(void), void (*)(void),
                                  void (*)(void), void *);

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                      void (*fini)(void), void (*rtld_fini)(void), void *stack_end);

static main_fn real_main;

static unsigned start_flags;

void cr_exec_defer_restore(void)
{
    start_flags |= CR_EXEC_DEFER_RESTORE;
}

static int wrapper_main(int argc, char **argv, char **envp)
{
    return cr_exec_main(real_main, argc, argv, envp, start_flags);
}

CR_EXPORT int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                                void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
    libc_start_main_fn real = (libc_start_main_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    if (!real) {
        /* Nothing sensible can run without the C library's start routine. */
        static const char msg[] = "crmpi: __libc_start_main not found in the C library\n";
        if (write(2, msg, sizeof msg - 1) < 0)
            _exit(127);
        _exit(127);
    }
    real_main = main;
    return real(wrapper_main, argc, argv, init, fini, rtld_fini, stack_end);
}
