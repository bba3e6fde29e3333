/*
 * test_corruption_matrix.c - every kind of damage to every file of a real
 * checkpoint directory, each row with its expected verdict.
 *
 * The directory: six epochs of one process, full every third
 * (1F 2 3 | 4F 5 6: two chains), three thread records each, contents of
 * epoch e kept in snap[e]; a second directory of the same shape written
 * by "another job" (its own UUID, other contents). Each row copies the
 * pristine directory, applies one damage, and restores in a child process
 * (a crash of the reader is then reported as such, by row) exactly as a
 * restarting rank does: open, restore; after a data checksum failure
 * found while copying, reopen once and restore again. The row states the
 * verdict: the epoch restored (its bytes are compared with snap[], so a
 * silent wrong restore fails), whether the first attempt had to fail with
 * CR_ECORRUPT first (damage only found in the page data), or the code of
 * the refusal; and a phrase the error log must contain (the damage is
 * named, not just detected).
 *
 * Damage kinds: truncation at anchors of the layout (inside the header,
 * the identity text, each dataset, just before the end of the last
 * dataset, after it), bit flips in page data / page index / thread table
 * / rank records / the epoch header and its identity text / /identities /
 * HDF5 attributes and superblock (never read by the restart path: must be
 * harmless), index damage, deleted epochs (inside and outside the needed
 * chain), epochs swapped in from another job or renamed, another number of
 * ranks (reader side and header side), another build (identity).
 */
#include "cutest.h"
#include "store_helpers.h"
#include "common/config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPAGES 48
#define PSZ CR_PAGE_SIZE
#define NEPOCHS 6

static char *pristine, *foreign;
static uint8_t cur[NPAGES * PSZ];
static uint8_t snap[NEPOCHS + 1][NPAGES * PSZ];
static struct th_mem mem = { cur, NPAGES };

enum what { NONE, TRUNC, FLIP, DEL, SWAP_FOREIGN, SWAP_OWN, RANKS_READER, HDR_NRANKS,
            HDR_VERSION, BUILD, INDEX_FLIP, INDEX_TRUNC, INDEX_DEL, THREAD_STATE };
/* Anchors inside an epoch file (resolved from its header). */
enum anchor { A_ZERO, A_HEADER, A_HDR_IDENT, A_PAGES, A_INDEX, A_THREADS, A_RANKS, A_IDENTS,
              A_DATA_END_M1, A_PAGES_END, A_AFTER_DATA, A_ATTR_UUID, A_SUPERBLOCK, A_INDEX_MAGIC,
              A_INDEX_ENTRY, A_INDEX_CRC };

struct row {
    const char *name;
    enum what what;
    int file;               /* epoch number (0: the index)                 */
    enum anchor at;
    int delta;              /* bytes past the anchor                        */
    /* verdict */
    int epoch;              /* restored epoch (0: refused)                  */
    int first_rc;           /* CR_ECORRUPT if found only while copying      */
    int refuse_rc;          /* code when refused                            */
    const char *msg;        /* the log must name the damage                 */
};

#define OK(e) (e), 0, 0
#define COPYFAIL(e) (e), CR_ECORRUPT, 0
#define REFUSED(rc) 0, 0, (rc)

