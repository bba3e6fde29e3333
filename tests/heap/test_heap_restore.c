/*
 * test_heap_restore.c - the heap survives a restore into a new process.
 *
 * test_restore_into_fresh_process runs this binary twice more (fork+exec, so
 * nothing is inherited):
 *   --fill DIR     builds a heap with two threads, captures the region's
 *                  populated pages (image a), frees half of the blocks (some
 *                  from the other thread, left queued as remote frees),
 *                  releases free pages, captures again (image b), and exits
 *                  with its threads still running;
 *   --restore DIR  maps a region at the same address, writes image a and
 *                  then image b over it - so released pages hold stale data
 *                  from a, as when a restore applies older epochs first -
 *                  attaches the heap, verifies every live block, checks the
 *                  invariants, and keeps allocating (calloc must zero the
 *                  stale pages, nothing may overlap a live block) from the
 *                  main thread and two new threads that adopt the dead
 *                  threads' caches.
 * Also in-process: a rollback of a live process (region bytes written back
 * under it) followed by cr_heap_after_restore, and refusal of a region that
 * has no heap root or a damaged one.
 */
#include "cutest.h"
#include "heap_testutil.h"
#include "heap/heap_internal.h"

#include <pthread.h>
#include <sys/wait.h>

#define MiB (1024UL * 1024)
#define REGION_MAX (512 * MiB)
#define NREC 12000
#define IMG_MAGIC 0x474d495041454843ULL

struct rec { void *p; size_t size; };
struct table { uint64_t magic; struct rec *rec; };

static size_t rec_size(unsigned long long r)
{
    return r % 50 == 0 ? 20000 + r % 600000 : r % 2000;
}

/* ---- region images: populated extents of the region ---------------------- */

/* Raw bytes of the region, free (poisoned) objects included: like the
 * checkpoint engine, read them without the sanitizer's view. */
