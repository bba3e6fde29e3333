/*
 * test_heap.c - the persistent heap case by case: glibc semantics of the
 * malloc family, misuse (foreign, interior and double frees), exhaustion at
 * the region's maximum, release of freed pages to the region's tracker, and
 * that the invariant checker does catch a damaged heap.
 */
#include "cutest.h"
#include "heap_testutil.h"
#include "heap/heap_internal.h"
#include "common/config.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#define MiB (1024UL * 1024)

static size_t live_bytes(void)
{
    struct cr_heap_stats st;
    CU_ASSERT_EQUAL_FATAL(cr_heap_stats(&st), 0);
    return st.live_bytes;
}

static void test_malloc_zero_returns_unique_freeable_pointers(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *a = crmalloc(0), *b = crmalloc(0);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_NOT_NULL(b);
    CU_ASSERT_PTR_NOT_EQUAL(a, b);
    CU_ASSERT(cr_malloc_usable_size(a) >= 1);
    crfree(a);
    crfree(b);
    CU_ASSERT_EQUAL(live_bytes(), 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_every_size_is_16_aligned_and_usable(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *p[600];
    int n = 0;
    for (size_t sz = 1; sz <= 70000; sz = sz * 5 / 4 + 1, n++) {
        p[n] = crmalloc(sz);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p[n]);
        CU_ASSERT_EQUAL((uintptr_t)p[n] % 16, 0);
        CU_ASSERT(cr_malloc_usable_size(p[n]) >= sz);
        CU_ASSERT(cr_heap_owns(p[n]));
        pat_fill(p[n], cr_malloc_usable_size(p[n]));
    }
    for (int i = 0; i < n; i++) {
        CU_ASSERT(pat_ok(p[i], cr_malloc_usable_size(p[i])));
        crfree(p[i]);
    }
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_calloc_overflow_is_enomem(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    volatile size_t half = SIZE_MAX / 2, big = (size_t)1 << 33;
    errno = 0;
    CU_ASSERT_PTR_NULL(crcalloc(half, 3));
    CU_ASSERT_EQUAL(errno, ENOMEM);
    errno = 0;
    CU_ASSERT_PTR_NULL(crcalloc(big, big));
    CU_ASSERT_EQUAL(errno, ENOMEM);
    void *z = crcalloc(0, 16);
    CU_ASSERT_PTR_NOT_NULL(z);
    crfree(z);
}

static int all_zero(const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((const unsigned char *)p)[i])
            return 0;
    return 1;
}

static void test_calloc_zeroes_reused_small_and_large_memory(void)
{
    static const size_t sizes[] = { 24, 1000, 16384, 40000, 300000, 3 * MiB };
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    for (size_t i = 0; i < CR_ARRAY_SIZE(sizes); i++) {
        void *p = crmalloc(sizes[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memset(p, 0xa5, sizes[i]);
        crfree(p);
        void *q = crcalloc(1, sizes[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(q);
        CU_ASSERT(all_zero(q, sizes[i]));
        crfree(q);
    }
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_fresh_heap_over_a_used_region_starts_clean(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    for (int i = 0; i < 50; i++)
        memset(crmalloc(1 * MiB), 0xee, 1 * MiB);      /* left behind */
    for (int i = 0; i < 2000; i++)
        memset(crmalloc(300), 0xee, 300);
    CU_ASSERT_EQUAL_FATAL(cr_heap_init(CR_HEAP_FRESH), 0);  /* same region */
    CU_ASSERT_EQUAL(live_bytes(), 0);
    for (int i = 0; i < 50; i++) {
        unsigned char *z = crcalloc(1, 1 * MiB);
        CU_ASSERT_PTR_NOT_NULL_FATAL(z);
        CU_ASSERT(all_zero(z, 1 * MiB));
    }
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_realloc_null_is_malloc(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *p = crrealloc(NULL, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(cr_malloc_usable_size(p) >= 100);
    crfree(p);
    CU_ASSERT_EQUAL(live_bytes(), 0);
}

static void test_realloc_to_zero_frees_and_returns_null(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *p = crmalloc(100), *q = crmalloc(100000);
    CU_ASSERT_PTR_NULL(crrealloc(p, 0));
    CU_ASSERT_PTR_NULL(crrealloc(q, 0));
    CU_ASSERT_EQUAL(live_bytes(), 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_realloc_keeps_contents_across_classes(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    static const size_t steps[] = { 10, 100, 5000, 20000, 700000, 30000, 64, 8 };
    unsigned char *p = crmalloc(1);
    p[0] = 77;
    size_t prev = 1;
    for (size_t i = 0; i < CR_ARRAY_SIZE(steps); i++) {
        for (size_t j = 1; j < prev && j < steps[i]; j++)
            CU_ASSERT_EQUAL_FATAL(p[j], (unsigned char)(j * 7));
        p = crrealloc(p, steps[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_EQUAL(p[0], 77);
        for (size_t j = 1; j < steps[i]; j++)
            p[j] = (unsigned char)(j * 7);
        prev = steps[i];
    }
    crfree(p);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_realloc_grows_large_in_place_into_free_neighbour(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *a = crmalloc(100000), *b = crmalloc(400000), *c = crmalloc(100000);
    pat_fill(a, 100000);
    crfree(b);
    void *a2 = crrealloc(a, 450000);
    CU_ASSERT_PTR_EQUAL(a2, a);
    CU_ASSERT(pat_ok(a2, 100000));
    void *a3 = crrealloc(a2, 50000);     /* shrink in place, tail freed */
    CU_ASSERT_PTR_EQUAL(a3, a);
    CU_ASSERT_EQUAL(cr_malloc_usable_size(a3), 13 * 4096);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    void *top = crmalloc(2 * MiB);       /* no free extent fits: at the top */
    CU_ASSERT_PTR_EQUAL(crrealloc(top, 3 * MiB), top);
    crfree(a3);
    crfree(c);
    crfree(top);
    CU_ASSERT_EQUAL(live_bytes(), 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

/* Free extents of 65..79 pages share one bin; the only one that fits a
 * request ends at the top, behind more than the bin scan looks at. */
static void test_fit_deep_in_a_bin_at_the_top_is_used_not_lost(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    enum { N = 40 };
    void *hole[N], *sep[N];
    for (int i = 0; i < N; i++) {
        hole[i] = crmalloc(65 * 4096);
        sep[i] = crmalloc(20000);
    }
    void *last = crmalloc(70 * 4096);          /* ends at the top */
    crfree(last);
    for (int i = 0; i < N; i++)
        crfree(hole[i]);                       /* pushed after it: scanned first */
    struct cr_heap_stats before, after;
    CU_ASSERT_EQUAL(cr_heap_stats(&before), 0);
    void *p = crmalloc(68 * 4096);
    CU_ASSERT_PTR_EQUAL(p, last);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    CU_ASSERT_EQUAL(cr_heap_stats(&after), 0);
    CU_ASSERT_EQUAL(after.heap_bytes, before.heap_bytes);
    crfree(p);
    for (int i = 0; i < N; i++)
        crfree(sep[i]);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_realloc_small_shrink_stays_in_place(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *p = crmalloc(200);
    CU_ASSERT_PTR_EQUAL(crrealloc(p, 150), p);
    CU_ASSERT_PTR_EQUAL(crrealloc(p, 224), p);
    crfree(p);
}

static void test_posix_memalign_rejects_bad_alignment_with_einval(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *p = (void *)1;
    CU_ASSERT_EQUAL(cr_posix_memalign(&p, 0, 10), EINVAL);
    CU_ASSERT_EQUAL(cr_posix_memalign(&p, 3, 10), EINVAL);
    CU_ASSERT_EQUAL(cr_posix_memalign(&p, 24, 10), EINVAL);
    CU_ASSERT_EQUAL(cr_posix_memalign(&p, 4, 10), EINVAL);   /* < sizeof(void *) */
    CU_ASSERT_PTR_EQUAL(p, (void *)1);                       /* untouched */
    errno = 0;
    CU_ASSERT_PTR_NULL(cr_aligned_alloc(48, 10));
    CU_ASSERT_EQUAL(errno, EINVAL);
}

static void test_posix_memalign_honours_every_alignment(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(512 * MiB), 0);
    static const size_t sizes[] = { 0, 1, 33, 4000, 20000, 100000 };
    for (size_t al = 8; al <= 4 * MiB; al <<= 1)
        for (size_t i = 0; i < CR_ARRAY_SIZE(sizes); i++) {
            void *p = NULL;
            CU_ASSERT_EQUAL_FATAL(cr_posix_memalign(&p, al, sizes[i]), 0);
            CU_ASSERT_EQUAL((uintptr_t)p % al, 0);
            CU_ASSERT(cr_malloc_usable_size(p) >= sizes[i]);
            pat_fill(p, sizes[i]);
            void *q = cr_aligned_alloc(al, sizes[i] + 1);
            CU_ASSERT_PTR_NOT_NULL_FATAL(q);
            CU_ASSERT_EQUAL((uintptr_t)q % al, 0);
            CU_ASSERT(pat_ok(p, sizes[i]));
            crfree(p);
            crfree(q);
        }
    CU_ASSERT_EQUAL(live_bytes(), 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_huge_requests_are_enomem(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    size_t sizes[] = { SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX / 2, 256 * MiB, (size_t)1 << 40 };
    for (size_t i = 0; i < CR_ARRAY_SIZE(sizes); i++) {
        errno = 0;
        CU_ASSERT_PTR_NULL(crmalloc(sizes[i]));
        CU_ASSERT_EQUAL(errno, ENOMEM);
        void *p = crmalloc(10);
        errno = 0;
        CU_ASSERT_PTR_NULL(crrealloc(p, sizes[i]));
        CU_ASSERT_EQUAL(errno, ENOMEM);
        crfree(p);                      /* the failed realloc left p valid */
        void *q = NULL;
        CU_ASSERT_EQUAL(cr_posix_memalign(&q, 64, sizes[i]), ENOMEM);
    }
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_free_null_and_usable_size_null(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    crfree(NULL);
    CU_ASSERT_EQUAL(cr_malloc_usable_size(NULL), 0);
}

/* ---- misuse ---------------------------------------------------------------- */

static void expect_message(void (*op)(void *), void *p, const char *needle)
{
    struct capture c;
    stderr_begin(&c);
    op(p);
    char *out = stderr_end(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    if (!strstr(out, needle))
        fprintf(stderr, "expected '%s' in: %s\n", needle, out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, needle));
    free(out);
}

static void test_free_of_foreign_pointers_is_refused(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *keep = crmalloc(64);
    size_t before = live_bytes();
    int local;
    void *libc = malloc(32);
    expect_message(crfree, &local, "not a pointer from the persistent heap");
    expect_message(crfree, libc, "not a pointer from the persistent heap");
    expect_message(crfree, (void *)(uintptr_t)cr_region_data_start(), "not a pointer from the persistent heap");
    free(libc);
    CU_ASSERT_FALSE(cr_heap_owns(&local));
    CU_ASSERT_EQUAL(live_bytes(), before);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    crfree(keep);
}

static void test_double_free_of_small_object_is_refused(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *a = crmalloc(48), *other = crmalloc(48);
    crfree(a);
    expect_message(crfree, a, "double free");
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    /* had the second free gone through, a would come back twice */
    void *x = crmalloc(48), *y = crmalloc(48);
    CU_ASSERT_PTR_NOT_EQUAL(x, y);
    CU_ASSERT_PTR_NOT_EQUAL(x, other);
    CU_ASSERT_PTR_NOT_EQUAL(y, other);
    crfree(x);
    crfree(y);
    crfree(other);
    CU_ASSERT_EQUAL(live_bytes(), 0);
}

static void *free_in_thread(void *p)
{
    crfree(p);
    return NULL;
}

static void test_double_free_from_another_thread_is_refused(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *a = crmalloc(96);
    pthread_t t;
    pthread_create(&t, NULL, free_in_thread, a);   /* remote free: queued */
    pthread_join(t, NULL);
    struct capture c;
    stderr_begin(&c);
    pthread_create(&t, NULL, free_in_thread, a);   /* remote double free */
    pthread_join(t, NULL);
    crfree(a);                                     /* owner double free */
    char *out = stderr_end(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    char *first = strstr(out, "double free");
    CU_ASSERT_PTR_NOT_NULL(first);
    CU_ASSERT_PTR_NOT_NULL(first ? strstr(first + 1, "double free") : NULL);
    free(out);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    void *x = crmalloc(96), *y = crmalloc(96);
    CU_ASSERT_PTR_NOT_EQUAL(x, y);
    crfree(x);
    crfree(y);
    CU_ASSERT_EQUAL(live_bytes(), 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_double_free_of_large_object_is_refused(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *a = crmalloc(200000), *b = crmalloc(30000);
    crfree(a);
    expect_message(crfree, a, "not a live allocation");
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    void *c = crmalloc(200000);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    crfree(c);
    crfree(b);
    CU_ASSERT_EQUAL(live_bytes(), 0);
}

static void test_interior_pointers_are_refused(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    char *s = crmalloc(100), *l = crmalloc(100000);
    size_t before = live_bytes();
    expect_message(crfree, s + 16, "interior pointer");
    expect_message(crfree, s + 1, "interior pointer");
    expect_message(crfree, l + 8, "interior pointer");
    expect_message(crfree, l + 100000 - 8, "interior pointer");
    expect_message(crfree, l + 50000, "not a live allocation");
    struct capture c;
    stderr_begin(&c);
    size_t us = cr_malloc_usable_size(s + 16);
    char *out = stderr_end(&c);
    CU_ASSERT_EQUAL(us, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "interior pointer"));
    free(out);
    CU_ASSERT_EQUAL(live_bytes(), before);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    crfree(s);
    crfree(l);
}

static void test_checker_reports_a_damaged_slab_and_free_list(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    void *a = crmalloc(32), *b = crmalloc(32);
    crfree(a);
    uint32_t page = heap_page_of(b);
    struct slab *s = slab_of_page(page, heap_map()[page].info);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct capture c;
    stderr_begin(&c);
    s->used++;
    int rc1 = cr_heap_check();
    s->used--;
    void *saved = s->free;
    s->free = (char *)b + 8;                      /* a link into a live object */
    int rc2 = cr_heap_check();
    s->free = saved;
    uint32_t info = heap_map()[0].info;           /* a page map entry */
    heap_map()[0].info = pk_make(PK_FREE_HEAD, 1);
    int rc3 = cr_heap_check();
    heap_map()[0].info = info;
    free(stderr_end(&c));
    CU_ASSERT_EQUAL(rc1, CR_ECORRUPT);
    CU_ASSERT_EQUAL(rc2, CR_ECORRUPT);
    CU_ASSERT_EQUAL(rc3, CR_ECORRUPT);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    crfree(b);
}

/* ---- exhaustion ------------------------------------------------------------ */

static void test_exhaustion_at_region_max_is_enomem_and_recoverable(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(16 * MiB), 0);
    static void *blk[4096];
    size_t n = 0;
    errno = 0;
    while (n < CR_ARRAY_SIZE(blk) && (blk[n] = crmalloc(n % 2 ? 70000 : 3000)))
        pat_fill(blk[n], n % 2 ? 70000 : 3000), n++;
    CU_ASSERT_EQUAL(errno, ENOMEM);
    CU_ASSERT(n > 100);
    CU_ASSERT(cr_region_size() <= 16 * MiB);
    CU_ASSERT_PTR_NULL(crcalloc(1, 1 * MiB));
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT(pat_ok(blk[i], i % 2 ? 70000 : 3000));
        crfree(blk[i]);
    }
    CU_ASSERT_EQUAL(live_bytes(), 0);
    void *big = crmalloc(8 * MiB);               /* everything coalesced again */
    CU_ASSERT_PTR_NOT_NULL(big);
    crfree(big);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void write_at_map_fence(void)
{
    signal(SIGSEGV, SIG_DFL);
    *(volatile char *)heap_proc.map_fence = 1;
    _exit(4);
}

/* The page map is sized for the region's maximum (8 GiB: 32 MiB of map);
 * its unused tail is fenced off: a stray write there faults, and the fence
 * moves up (in 2 MiB steps of map) as the top grows. */
static void test_unused_page_map_is_fenced_and_follows_the_top(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(8192 * MiB), 0);
    struct heap_root *r = heap_proc.root;
    uintptr_t map = (uintptr_t)r->map, first = heap_proc.map_fence;
    CU_ASSERT(first > map && first <= map + CR_REGION_CHUNK && first < r->pages_base);
    if (strcmp(cr_region_tracker_name(), "uffd-async") == 0) {   /* the others cannot skip */
        pid_t pid = fork();
        if (pid == 0)
            write_at_map_fence();
        int st = 0;
        waitpid(pid, &st, 0);
        CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    }
    /* 600 MiB of pages need 2.4 MiB of map: past the first step. */
    char *big = crmalloc(600 * MiB);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    big[0] = 1;
    big[600 * MiB - 1] = 2;
    CU_ASSERT(heap_proc.map_fence > first);
    CU_ASSERT((uintptr_t)&r->map[r->top] + HEAP_PAGE <= heap_proc.map_fence);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    CU_ASSERT_EQUAL(cr_region_collect(NULL, NULL), 0);
    crfree(big);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    CU_ASSERT_EQUAL(live_bytes(), 0);
}

static void test_smallest_region_holds_a_working_heap(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(CR_REGION_CHUNK), 0);   /* one chunk */
    void *p[1000];
    int n = 0;
    while (n < 1000 && (p[n] = crmalloc(4000)) != NULL)
        n++;
    CU_ASSERT(n > 100 && n < 1000);
    CU_ASSERT_EQUAL(errno, ENOMEM);
    while (n--)
        crfree(p[n]);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_first_crmalloc_without_init_opens_region_and_heap(void)
{
    cr_heap_detach();
    if (cr_region_is_open())
        (void)cr_region_close();
    char base[32];
    snprintf(base, sizeof base, "%#lx", TEST_BASE + (1UL << 32));
    setenv("CRMPI_REGION_BASE", base, 1);
    setenv("CRMPI_REGION_MAX", "64M", 1);
    CU_ASSERT_EQUAL_FATAL(cr_config_reload(), 0);
    char *p = crmalloc(100);
    CU_ASSERT_PTR_NOT_NULL(p);
    CU_ASSERT(cr_region_is_open());
    CU_ASSERT_EQUAL((uintptr_t)cr_region_base(), TEST_BASE + (1UL << 32));
    CU_ASSERT(cr_region_contains(p, 100));
    crfree(p);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
    unsetenv("CRMPI_REGION_BASE");
    unsetenv("CRMPI_REGION_MAX");
    CU_ASSERT_EQUAL(cr_config_reload(), 0);
}

/* ---- freed pages leave the checkpoint ------------------------------------ */

struct span { uintptr_t lo, hi; size_t written, zeroed; };

static int count_extent(const struct cr_extent *e, void *arg)
{
    struct span *s = arg;
    uintptr_t lo = CR_MAX(e->addr, s->lo), hi = CR_MIN(e->addr + e->len, s->hi);
    if (lo < hi) {
        if (e->flags & CR_EXTENT_ZERO)
            s->zeroed += hi - lo;
        else
            s->written += hi - lo;
    }
    return 0;
}

static size_t populated_in(uintptr_t lo, uintptr_t hi)
{
    struct span s = { lo, hi, 0, 0 };
    CU_ASSERT_EQUAL(cr_region_collect_populated(count_extent, &s), 0);
    return s.written;
}

static void test_freed_pages_are_not_collected(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    size_t len = 8 * MiB;
    char *big = crmalloc(len);
    memset(big, 1, len);
    void *small[4000];
    for (int i = 0; i < 4000; i++)
        memset(small[i] = crmalloc(1000), 2, 1000);
    struct heap_root *r = heap_proc.root;
    uintptr_t lo = r->pages_base, hi = heap_page_addr(r->top);
    CU_ASSERT_EQUAL_FATAL(cr_region_collect(NULL, NULL), 0);     /* new epoch */
    CU_ASSERT(populated_in((uintptr_t)big, (uintptr_t)big + len) == len);
    crfree(big);
    for (int i = 0; i < 4000; i++)
        crfree(small[i]);
    CU_ASSERT_EQUAL(cr_heap_trim(), 0);
    struct span s = { (uintptr_t)big, (uintptr_t)big + len, 0, 0 };
    CU_ASSERT_EQUAL(cr_region_collect(count_extent, &s), 0);
    CU_ASSERT_EQUAL(s.written, 0);
    CU_ASSERT_EQUAL(s.zeroed, len);
    /* Of the whole heap, only slab headers kept by caches and nothing of
     * the freed data stays populated. */
    size_t left = populated_in(lo, hi);
    CU_ASSERT(left <= 256 * 1024);
    struct cr_heap_stats st;
    CU_ASSERT_EQUAL(cr_heap_stats(&st), 0);
    CU_ASSERT_EQUAL(st.free_dirty_bytes, 0);
    CU_ASSERT_EQUAL(st.live_bytes, 0);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

static void test_checkpoint_size_follows_live_data(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(512 * MiB), 0);
    enum { N = 256 };
    static void *blk[N];
    for (int i = 0; i < N; i++)
        memset(blk[i] = crmalloc(256 * 1024 + (size_t)i * 100), 3, 256 * 1024);
    struct heap_root *r = heap_proc.root;
    size_t full = populated_in(r->pages_base, heap_page_addr(r->top));
    for (int i = 0; i < N; i++)
        if (i % 4)
            crfree(blk[i]);
    CU_ASSERT_EQUAL(cr_heap_trim(), 0);
    size_t quarter = populated_in(r->pages_base, heap_page_addr(r->top));
    CU_ASSERT(full >= (size_t)N * 256 * 1024);
    CU_ASSERT(quarter <= full / 4 + 4 * 4096 * N / 4);
    struct cr_heap_stats st;
    CU_ASSERT_EQUAL(cr_heap_stats(&st), 0);
    CU_ASSERT(st.used_bytes - st.meta_bytes <= st.live_bytes + 4096 * N);
    for (int i = 0; i < N; i += 4)
        crfree(blk[i]);
    CU_ASSERT_EQUAL(cr_heap_check(), 0);
}

#if defined(CRMPI_HEAP_ASAN) && CRMPI_HEAP_ASAN && defined(__SANITIZE_ADDRESS__)
/* Only in builds with -DCRMPI_SANITIZE=address -DCRMPI_HEAP_ASAN=ON: a
 * write to a freed object must be caught by AddressSanitizer. */
static int child_touches_freed(size_t size)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);                            /* keep the report quiet */
        volatile char *p = crmalloc(size);
        p[0] = 1;
        crfree((void *)p);
        p[size / 2] = 2;                        /* use after free */
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_asan_catches_use_after_free_of_small_and_large(void)
{
    CU_ASSERT_EQUAL_FATAL(heap_reset(256 * MiB), 0);
    CU_ASSERT_EQUAL(child_touches_freed(64), 1);      /* ASan exit code */
    CU_ASSERT_EQUAL(child_touches_freed(100000), 1);
    void *p = crmalloc(64);                     /* and live memory is fine */
    memset(p, 1, 64);
    crfree(p);
}
#endif

static CU_TestInfo semantics[] = {
    CUTEST(test_malloc_zero_returns_unique_freeable_pointers),
    CUTEST(test_every_size_is_16_aligned_and_usable),
    CUTEST(test_calloc_overflow_is_enomem),
    CUTEST(test_calloc_zeroes_reused_small_and_large_memory),
    CUTEST(test_fresh_heap_over_a_used_region_starts_clean),
    CUTEST(test_realloc_null_is_malloc),
    CUTEST(test_realloc_to_zero_frees_and_returns_null),
    CUTEST(test_realloc_keeps_contents_across_classes),
    CUTEST(test_realloc_grows_large_in_place_into_free_neighbour),
    CUTEST(test_fit_deep_in_a_bin_at_the_top_is_used_not_lost),
    CUTEST(test_realloc_small_shrink_stays_in_place),
    CUTEST(test_posix_memalign_rejects_bad_alignment_with_einval),
    CUTEST(test_posix_memalign_honours_every_alignment),
    CUTEST(test_huge_requests_are_enomem),
    CUTEST(test_free_null_and_usable_size_null),
    CU_TEST_INFO_NULL
};
static CU_TestInfo misuse[] = {
    CUTEST(test_free_of_foreign_pointers_is_refused),
    CUTEST(test_double_free_of_small_object_is_refused),
    CUTEST(test_double_free_from_another_thread_is_refused),
    CUTEST(test_double_free_of_large_object_is_refused),
    CUTEST(test_interior_pointers_are_refused),
    CUTEST(test_checker_reports_a_damaged_slab_and_free_list),
#if defined(CRMPI_HEAP_ASAN) && CRMPI_HEAP_ASAN && defined(__SANITIZE_ADDRESS__)
    CUTEST(test_asan_catches_use_after_free_of_small_and_large),
#endif
    CU_TEST_INFO_NULL
};
static CU_TestInfo limits[] = {
    CUTEST(test_exhaustion_at_region_max_is_enomem_and_recoverable),
    CUTEST(test_unused_page_map_is_fenced_and_follows_the_top),
    CUTEST(test_smallest_region_holds_a_working_heap),
    CUTEST(test_first_crmalloc_without_init_opens_region_and_heap),
    CU_TEST_INFO_NULL
};
static CU_TestInfo release[] = {
    CUTEST(test_freed_pages_are_not_collected),
    CUTEST(test_checkpoint_size_follows_live_data),
    CU_TEST_INFO_NULL
};
static CU_SuiteInfo suites[] = {
    { "semantics", NULL, NULL, NULL, NULL, semantics },
    { "misuse", NULL, NULL, NULL, NULL, misuse },
    { "limits", NULL, NULL, NULL, NULL, limits },
    { "release", NULL, NULL, NULL, NULL, release },
    CU_SUITE_INFO_NULL
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