static const struct row rows[] = {
    { "pristine directory restores the newest epoch", NONE, 0, 0, 0, OK(6), NULL },
    /* truncation of the newest epoch (incremental): back to 5 */
    { "epoch 6 truncated to 0 bytes", TRUNC, 6, A_ZERO, 0, OK(5), "truncated" },
    { "epoch 6 truncated inside the header", TRUNC, 6, A_HEADER, 100, OK(5), "truncated" },
    { "epoch 6 truncated inside the header's identity text", TRUNC, 6, A_HDR_IDENT, 10, OK(5), "truncated" },
    { "epoch 6 truncated inside /pages", TRUNC, 6, A_PAGES, 4096, OK(5), "truncated" },
    { "epoch 6 truncated inside /page_index", TRUNC, 6, A_INDEX, 20, OK(5), "truncated" },
    { "epoch 6 truncated inside /threads", TRUNC, 6, A_THREADS, 300, OK(5), "truncated" },
    { "epoch 6 truncated inside /ranks", TRUNC, 6, A_RANKS, 1, OK(5), "truncated" },
    { "epoch 6 truncated inside /identities", TRUNC, 6, A_IDENTS, 5, OK(5), "truncated" },
    { "epoch 6 truncated one byte before the end of its data", TRUNC, 6, A_DATA_END_M1, 0, OK(5), "truncated" },
    { "epoch 6 truncated after all its data (HDF5 metadata only)", TRUNC, 6, A_AFTER_DATA, 0, OK(6), NULL },
    /* truncation of the full epoch the newest chain needs: back to 3 */
    { "epoch 4 (full, needed) truncated inside /pages", TRUNC, 4, A_PAGES, 8192, OK(3), "truncated" },
    { "epoch 4 (full, needed) truncated inside the header", TRUNC, 4, A_HEADER, 7, OK(3), "truncated" },
    { "epoch 5 (middle of the chain) truncated inside /ranks", TRUNC, 5, A_RANKS, 3, OK(4), "truncated" },
    /* truncation of an epoch the newest chain does not need: harmless */
    { "epoch 2 (older chain) truncated inside /pages", TRUNC, 2, A_PAGES, 100, OK(6), NULL },
    /* bit flips */
    { "epoch 6 page data bit", FLIP, 6, A_PAGES, 10, COPYFAIL(5), "data checksum mismatch" },
    { "epoch 6 last page data byte", FLIP, 6, A_PAGES_END, -1, COPYFAIL(5), NULL },
    { "epoch 4 (full) page data bit", FLIP, 4, A_PAGES, 40000, COPYFAIL(3), "data checksum mismatch" },
    { "epoch 5 page data bit", FLIP, 5, A_PAGES, 0, COPYFAIL(4), "data checksum mismatch" },
    { "epoch 6 page index row: address", FLIP, 6, A_INDEX, 9, OK(5), "row checksum mismatch" },
    { "epoch 6 page index row: data CRC", FLIP, 6, A_INDEX, 33, OK(5), "row checksum mismatch" },
    { "epoch 4 page index row: flags", FLIP, 4, A_INDEX, 4, OK(3), "row checksum mismatch" },
    { "epoch 6 thread table: context", FLIP, 6, A_THREADS, 100, OK(5), "/threads" },
    { "epoch 6 thread table: second row's CRC", FLIP, 6, A_THREADS, 304 + 302, OK(5), "/threads" },
    { "epoch 6 thread row with an impossible state (CRC valid)", THREAD_STATE, 6, A_THREADS, 0, OK(5), "impossible thread state" },
    { "epoch 6 rank record: extent count", FLIP, 6, A_RANKS, 24, OK(5), "/ranks" },
    { "epoch 6 rank record: hostname", FLIP, 6, A_RANKS, 100, OK(5), "/ranks" },
    { "epoch 5 rank record: CRC", FLIP, 5, A_RANKS, 165, OK(4), "/ranks" },
    { "epoch 6 header: epoch number", FLIP, 6, A_HEADER, 16, OK(5), "header checksum" },
    { "epoch 6 header: dataset offset", FLIP, 6, A_HEADER, 90, OK(5), "header checksum" },
    { "epoch 6 header: identity text", FLIP, 6, A_HDR_IDENT, 3, OK(5), "header checksum" },
    { "epoch 4 header: magic", FLIP, 4, A_HEADER, 0, OK(3), "not a crmpi epoch file" },
    { "epoch 6 /identities text", FLIP, 6, A_IDENTS, 7, OK(5), "/identities" },
    { "epoch 6 HDF5 attribute job_uuid (never read)", FLIP, 6, A_ATTR_UUID, 0, OK(6), NULL },
    { "epoch 6 HDF5 superblock (never read)", FLIP, 6, A_SUPERBLOCK, 3, OK(6), NULL },
    { "epoch 4 HDF5 attribute job_uuid (never read)", FLIP, 4, A_ATTR_UUID, 5, OK(6), NULL },
    /* the index */
    { "index magic", INDEX_FLIP, 0, A_INDEX_MAGIC, 2, REFUSED(CR_ECORRUPT), "bad magic" },
    { "index entry bit", INDEX_FLIP, 0, A_INDEX_ENTRY, 81, REFUSED(CR_ECORRUPT), "index checksum mismatch" },
    { "index CRC", INDEX_FLIP, 0, A_INDEX_CRC, 0, REFUSED(CR_ECORRUPT), "index checksum mismatch" },
    { "index truncated", INDEX_TRUNC, 0, A_INDEX_ENTRY, 100, REFUSED(CR_ECORRUPT), "inconsistent" },
    { "index deleted", INDEX_DEL, 0, 0, 0, REFUSED(CR_ENOCKPT), NULL },
    /* deleted epochs */
    { "epoch 5 deleted (middle of the incremental chain)", DEL, 5, 0, 0, OK(4), "missing" },
    { "epoch 4 deleted (the chain's full epoch)", DEL, 4, 0, 0, OK(3), "missing" },
    { "epoch 6 deleted (newest)", DEL, 6, 0, 0, OK(5), "missing" },
    { "epoch 2 deleted (older chain, not needed)", DEL, 2, 0, 0, OK(6), NULL },
    /* files from elsewhere */
    { "epoch 6 replaced by another job's epoch 6", SWAP_FOREIGN, 6, 0, 0, OK(5), "another job" },
    { "epoch 4 replaced by another job's epoch 4", SWAP_FOREIGN, 4, 0, 0, OK(3), "another job" },
    { "epoch 6 replaced by this job's epoch 5 (renamed)", SWAP_OWN, 6, 0, 5, OK(5), "the index says epoch 6" },
    { "epoch 5 replaced by this job's epoch 4 (full for incremental)", SWAP_OWN, 5, 0, 4, OK(4), "the index says epoch 5" },
    /* ranks */
    { "restored by a job with 2 ranks", RANKS_READER, 0, 0, 0, REFUSED(CR_ERANKS), "this job has 2" },
    { "epoch 6 header says 2 ranks", HDR_NRANKS, 6, 0, 2, OK(5), "/ranks has 1 rows for 2 ranks" },
    { "every epoch's header says another format version", HDR_VERSION, -1, 0, 0, REFUSED(CR_EFORMAT), "format version" },
    { "epoch 6 header says another format version", HDR_VERSION, 6, 0, 0, OK(5), "format version" },
    /* another build of the executable */
    { "epoch 6 written by another build", BUILD, 6, 0, 0, OK(5), "another build" },
    { "epoch 4 (full) written by another build", BUILD, 4, 0, 0, OK(3), "another build" },
    { "every epoch written by another build", BUILD, -1, 0, 0, REFUSED(CR_EMISMATCH), "another build" },
};

