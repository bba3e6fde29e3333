/*
 * trust.c - who may have written a checkpoint.
 *
 * Restoring executes state read from disk: restored stacks hold return
 * addresses, restored heaps hold function pointers. A checkpoint is
 * therefore a code-execution boundary, and its files must be as trusted
 * as the executable: the checkpoint directory and every file restore
 * reads must be owned by the user running the job (effective uid) and not
 * writable by group or others, and must be what they claim (a directory,
 * regular files). A symbolic link given as the directory must be owned by
 * us or by root: one planted by another user in a shared directory would
 * otherwise redirect our checkpoints to a place that user controls.
 * Checked in cr_store_open (the directory and the index) and by restore
 * on each epoch file it opens (on the descriptor it reads, so nothing can
 * be swapped in between the check and the read). Refusals return
 * CR_EPERM_TRUST and name the path and what is wrong.
 */
#include "store/internal.h"
#include "common/errors.h"
#include "common/log.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int check_stat(const struct stat *sb, const char *path, int want_dir)
{
    uid_t me = geteuid();
    if (want_dir ? !S_ISDIR(sb->st_mode) : !S_ISREG(sb->st_mode)) {
        cr_err("%s: is not a %s; refusing to use it as a checkpoint %s", path,
               want_dir ? "directory" : "regular file", want_dir ? "directory" : "file");
        return CR_EPERM_TRUST;
    }
    if (sb->st_uid != me) {
        cr_err("%s: owned by uid %u, not by this user (uid %u): refusing to trust a "
               "checkpoint another user could have written (restore executes its contents)",
               path, (unsigned)sb->st_uid, (unsigned)me);
        return CR_EPERM_TRUST;
    }
    if (sb->st_mode & (S_IWGRP | S_IWOTH)) {
        cr_err("%s: writable by %s (mode %04o): refusing to trust a checkpoint others "
               "could have modified; run chmod go-w on it", path,
               (sb->st_mode & S_IWOTH) ? "others" : "its group",
               (unsigned)(sb->st_mode & 07777));
        return CR_EPERM_TRUST;
    }
    return 0;
}

int cr_trust_fd(int fd, const char *path)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        int rc = cr_neg_errno();
        cr_perr("fstat(%s)", path);
        return rc;
    }
    return check_stat(&sb, path, 0);
}

/* The name itself: no control characters (they would corrupt logs and
 * the identity text), and a symlink must be ours or root's. */
static int check_name(const char *path)
{
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            cr_err("checkpoint directory name contains control character 0x%02x; refusing it",
                   (unsigned)(unsigned char)*p);
            return -EINVAL;
        }
    struct stat lsb;
    if (lstat(path, &lsb) == 0 && S_ISLNK(lsb.st_mode) && lsb.st_uid != geteuid() &&
        lsb.st_uid != 0) {
        cr_err("%s: a symbolic link owned by uid %u, not by this user (uid %u) or root: "
               "refusing to follow it", path, (unsigned)lsb.st_uid, (unsigned)geteuid());
        return CR_EPERM_TRUST;
    }
    return 0;
}

int cr_trust_dir(const char *dir)
{
    if (!dir[0]) {
        cr_err("empty checkpoint directory name");
        return -EINVAL;
    }
    int rc = check_name(dir);
    if (rc < 0)
        return rc;
    struct stat sb;
    if (stat(dir, &sb) < 0) {
        rc = cr_neg_errno();
        cr_perr("stat(%s)", dir);
        return rc;
    }
    rc = check_stat(&sb, dir, 1);
    if (rc < 0)
        return rc;
    /* The index decides what is restored: it must be trusted too. */
    char ix[PATH_MAX];
    if (snprintf(ix, sizeof ix, "%s/" CR_INDEX_NAME, dir) >= (int)sizeof ix)
        return -ENAMETOOLONG;
    if (lstat(ix, &sb) < 0)
        return errno == ENOENT ? 0 : cr_neg_errno();
    return check_stat(&sb, ix, 0);
}