__attribute__((no_sanitize_address))
static void raw_copy(unsigned char *dst, const unsigned char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

static int write_extent(const struct cr_extent *e, void *arg)
{
    FILE *f = arg;
    uint64_t h[2] = { e->addr, e->len };
    unsigned char *buf = malloc(e->len);
    if (!buf)
        return -ENOMEM;
    raw_copy(buf, (const unsigned char *)e->addr, e->len);
    int ok = fwrite(h, sizeof h, 1, f) == 1 && fwrite(buf, e->len, 1, f) == 1;
    free(buf);
    return ok ? 0 : -EIO;
}

static int image_save(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -errno;
    uint64_t h[2] = { IMG_MAGIC, cr_region_size() };
    int rc = fwrite(h, sizeof h, 1, f) == 1 ? cr_region_collect_populated(write_extent, f) : -EIO;
    uint64_t end[2] = { 0, 0 };
    if (!rc && fwrite(end, sizeof end, 1, f) != 1)
        rc = -EIO;
    return fclose(f) || rc ? -EIO : 0;
}

static int image_load(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    uint64_t h[2];
    if (!f || fread(h, sizeof h, 1, f) != 1 || h[0] != IMG_MAGIC || cr_region_grow(h[1]))
        return -EIO;
    for (;;) {
        if (fread(h, sizeof h, 1, f) != 1)
            break;
        if (!h[1]) {
            fclose(f);
            return 0;
        }
        /* Through a buffer: read(2) straight into the region would fail
         * under the mprotect tracker (the kernel cannot take its fault). */
        unsigned char *buf = cr_region_contains((void *)h[0], h[1]) ? malloc(h[1]) : NULL;
        int ok = buf && fread(buf, h[1], 1, f) == 1;
        if (ok)
            raw_copy((unsigned char *)h[0], buf, h[1]);
        free(buf);
        if (!ok)
            break;
    }
    fclose(f);
    return -EIO;
}

static int region_open_test(void)
{
    struct cr_region_params p = { .base = TEST_BASE, .max_size = REGION_MAX };
    return cr_region_open(&p);
}

/* ---- --fill -------------------------------------------------------------- */

static struct table *tab;
static pthread_barrier_t phase;

static void *fill_thread(void *arg)
{
    long t = (long)arg;
    unsigned long long rng = 77 + (unsigned long long)t;
    for (int i = (int)t; i < NREC; i += 2) {
        size_t sz = rec_size(rng = rng * 6364136223846793005ULL + 1442695040888963407ULL);
        tab->rec[i].p = crmalloc(sz);
        tab->rec[i].size = sz;
        pat_fill(tab->rec[i].p, sz);
    }
    pthread_barrier_wait(&phase);           /* image a */
    pthread_barrier_wait(&phase);
    /* Free half of the blocks: thread 0 frees its own i%4==0 and a quarter
     * of thread 1's (i%8==1: remote frees thread 1 never drains), thread 1
     * the rest of i%4==1. */
    for (int i = 0; i < NREC; i++)
        if ((i % 2 == t && i % 4 < 2 && i % 8 != 1) || (t == 0 && i % 8 == 1)) {
            crfree(tab->rec[i].p);
            tab->rec[i].p = NULL;
        }
    pthread_barrier_wait(&phase);           /* image b */
    pthread_barrier_wait(&phase);           /* never passed: exits with us */
    return NULL;
}

static int child_fill(const char *dir)
{
    if (region_open_test() || cr_heap_init(CR_HEAP_FRESH))
        return 10;
    tab = crmalloc(sizeof *tab);
    tab->magic = IMG_MAGIC;
    tab->rec = crcalloc(NREC, sizeof(struct rec));
    cr_region_set_root(CR_ROOT_USER, tab);
    pthread_barrier_init(&phase, NULL, 3);
    pthread_t t0, t1;
    pthread_create(&t0, NULL, fill_thread, (void *)0L);
    pthread_create(&t1, NULL, fill_thread, (void *)1L);
    pthread_barrier_wait(&phase);
    if (cr_heap_check() || image_save(dir, "a.img"))
        return 11;
    pthread_barrier_wait(&phase);
    pthread_barrier_wait(&phase);
    if (cr_heap_trim() || cr_heap_check() || image_save(dir, "b.img"))
        return 12;
    _exit(0);                               /* threads die mid-barrier */
}

/* ---- --restore ------------------------------------------------------------ */

#define FAILX(...) do { fprintf(stderr, "restore: " __VA_ARGS__); fputc('\n', stderr); return 1; } while (0)

static int verify_table(long *live)
{
    *live = 0;
    for (int i = 0; i < NREC; i++) {
        struct rec *r = &tab->rec[i];
        if (!r->p)
            continue;
        if (!pat_ok(r->p, r->size) || cr_malloc_usable_size(r->p) < r->size)
            FAILX("block %d (%p, %zu bytes) damaged", i, r->p, r->size);
        ++*live;
    }
    return 0;
}

struct newblk { struct rec r[3000]; int n; long bad; unsigned long long rng; };

static void *more_work(void *arg)
{
    struct newblk *nb = arg;
    for (int k = 0; k < 6000; k++) {
        unsigned long long x = nb->rng = nb->rng * 6364136223846793005ULL + 1;
        if (nb->n < 3000 && (x >> 33) % 3) {
            size_t sz = rec_size(x >> 20);
            unsigned char *p = (x >> 40) % 2 ? crcalloc(1, sz) : crmalloc(sz);
            if (!p) {
                nb->bad++;
                continue;
            }
            if ((x >> 40) % 2)
                for (size_t i = 0; i < sz; i++)
                    if (p[i]) {
                        nb->bad++;
                        break;
                    }
            pat_fill(p, sz);
            nb->r[nb->n++] = (struct rec){ p, sz };
        } else if (nb->n) {
            struct rec *r = &nb->r[(x >> 24) % (unsigned)nb->n];
            if (!pat_ok(r->p, r->size))
                nb->bad++;
            crfree(r->p);
            *r = nb->r[--nb->n];
        }
    }
    return NULL;
}

static int cmp_rec(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct rec *)a)->p, y = (uintptr_t)((const struct rec *)b)->p;
    return x < y ? -1 : x > y;
}

/* Every live block, old and new, is intact and none overlaps another. */
static int no_overlap(struct newblk *nb, int nnb)
{
    size_t n = 0, cap = NREC + 3000 * (size_t)nnb;
    struct rec *all = malloc(cap * sizeof *all);
    for (int i = 0; i < NREC; i++)
        if (tab->rec[i].p)
            all[n++] = tab->rec[i];
    for (int k = 0; k < nnb; k++)
        for (int i = 0; i < nb[k].n; i++)
            all[n++] = nb[k].r[i];
    qsort(all, n, sizeof *all, cmp_rec);
    for (size_t i = 0; i < n; i++) {
        if (!pat_ok(all[i].p, all[i].size))
            FAILX("block %p (%zu bytes) damaged", all[i].p, all[i].size);
        if (i + 1 < n && (char *)all[i].p + cr_malloc_usable_size(all[i].p) > (char *)all[i + 1].p)
            FAILX("blocks %p and %p overlap", all[i].p, all[i + 1].p);
    }
    free(all);
    return 0;
}