/* ---- the directories -------------------------------------------------------- */

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = (seed + i) * 0x9e3779b97f4a7c15ULL;
        v ^= v >> 29;
        memcpy(p + i, &v, 8);
    }
}

static int write_dir(const char *d, uint64_t salt, int keep_snap)
{
    struct cr_store *st;
    struct cr_store_opts o = { .full_every = 3, .keep = 100, .align = 4096 };
    if (cr_store_open(&st, d, cr_coll_self(), &o) < 0)
        return -1;
    uint8_t dirty[NPAGES], zeroed[NPAGES];
    memset(cur, 0, sizeof cur);
    for (int e = 1; e <= NEPOCHS; e++) {
        for (size_t p = 0; p < NPAGES; p++) {
            dirty[p] = e == 1 || (p * 7 + (size_t)e) % 4 == 0;
            zeroed[p] = e > 1 && !dirty[p] && (p + (size_t)e) % 9 == 0;
            if (dirty[p])
                fill(cur + p * PSZ, PSZ, salt + (uint64_t)e * 1000 + p);
            if (zeroed[p])
                memset(cur + p * PSZ, 0, PSZ);
        }
        uint64_t got;
        if (th_write_epoch(st, &mem, cr_store_next_is_full(st), dirty, zeroed, 3, &got) < 0 ||
            got != (uint64_t)e)
            return -1;
        if (keep_snap)
            memcpy(snap[e], cur, sizeof cur);
    }
    cr_store_close(st);
    return 0;
}

