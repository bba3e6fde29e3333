/*
 * fuzz_epoch.c - libFuzzer harness for the container reader: a whole
 * checkpoint directory (index + epoch files, see fuzz_input.h) is written
 * to a private directory in /dev/shm and restored exactly as a restarting
 * rank does: cr_store_open reads and validates the index, cr_restore_open
 * walks the committed epochs newest first and validates each chain (epoch
 * headers, job UUID, rank row, page index rows, thread rows, identity
 * text), cr_restore_threads copies the thread records, and
 * cr_restore_pages_to reads and CRC-checks the page data through the
 * pipelined reader into a scratch destination; after a data checksum
 * failure the restore is reopened once, as the engine does, to exercise
 * the fallback.
 *
 * One thing is bent: the recorded identity (build-ids and load addresses)
 * can never match the fuzzer itself, which would stop every input at the
 * identity check. The harness is linked with --wrap=cr_identity_check: the
 * real function still parses the hostile text against this process, but a
 * mismatch (CR_EMISMATCH) is ignored so the page data is reached; every
 * other verdict (a corrupt or empty identity) is returned as it is.
 */
#include "fuzz_input.h"
#include "fuzz_fixup.h"
#include "store/internal.h"
#include "common/config.h"
#include "common/errors.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int __real_cr_identity_check(const char *recorded, size_t len, const char *file);
int __wrap_cr_identity_check(const char *recorded, size_t len, const char *file);

int __wrap_cr_identity_check(const char *recorded, size_t len, const char *file)
{
    int rc = __real_cr_identity_check(recorded, len, file);
    return rc == CR_EMISMATCH ? 0 : rc;
}

#define SCRATCH_BYTES (4u << 20)
static char dir[64];
static uint8_t *scratch;

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!getenv("FUZZ_LOG"))
        setenv("CRMPI_LOG", "none", 1);
    (void)cr_config_reload();
    snprintf(dir, sizeof dir, "/dev/shm/crmpi-fuzz-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    scratch = malloc(SCRATCH_BYTES);
    if (!scratch)
        exit(1);
    atexit(remove_dir);
    return 0;
}

static void clear_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        abort();
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
}

static void put_file(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            abort();
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

/* The scratch destination stands for the region: [base, base + 4 MiB). */
struct scratch_target { uintptr_t base; };

static void *s_map(void *arg, uintptr_t addr, size_t len)
{
    const struct scratch_target *t = arg;
    if (addr < t->base || len > SCRATCH_BYTES || addr - t->base > SCRATCH_BYTES - len)
        return NULL;
    return scratch + (addr - t->base);
}

static int s_zero(void *arg, uintptr_t addr, size_t len)
{
    void *p = s_map(arg, addr, len);
    if (!p)
        return -EFAULT;
    memset(p, 0, len);
    return 0;
}

static void restore_dir(void);

static int restore_once(struct cr_store *st)
{
    struct cr_restore *r;
    int rc = cr_restore_open(st, 0, &r);
    if (rc < 0)
        return rc;
    struct cr_restore_info info;
    cr_restore_info(r, &info);
    struct cr_thread_record t[8];
    if (info.nthreads <= 8 && cr_restore_threads(r, t, 8) < 0)
        __builtin_trap();
    struct scratch_target st_arg = { info.region_base };
    struct cr_restore_target tg = { s_map, s_zero, &st_arg, NULL };
    rc = cr_restore_pages_to(r, &tg);
    cr_restore_close(r);
    return rc;
}

static void one(const uint8_t *data, size_t size)
{
    struct fz_input in;
    fz_parse(data, size, &in);
    clear_dir();
    if (in.has_index)
        put_file(CR_INDEX_NAME, in.index, in.index_len);
    for (size_t i = 0; i < in.nfiles; i++) {
        char name[CR_EPOCH_NAME_MAX];
        snprintf(name, sizeof name, CR_EPOCH_FMT,
                 (unsigned long long)(in.f[i].epoch % 1000000000000ULL));
        put_file(name, in.f[i].data, in.f[i].len);
    }
    restore_dir();
}

/* Each input as it is, then with every checksum made right (fuzz_fixup.h);
 * fz_parse points into the copy, so the fixes land in the files written. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    struct fz_input in;
    fz_parse(copy, size, &in);
    if (in.has_index)
        fz_fix_index((uint8_t *)in.index, in.index_len);
    for (size_t i = 0; i < in.nfiles; i++)
        fz_fix_epoch((uint8_t *)in.f[i].data, in.f[i].len);
    one(copy, size);
    free(copy);
    return 0;
}

static void restore_dir(void)
{
    struct cr_store *st;
    struct cr_store_opts o = { .full_every = 4, .keep = 100, .align = 4096 };
    if (cr_store_open(&st, dir, cr_coll_self(), &o) < 0)
        return;
    if (restore_once(st) == CR_ECORRUPT)
        (void)restore_once(st);
    cr_store_close(st);
}