static int child_restore(const char *dir)
{
    long live;
    if (region_open_test() || image_load(dir, "a.img") || image_load(dir, "b.img"))
        FAILX("cannot load the images");
    int rc = cr_heap_init(CR_HEAP_RESTORED);
    if (rc)
        FAILX("cr_heap_init(RESTORED): %s", cr_strerror(rc));
    tab = cr_region_root(CR_ROOT_USER);
    if (!tab || tab->magic != IMG_MAGIC)
        FAILX("no table");
    if (verify_table(&live) || live != NREC / 2)
        FAILX("%ld live blocks, expected %d", live, NREC / 2);
    if (cr_heap_check())
        FAILX("heap check after restore");
    struct cr_heap_stats st;
    if (cr_heap_stats(&st) || st.caches_in_use != 0 || st.caches_total != 3)
        FAILX("caches: %u in use, %u total (expected 0 and 3)", st.caches_in_use, st.caches_total);
    static struct newblk nb[3];
    nb[0].rng = 1;
    nb[1].rng = 2;
    nb[2].rng = 3;
    pthread_t t1, t2;
    pthread_create(&t1, NULL, more_work, &nb[1]);
    pthread_create(&t2, NULL, more_work, &nb[2]);
    more_work(&nb[0]);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    if (nb[0].bad + nb[1].bad + nb[2].bad)
        FAILX("new blocks damaged or calloc not zero");
    if (cr_heap_stats(&st) || st.caches_total != 3)
        FAILX("new threads did not adopt the dead threads' caches (%u caches)", st.caches_total);
    if (no_overlap(nb, 3) || cr_heap_check())
        FAILX("overlap or heap check after more work");
    for (int i = 0; i < NREC; i++)
        crfree(tab->rec[i].p);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < nb[k].n; i++)
            crfree(nb[k].r[i].p);
    crfree(tab->rec);
    crfree(tab);
    if (cr_heap_trim() || cr_heap_stats(&st) || st.live_bytes || cr_heap_check())
        FAILX("heap not empty at the end (%zu live bytes)", st.live_bytes);
    printf("restore: %ld blocks verified, %d new blocks, PASS\n", live, nb[0].n + nb[1].n + nb[2].n);
    return 0;
}

/* ---- the tests ---------------------------------------------------------- */

static int run_self(const char *mode, const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "test_heap_restore", mode, dir, (char *)NULL);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_restore_into_fresh_process(void)
{
    char *dir = cutest_tmpdir("heap-restore");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    CU_ASSERT_EQUAL_FATAL(run_self("--fill", dir), 0);
    CU_ASSERT_EQUAL(run_self("--restore", dir), 0);
    cutest_rmtree(dir);
    free(dir);
}

static int snap_extent(const struct cr_extent *e, void *arg)
{
    FILE *f = arg;
    return write_extent(e, f);
}