static int setup(void)
{
    setenv("CRMPI_LOG", "error", 1);
    unsetenv("CRMPI_FAULT");
    if (cr_config_reload() < 0)
        return -1;
    pristine = cutest_tmpdir("matrix");
    foreign = cutest_tmpdir("matrix-foreign");
    if (!pristine || !foreign)
        return -1;
    return write_dir(pristine, 0, 1) || write_dir(foreign, 777, 0) ? -1 : 0;
}

static int teardown(void)
{
    cutest_rmtree(pristine);
    cutest_rmtree(foreign);
    free(pristine);
    free(foreign);
    return 0;
}

/* ---- applying a row's damage ----------------------------------------------- */

static void epath(char *out, size_t n, const char *d, int e)
{
    snprintf(out, n, "%s/" CR_EPOCH_FMT, d, (unsigned long long)e);
}

static int read_header(const char *p, struct cr_epoch_header *h)
{
    int fd = open(p, O_RDONLY);
    int ok = fd >= 0 && pread(fd, h, sizeof *h, 0) == sizeof *h;
    if (fd >= 0)
        close(fd);
    return ok ? 0 : -1;
}

static int64_t find_bytes(const char *p, const void *needle, size_t n, uint64_t from)
{
    size_t len = th_file_size(p);
    uint8_t *b = malloc(len);
    int fd = open(p, O_RDONLY);
    int64_t at = -1;
    if (b && fd >= 0 && pread(fd, b, len, 0) == (ssize_t)len)
        for (size_t i = from; i + n <= len; i++)
            if (!memcmp(b + i, needle, n)) {
                at = (int64_t)i;
                break;
            }
    if (fd >= 0)
        close(fd);
    free(b);
    return at;
}

/* Absolute offset of an anchor (-1 if it cannot be resolved). */
static int64_t anchor(const char *p, enum anchor a)
{
    struct cr_epoch_header h;
    if (a == A_ZERO)
        return 0;
    if (a == A_INDEX_MAGIC)
        return 0;
    if (a == A_INDEX_ENTRY)
        return sizeof(struct cr_index_header);
    if (a == A_INDEX_CRC)
        return (int64_t)th_file_size(p) - 4;
    if (read_header(p, &h) < 0)
        return -1;
    uint64_t end = 0;
    for (int i = 0; i < CR_DS_COUNT; i++)
        end = CR_MAX(end, h.ds[i].offset + h.ds[i].bytes);
    switch (a) {
    case A_HEADER:      return 0;
    case A_HDR_IDENT:   return sizeof h;
    case A_PAGES:       return (int64_t)h.ds[CR_DS_ID_PAGES].offset;
    case A_INDEX:       return (int64_t)h.ds[CR_DS_ID_INDEX].offset;
    case A_THREADS:     return (int64_t)h.ds[CR_DS_ID_THREADS].offset;
    case A_RANKS:       return (int64_t)h.ds[CR_DS_ID_RANKS].offset;
    case A_IDENTS:      return (int64_t)h.ds[CR_DS_ID_IDENT].offset;
    case A_DATA_END_M1: return (int64_t)end - 1;
    case A_PAGES_END:   return (int64_t)(h.ds[CR_DS_ID_PAGES].offset + h.ds[CR_DS_ID_PAGES].bytes);
    case A_AFTER_DATA:  return end < th_file_size(p) ? (int64_t)end : -1;
    case A_SUPERBLOCK:  return h.userblock;
    case A_ATTR_UUID: {
        char hex[2 * CR_UUID_BYTES + 1];
        for (int i = 0; i < CR_UUID_BYTES; i++)
            snprintf(hex + 2 * i, 3, "%02x", h.job_uuid[i]);
        return find_bytes(p, hex, 2 * CR_UUID_BYTES, h.userblock);
    }
    default:            return -1;
    }
}

static void edit_version(struct cr_epoch_header *h, char *id, void *arg) { h->version = 2; }
static void edit_nranks(struct cr_epoch_header *h, char *id, void *arg) { h->nranks = *(int *)arg; }
static void edit_build(char *id, void *arg) { id[0] = id[0] == 'a' ? 'b' : 'a'; }

