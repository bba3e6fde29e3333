/*
 * start_defer.c - libcrmpi starts main through the same __libc_start_main
 * hook as libcr (src/exec/start_hook.c), but defers the restore of a
 * checkpoint to MPI_Init: restoring an MPI job needs its collective, which
 * needs MPI. Library constructors run before _start, so the flag is set
 * before the hook reads it.
 */
#include "exec/exec.h"

__attribute__((constructor)) static void crmpi_defer_restore(void)
{
    cr_exec_defer_restore();
}
