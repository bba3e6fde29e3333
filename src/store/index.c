/*
 * index.c - the index file naming the committed epochs of a directory.
 *
 * Layout (FORMAT.md): struct cr_index_header, nentries struct
 * cr_index_entry (oldest first), CRC-32C of all preceding bytes. The index
 * is the commit record: an epoch exists for restart only once it is named
 * here. It is replaced the way redis publishes its RDB: write index.tmp,
 * fsync it, rename over index, fsync the directory. A crash at any point
 * leaves either the old or the new index, never a torn one; a stale
 * index.tmp is removed by the next writer. The fault points index-written,
 * index-synced, index-renamed let the crash test stop the writer between
 * the steps. Other fault points of the store: epoch-begun, epoch-put,
 * epoch-finished (epoch.c), index-committed (before garbage collection).
 * CRMPI_FAULT=<point>[@N][:action] (common/fault.h) kills the process there,
 * or fails the system call there with EIO/ENOSPC.
 */
#include "store/internal.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/config.h"
#include "common/fault.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint32_t cr_record_crc(const void *rec, size_t len)
{
    return cr_crc32c(0, rec, len - sizeof(uint32_t));
}

void cr_store_fault(const char *point)
{
    (void)cr_fault(point);   /* step points: only the kill action applies */
}

void cr_index_free(struct cr_index *ix)
{
    free(ix->e);
    ix->e = NULL;
    ix->n = 0;
}

const struct cr_index_entry *cr_index_find(const struct cr_index *ix, uint64_t epoch)
{
    for (uint32_t i = 0; i < ix->n; i++)
        if (ix->e[i].epoch == epoch)
            return &ix->e[i];
    return NULL;
}

int cr_index_encode(const struct cr_index *ix, void **buf, size_t *len)
{
    size_t n = sizeof(struct cr_index_header) + ix->n * sizeof(struct cr_index_entry) + 4;
    char *b = calloc(1, n);
    if (!b)
        return -ENOMEM;
    struct cr_index_header h = { .version = CR_FMT_VERSION,
        .header_len = sizeof h, .nentries = ix->n, .entry_len = sizeof(struct cr_index_entry) };
    memcpy(h.magic, CR_INDEX_MAGIC, 8);
    memcpy(h.job_uuid, ix->job_uuid, CR_UUID_BYTES);
    memcpy(b, &h, sizeof h);
    if (ix->n)
        memcpy(b + sizeof h, ix->e, ix->n * sizeof *ix->e);
    uint32_t crc = cr_crc32c(0, b, n - 4);
    memcpy(b + n - 4, &crc, 4);
    *buf = b;
    *len = n;
    return 0;
}

/* Every entry must name a plausible epoch: numbers increasing, names the
 * canonical file name (never a path: the index is hostile input and must
 * not make us open or delete anything outside the directory). */
static int check_entries(const struct cr_index *ix, const char *what)
{
    for (uint32_t i = 0; i < ix->n; i++) {
        const struct cr_index_entry *e = &ix->e[i];
        char want[CR_EPOCH_NAME_MAX];
        snprintf(want, sizeof want, CR_EPOCH_FMT, (unsigned long long)e->epoch);
        if (e->epoch == 0 || (i && e->epoch <= ix->e[i - 1].epoch)) {
            cr_err("%s: entry %u names epoch %llu out of order", what, i,
                   (unsigned long long)e->epoch);
            return CR_ECORRUPT;
        }
        if (memchr(e->name, 0, sizeof e->name) == NULL || strcmp(e->name, want)) {
            cr_err("%s: entry %u (epoch %llu) has a malformed file name", what, i,
                   (unsigned long long)e->epoch);
            return CR_ECORRUPT;
        }
        if (!(e->flags & CR_ENTRY_FULL) && (e->parent == 0 || e->parent >= e->epoch)) {
            cr_err("%s: incremental epoch %llu names parent %llu", what,
                   (unsigned long long)e->epoch, (unsigned long long)e->parent);
            return CR_ECORRUPT;
        }
    }
    return 0;
}