static int copy_file(const char *from, const char *to)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    return system(cmd) == 0 ? 0 : -1;
}

static int damage(const struct row *r, const char *d)
{
    char p[4200], q[4200];
    int64_t off;
    if (r->file > 0)
        epath(p, sizeof p, d, r->file);
    else
        snprintf(p, sizeof p, "%s/index", d);
    switch (r->what) {
    case NONE: case RANKS_READER:
        return 0;
    case TRUNC: case INDEX_TRUNC:
        off = anchor(p, r->at);
        return off < 0 ? -1 : th_truncate(p, (uint64_t)(off + r->delta));
    case FLIP: case INDEX_FLIP:
        off = anchor(p, r->at);
        return off < 0 ? -1 : th_flip(p, (uint64_t)(off + r->delta), 0x04);
    case DEL:
        return unlink(p);
    case INDEX_DEL:
        return unlink(p);
    case SWAP_FOREIGN:
        epath(q, sizeof q, foreign, r->file);
        return copy_file(q, p);
    case SWAP_OWN:
        epath(q, sizeof q, d, r->delta);
        return copy_file(q, p);
    case THREAD_STATE: {
        /* a well-formed row (valid CRC) with a state no writer produces */
        struct cr_thread_row t;
        int fd = open(p, O_RDWR);
        off = anchor(p, A_THREADS);
        int ok = fd >= 0 && off > 0 && pread(fd, &t, sizeof t, off) == sizeof t;
        t.state = 7;
        t.crc = cr_record_crc(&t, sizeof t);
        ok = ok && pwrite(fd, &t, sizeof t, off) == sizeof t;
        if (fd >= 0)
            close(fd);
        return ok ? 0 : -1;
    }
    case HDR_NRANKS: {
        int n = r->delta;
        return th_edit_header(p, edit_nranks, &n);
    }
    case HDR_VERSION: case BUILD:
        for (int e = r->file < 0 ? 1 : r->file; e <= (r->file < 0 ? NEPOCHS : r->file); e++) {
            epath(p, sizeof p, d, e);
            int rc = r->what == BUILD ? th_edit_identity(p, 0, edit_build, NULL)
                                      : th_edit_header(p, edit_version, NULL);
            if (rc < 0)
                return -1;
        }
        return 0;
    }
    return -1;
}

/* ---- running a row ----------------------------------------------------------- */

struct verdict { int first_rc, rc; uint64_t epoch; int match; int damaged; };

static int two_min(struct cr_coll *c, int64_t *v) { return 0; }
static int two_bcast(struct cr_coll *c, void *b, size_t n, int root) { return 0; }

