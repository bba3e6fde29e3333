/*
 * interpose.h - transparent mode: what an unmodified program keeps across a
 * restart without calling crmalloc (malloc interposition, the executable's
 * globals, open files), and the "in library" rule that keeps the runtime's
 * and MPI's own allocations out of the persistent heap.
 *
 * Where an allocation goes (malloc.c): the persistent heap when
 * interposition is active (decided: fresh start or restored), the calling
 * code runs on a persistent stack (a persistent thread, main included) and
 * no library code is active on this thread (cr_lib_depth == 0); glibc's
 * allocator otherwise. free/realloc/malloc_usable_size go by address.
 *
 * The depth counter is a plain initial-exec TLS int: MPI wrappers and the
 * runtime bracket their bodies with cr_lib_enter()/cr_lib_leave().
 */
#ifndef CR_INTERPOSE_H
#define CR_INTERPOSE_H

#include <stddef.h>
#include <stdio.h>

#include "common/compiler.h"

extern __thread int cr_lib_depth __attribute__((tls_model("initial-exec")));

static inline void cr_lib_enter(void) { cr_lib_depth++; }
static inline void cr_lib_leave(void) { cr_lib_depth--; }

/* 0 undecided/off, 1 active. Process-local, never persistent. */
extern int cr_interpose_active_;

/* Whether CRMPI_INTERPOSE allows interposition (default yes). */
int cr_interpose_enabled(void);

/* The runtime has decided (fresh start done, or restored): from now on the
 * persistent threads' allocations go to the persistent heap. Fresh: create
 * the transparent-mode root (globals copy, file table). Restored: copy the
 * executable's globals back and reopen the files (must run before any
 * persistent thread resumes). Returns 0 or a status (reported). */
CR_MUST_CHECK int cr_transparent_fresh(void);
CR_MUST_CHECK int cr_transparent_restored(void);

/* At a checkpoint, before the region is collected (all persistent threads
 * stopped): save the globals, flush streams, record file offsets/sizes. */
CR_MUST_CHECK int cr_transparent_checkpoint(void);

/* 1 when transparent mode is active and [p, p+len) is among the
 * executable's globals that a checkpoint saves (the persistent region is
 * cr_region_contains's). */
int cr_transparent_saves(const void *p, size_t len);

/* In-memory rollback (src/exec/rollback.c), all persistent threads stopped.
 * rollback_check, before anything changes: CR_EUNSUPPORTED (reported) when
 * application files are open now or were at the last checkpoint - their
 * descriptors and glibc's list of streams live outside the region and
 * would not follow. rolled_back, after the region's pages were put back:
 * copy the checkpoint's globals back. */
CR_MUST_CHECK int cr_transparent_rollback_check(void);
CR_MUST_CHECK int cr_transparent_rolled_back(void);

/* ---- globals.c ---- */
#include <stdint.h>
struct cr_range { uintptr_t lo, hi; };
/* Append to (*out, *nout) (realloc'd, glibc memory) the pieces of [lo, hi)
 * outside every cut[i] (sorted in place; may overlap, touch, and come in
 * any order). 0 or -ENOMEM. */
CR_MUST_CHECK int cr_globals_subtract(uintptr_t lo, uintptr_t hi, struct cr_range *cut,
                                      size_t ncut, struct cr_range **out, size_t *nout);
struct cr_globals;
CR_MUST_CHECK int cr_globals_create(struct cr_globals **out);
void cr_globals_save(struct cr_globals *g);
CR_MUST_CHECK int cr_globals_restore(const struct cr_globals *g);
/* 1 when every byte of [lo, hi) is in the globals g saves. */
int cr_globals_contains(const struct cr_globals *g, uintptr_t lo, uintptr_t hi);

/* ---- files.c ---- */
struct cr_files;
CR_MUST_CHECK int cr_files_create(struct cr_files **out);
void cr_files_attach(struct cr_files *f);
void cr_files_checkpoint(struct cr_files *f);
/* Entries of the table in use (files and other descriptors noted). */
int cr_files_in_use(const struct cr_files *f);
CR_MUST_CHECK int cr_files_restore(struct cr_files *f);
/* Called by the open/fopen wrappers (in application context). */
void cr_files_note_open(int fd, const char *path, int flags, int mode, FILE *fp);
void cr_files_note_fdopen(int fd, FILE *fp);
void cr_files_note_close(int fd);
void cr_files_note_other(int fd, const char *what);
/* Whether an open by the caller is the application's (persistent stack, no
 * library active). */
int cr_files_app_context(void);

#endif