static void test_in_place_rollback_then_after_restore(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(REGION_MAX), 0);
    enum { N = 3000 };
    static struct rec r[N];
    for (int i = 0; i < N; i++) {
        r[i].size = rec_size((unsigned long long)i * 7919);
        pat_fill(r[i].p = crmalloc(r[i].size), r[i].size);
    }
    char *snap = NULL;
    size_t snaplen = 0;
    FILE *f = open_memstream(&snap, &snaplen);
    CU_ASSERT_EQUAL_FATAL(cr_region_collect_populated(snap_extent, f), 0);
    fclose(f);
    /* After the snapshot: free everything, scribble over new memory, grow
     * the top. A rollback writes the snapshot's pages back and nothing else. */
    for (int i = 0; i < N; i++)
        crfree(r[i].p);
    for (int i = 0; i < 200; i++)
        memset(crmalloc(300000), 0x5a, 300000);
    for (size_t off = 0; off < snaplen;) {
        uint64_t *h = (uint64_t *)(snap + off);
        raw_copy((unsigned char *)h[0], (const unsigned char *)(h + 2), h[1]);
        off += 16 + h[1];
    }
    free(snap);
    CU_ASSERT_EQUAL_FATAL(cr_heap_after_restore(), 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    for (int i = 0; i < N; i++)
        CU_ASSERT(pat_ok(r[i].p, r[i].size));
    for (int i = 0; i < 100; i++) {            /* stale bytes above the old top */
        unsigned char *z = crcalloc(1, 500000);
        CU_ASSERT_PTR_NOT_NULL_FATAL(z);
        int zero = 1;
        for (size_t k = 0; k < 500000; k++)
            zero &= !z[k];
        CU_ASSERT(zero);
    }
    for (int i = 0; i < N; i++)
        crfree(r[i].p);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_restore_refuses_missing_or_damaged_root(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(REGION_MAX), 0);
    struct capture c;
    stderr_begin(&c);
    struct heap_root *r = cr_region_root(CR_ROOT_HEAP);
    r->layout ^= 1;
    int rc1 = cr_heap_init(CR_HEAP_RESTORED);
    r->layout ^= 1;
    uint32_t top = r->top;
    r->top = r->max_pages + 1;
    int rc2 = cr_heap_init(CR_HEAP_RESTORED);
    r->top = top;
    cr_region_set_root(CR_ROOT_HEAP, NULL);
    int rc3 = cr_heap_init(CR_HEAP_RESTORED);
    char *out = stderr_end(&c);
    CU_ASSERT_EQUAL(rc1, CR_EFORMAT);
    CU_ASSERT_EQUAL(rc2, CR_ECORRUPT);
    CU_ASSERT_EQUAL(rc3, CR_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no heap root"));
    free(out);
    cr_region_set_root(CR_ROOT_HEAP, r);
    CU_ASSERT_EQUAL(cr_heap_init(CR_HEAP_RESTORED), 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

/* Restore the heap built in a region of REGION_MAX into one of max bytes
 * at the same address (CRMPI_REGION_MAX changed between runs). */
static void restore_into_region_of(size_t max)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(REGION_MAX), 0);
    enum { N = 2000 };
    static struct rec r[N];
    for (int i = 0; i < N; i++) {
        r[i].size = rec_size((unsigned long long)i * 104729);
        pat_fill(r[i].p = crmalloc(r[i].size), r[i].size);
    }
    char *snap = NULL;
    size_t snaplen = 0;
    FILE *f = open_memstream(&snap, &snaplen);
    CU_ASSERT_EQUAL_FATAL(cr_region_collect_populated(snap_extent, f), 0);
    fclose(f);
    size_t size = cr_region_size();
    cr_heap_detach();
    CU_ASSERT_EQUAL_FATAL(cr_region_close(), 0);
    struct cr_region_params p = { .base = TEST_BASE, .max_size = max };
    CU_ASSERT_EQUAL_FATAL(cr_region_open(&p), 0);
    CU_ASSERT_EQUAL_FATAL(cr_region_grow(size), 0);
    for (size_t off = 0; off < snaplen;) {
        uint64_t *h = (uint64_t *)(snap + off);
        raw_copy((unsigned char *)h[0], (const unsigned char *)(h + 2), h[1]);
        off += 16 + h[1];
    }
    free(snap);
    CU_ASSERT_EQUAL_FATAL(cr_heap_init(CR_HEAP_RESTORED), 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    for (int i = 0; i < N; i++) {
        CU_ASSERT(pat_ok(r[i].p, r[i].size));
        crfree(r[i].p);
    }
    void *big = crmalloc(8 << 20);
    CU_ASSERT_PTR_NOT_NULL(big);
    crfree(big);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_restore_into_larger_region_max(void)
{
    restore_into_region_of(2 * REGION_MAX);
}

static void test_restore_into_smaller_region_max_that_holds_the_top(void)
{
    restore_into_region_of(REGION_MAX / 2);
}

static CU_TestInfo tests[] = {
    CUTEST(test_restore_into_fresh_process),
    CUTEST(test_in_place_rollback_then_after_restore),
    CUTEST(test_restore_refuses_missing_or_damaged_root),
    CUTEST(test_restore_into_larger_region_max),
    CUTEST(test_restore_into_smaller_region_max_that_holds_the_top),
    CU_TEST_INFO_NULL
};
static CU_SuiteInfo suites[] = {
    { "restore", NULL, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL
};

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--fill"))
        return child_fill(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--restore"))
        return child_restore(argv[2]);
    return cutest_main(argc, argv, suites);
}