/* In the child: damage a copy, restore as a restarting rank does. */
static struct verdict child(const struct row *r, const char *d)
{
    static uint8_t out[NPAGES * PSZ];
    struct verdict v = { 0 };
    v.damaged = damage(r, d) == 0;
    struct cr_coll two = *cr_coll_self(), *coll = cr_coll_self();
    if (r->what == RANKS_READER) {
        two.size = 2;
        two.allreduce_min = two_min;
        two.bcast = two_bcast;
        coll = &two;
    }
    struct cr_store *st;
    struct cr_store_opts o = { .full_every = 3, .keep = 100, .align = 4096 };
    v.rc = cr_store_open(&st, d, coll, &o);
    if (v.rc < 0)
        return v;
    struct cr_restore_info info = { 0 };
    v.rc = th_restore(st, 0, out, NPAGES, &info, NULL, 0);
    v.first_rc = v.rc;
    if (v.rc == CR_ECORRUPT)
        v.rc = th_restore(st, 0, out, NPAGES, &info, NULL, 0);
    if (v.rc == 0) {
        v.epoch = info.epoch;
        v.match = info.epoch >= 1 && info.epoch <= NEPOCHS &&
                  !memcmp(out, snap[info.epoch], sizeof out);
    }
    cr_store_close(st);
    return v;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    char *b = calloc(1, 1 << 20);
    size_t n = fread(b, 1, (1 << 20) - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

static int run_row(const struct row *r)
{
    char *d = cutest_tmpdir("matrix-row"), log[4200], cmd[9000];
    snprintf(cmd, sizeof cmd, "cp -a '%s'/. '%s'/", pristine, d);
    CU_ASSERT_FATAL(system(cmd) == 0);
    snprintf(log, sizeof log, "%s.log", d);
    int p[2];
    CU_ASSERT_FATAL(pipe(p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        if (!freopen(log, "w", stderr))
            _exit(3);
        struct verdict v = child(r, d);
        _exit(write(p[1], &v, sizeof v) == sizeof v ? 0 : 4);
    }
    close(p[1]);
    struct verdict v;
    int got = read(p[0], &v, sizeof v) == sizeof v;
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    char *text = slurp(log);
    int fails = 0;
#define CHECK(cond, ...) do { if (!(cond)) { fails++; \
        fprintf(stderr, "\n  row '%s': ", r->name); fprintf(stderr, __VA_ARGS__); } } while (0)
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && got,
          "the reader crashed or failed to report (status 0x%x)", status);
    if (got) {
        CHECK(v.damaged, "the damage could not be applied");
        if (r->epoch) {
            CHECK(v.rc == 0 && v.epoch == (uint64_t)r->epoch,
                  "expected epoch %d, got rc %d (%s) epoch %llu", r->epoch, v.rc,
                  cr_strerror(v.rc), (unsigned long long)v.epoch);
            CHECK(v.rc != 0 || v.match, "restored bytes differ from epoch %llu's contents",
                  (unsigned long long)v.epoch);
            CHECK(v.first_rc == (r->first_rc ? r->first_rc : 0),
                  "first attempt returned %d (%s), expected %d", v.first_rc,
                  cr_strerror(v.first_rc), r->first_rc);
        } else {
            CHECK(v.rc == r->refuse_rc, "expected refusal %d (%s), got %d (%s)", r->refuse_rc,
                  cr_strerror(r->refuse_rc), v.rc, cr_strerror(v.rc));
        }
    }
    CHECK(!r->msg || strstr(text, r->msg), "the log does not say \"%s\":\n%s", r->msg, text);
    if (fails && getenv("MATRIX_VERBOSE"))
        fprintf(stderr, "%s\n", text);
    free(text);
    unlink(log);
    cutest_rmtree(d);
    free(d);
    return fails;
}

static void test_every_row_of_the_corruption_matrix(void)
{
    unsigned failed = 0;
    for (size_t i = 0; i < CR_ARRAY_SIZE(rows); i++) {
        int f = run_row(&rows[i]);
        failed += f != 0;
        CU_ASSERT_EQUAL(f, 0);
    }
    fprintf(stderr, "\n  corruption matrix: %zu rows, %u failed\n", CR_ARRAY_SIZE(rows), failed);
}

/* The matrix is only meaningful if the directory it damages is what the
 * rows assume: six epochs, 1 and 4 full, the attribute and the bytes
 * after the data present. */
static void test_pristine_directory_has_the_assumed_shape(void)
{
    struct cr_index ix;
    CU_ASSERT_EQUAL_FATAL(cr_index_read(pristine, &ix), 0);
    CU_ASSERT_EQUAL(ix.n, NEPOCHS);
    for (uint32_t i = 0; i < ix.n; i++)
        CU_ASSERT_EQUAL(!!(ix.e[i].flags & CR_ENTRY_FULL), i == 0 || i == 3);
    cr_index_free(&ix);
    char p[4200];
    for (int e = 1; e <= NEPOCHS; e++) {
        epath(p, sizeof p, pristine, e);
        CU_ASSERT(anchor(p, A_ATTR_UUID) > 0);
        CU_ASSERT(anchor(p, A_AFTER_DATA) > 0);
        CU_ASSERT(anchor(p, A_THREADS) > 0);
    }
}

static CU_TestInfo tests[] = {
    CUTEST(test_pristine_directory_has_the_assumed_shape),
    CUTEST(test_every_row_of_the_corruption_matrix),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    { "corruption_matrix", setup, teardown, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
