/*
 * state.c - transparent mode's process-local switches and its persistent
 * root.
 *
 * The root (region root slot CR_ROOT_TRANSPARENT, in the persistent heap)
 * points to the copy of the executable's globals (globals.c) and to the
 * table of the application's open files (files.c). It is created when a
 * fresh start has been decided and found again after a restore; only then
 * does the malloc interposer start serving persistent threads from the heap
 * (cr_interpose_active_), so that nothing glibc allocated in this process
 * can sit in memory a restore overwrites.
 */
#include "interpose/interpose.h"

#include <stdint.h>

#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"
#include "cr.h"
#include "region/region.h"

__thread int cr_lib_depth __attribute__((tls_model("initial-exec")));
int cr_interpose_active_;

#define TR_MAGIC 0x5452414e53504152ULL   /* "RAPSNART" */

struct tr_root {
    uint64_t magic;
    struct cr_globals *globals;
    struct cr_files *files;
};

static struct tr_root *root;
static int files_at_checkpoint;   /* entries in use at the last checkpoint/restore */

int cr_interpose_enabled(void)
{
    return cr_config()->interpose;
}

int cr_transparent_fresh(void)
{
    if (!cr_interpose_enabled())
        return 0;
    cr_lib_enter();
    int rc = -ENOMEM;
    struct tr_root *r = crcalloc(1, sizeof *r);
    if (!r)
        goto out;
    rc = cr_globals_create(&r->globals);
    if (rc == 0)
        rc = cr_files_create(&r->files);
    if (rc) {
        cr_errc(rc, "transparent mode: cannot set up (globals and files are not restored)");
        goto out;
    }
    r->magic = TR_MAGIC;
    cr_region_set_root(CR_ROOT_TRANSPARENT, r);
    root = r;
    cr_files_attach(r->files);
    cr_interpose_active_ = 1;
out:
    cr_lib_leave();
    return rc;
}

int cr_transparent_restored(void)
{
    if (!cr_interpose_enabled())
        return 0;
    struct tr_root *r = cr_region_root(CR_ROOT_TRANSPARENT);
    if (!r || r->magic != TR_MAGIC) {
        /* Taken with CRMPI_INTERPOSE=0: nothing of transparent mode to restore. */
        cr_warn("transparent mode: the checkpoint holds no globals/files (taken with "
                "CRMPI_INTERPOSE=0?); continuing without them");
        return 0;
    }
    cr_lib_enter();
    int rc = cr_globals_restore(r->globals);
    if (rc == 0)
        rc = cr_files_restore(r->files);
    cr_lib_leave();
    if (rc)
        return rc;
    root = r;
    files_at_checkpoint = cr_files_in_use(r->files);
    cr_files_attach(r->files);
    cr_interpose_active_ = 1;
    return 0;
}

int cr_transparent_checkpoint(void)
{
    if (!root)
        return 0;
    cr_lib_enter();
    cr_files_checkpoint(root->files);
    files_at_checkpoint = cr_files_in_use(root->files);
    cr_globals_save(root->globals);
    cr_lib_leave();
    return 0;
}

int cr_transparent_saves(const void *p, size_t len)
{
    return root && root->globals &&
           cr_globals_contains(root->globals, (uintptr_t)p, (uintptr_t)p + len);
}

int cr_transparent_rollback_check(void)
{
    if (!root)
        return 0;
    int now = cr_files_in_use(root->files);
    if (now || files_at_checkpoint) {
        cr_err("cr_rollback: the application has %d file(s) open through transparent mode "
               "(%d at the last checkpoint); open files cannot be rolled back in memory",
               now, files_at_checkpoint);
        return CR_EUNSUPPORTED;
    }
    return 0;
}

int cr_transparent_rolled_back(void)
{
    if (!root)
        return 0;
    cr_lib_enter();
    int rc = cr_globals_restore(root->globals);
    cr_lib_leave();
    return rc;
}