int cr_index_decode(const void *buf, size_t len, const char *what, struct cr_index *ix)
{
    struct cr_index_header h;
    memset(ix, 0, sizeof *ix);
    if (len < sizeof h + 4) {
        cr_err("%s: truncated index (%zu bytes, header needs %zu)", what, len, sizeof h + 4);
        return CR_ECORRUPT;
    }
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, CR_INDEX_MAGIC, 7)) {
        cr_err("%s: not a crmpi checkpoint index (bad magic)", what);
        return CR_EFORMAT;
    }
    if (h.version != CR_FMT_VERSION || h.magic[7] != CR_INDEX_MAGIC[7]) {
        cr_err("%s: index format version %u, this library reads version %u", what,
               h.version, CR_FMT_VERSION);
        return CR_EFORMAT;
    }
    if (h.header_len != sizeof h || h.entry_len != sizeof(struct cr_index_entry) ||
        h.nentries > CR_INDEX_MAX_ENTRIES ||
        len != sizeof h + (size_t)h.nentries * sizeof(struct cr_index_entry) + 4) {
        cr_err("%s: index header is inconsistent (header %u, entry %u, %u entries, %zu bytes)",
               what, h.header_len, h.entry_len, h.nentries, len);
        return CR_ECORRUPT;
    }
    uint32_t crc;
    memcpy(&crc, (const char *)buf + len - 4, 4);
    if (crc != cr_crc32c(0, buf, len - 4)) {
        cr_err("%s: index checksum mismatch (stored 0x%08x, computed 0x%08x)", what, crc,
               cr_crc32c(0, buf, len - 4));
        return CR_ECORRUPT;
    }
    memcpy(ix->job_uuid, h.job_uuid, CR_UUID_BYTES);
    ix->n = h.nentries;
    if (ix->n) {
        ix->e = malloc(ix->n * sizeof *ix->e);
        if (!ix->e)
            return -ENOMEM;
        memcpy(ix->e, (const char *)buf + sizeof h, ix->n * sizeof *ix->e);
    }
    int rc = check_entries(ix, what);
    if (rc < 0)
        cr_index_free(ix);
    return rc;
}

int cr_index_read(const char *dir, struct cr_index *ix)
{
    char path[PATH_MAX];
    struct stat sb;
    snprintf(path, sizeof path, "%s/" CR_INDEX_NAME, dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = cr_neg_errno();
        if (rc != -ENOENT)
            cr_perr("open(%s)", path);
        return rc;
    }
    int rc = 0;
    void *buf = NULL;
    if (fstat(fd, &sb) < 0) {
        rc = cr_neg_errno();
        cr_perr("fstat(%s)", path);
        goto close_fd;
    }
    size_t max = sizeof(struct cr_index_header) + 4 +
                 (size_t)CR_INDEX_MAX_ENTRIES * sizeof(struct cr_index_entry);
    if ((uint64_t)sb.st_size > max) {
        cr_err("%s: %lld bytes is more than any index can be", path, (long long)sb.st_size);
        rc = CR_ECORRUPT;
        goto close_fd;
    }
    buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto close_fd;
    }
    rc = cr_pread_full(fd, buf, (size_t)sb.st_size, 0, path, "index");
    if (rc == 0)
        rc = cr_index_decode(buf, (size_t)sb.st_size, path, ix);
    free(buf);
close_fd:
    close(fd);
    return rc;
}

static int write_all(int fd, const void *buf, size_t n, const char *path)
{
    const char *p = buf;
    while (n) {
        ssize_t w = cr_fault_errno("index-write") ? -1 : write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            cr_perr("write(%s, %zu bytes)", path, n);
            return cr_neg_errno();
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int cr_fsync_dir(const char *dir);
int cr_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        cr_perr("open(%s)", dir);
        return cr_neg_errno();
    }
    int rc = 0;
    if (cr_fault_errno("dir-fsync") || fsync(fd) < 0) {
        rc = cr_neg_errno();
        cr_perr("fsync(%s)", dir);
    }
    close(fd);
    return rc;
}

int cr_index_write(const char *dir, const struct cr_index *ix)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    void *buf;
    size_t len;
    snprintf(tmp, sizeof tmp, "%s/" CR_INDEX_TMP, dir);
    snprintf(path, sizeof path, "%s/" CR_INDEX_NAME, dir);
    int rc = cr_index_encode(ix, &buf, &len);
    if (rc < 0)
        return rc;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = cr_neg_errno();
        cr_perr("open(%s)", tmp);
        goto free_buf;
    }
    rc = write_all(fd, buf, len, tmp);
    if (rc < 0)
        goto close_fd;
    cr_store_fault("index-written");
    if (cr_fault_errno("index-fsync") || fsync(fd) < 0) {
        rc = cr_neg_errno();
        cr_perr("fsync(%s)", tmp);
        goto close_fd;
    }
    cr_store_fault("index-synced");
    close(fd);
    fd = -1;
    if (cr_fault_errno("index-rename") || rename(tmp, path) < 0) {
        rc = cr_neg_errno();
        cr_perr("rename(%s, %s)", tmp, path);
        goto free_buf;
    }
    cr_store_fault("index-renamed");
    rc = cr_fsync_dir(dir);
close_fd:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
free_buf:
    free(buf);
    return rc;
}
