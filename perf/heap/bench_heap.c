/*
 * bench_heap.c - allocator throughput and memory overhead, one allocator per
 * binary (chosen at compile time with ALLOC_CR/GLIBC/JE/MI/PMEM) so that
 * jemalloc can replace malloc in its own binary without disturbing the
 * others.
 *
 * Workloads (each timed for a fixed wall-clock budget after an untimed
 * warm-up pass, on 1 and 2 threads, threads independent):
 *   size S   batches of 1000 allocations of S bytes (one word written in
 *            each) then 1000 frees, S in 16 B .. 64 KiB;
 *   mixed    larson-style: each thread keeps 2000 live blocks of random
 *            sizes (mostly <= 1 KiB, some to 32 KiB) and replaces a random
 *            one per operation; every round the threads exchange their
 *            block sets, so half of the frees are of blocks another thread
 *            allocated.
 * Output, one CSV line per figure:
 *   allocator,workload,threads,ops_per_s,live_bytes,footprint_bytes,region_bytes
 * footprint = growth of the resident set while the mixed workload's blocks
 * are live (the mixed workload runs alone in its process: argv[1] = mixed);
 * region_bytes (crmalloc only) = populated bytes of the persistent region,
 * metadata included, after cr_heap_trim: what a full checkpoint would save.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(ALLOC_CR)
#  include "cr.h"
#  include "heap/heap.h"
#  include "region/region.h"
#  define NAME "crmalloc"
#  define A_MALLOC(n) crmalloc(n)
#  define A_FREE(p)   crfree(p)
typedef void *handle;
#  define H_PTR(h) (h)
#elif defined(ALLOC_MI)
#  include <mimalloc.h>
#  define NAME "mimalloc"
#  define A_MALLOC(n) mi_malloc(n)
#  define A_FREE(p)   mi_free(p)
typedef void *handle;
#  define H_PTR(h) (h)
#elif defined(ALLOC_PMEM)
#  include <libpmemobj.h>
#  define NAME "pmemobj"
static PMEMobjpool *pool;
typedef PMEMoid handle;
#  define H_PTR(h) pmemobj_direct(h)
#else
#  if defined(ALLOC_JE)
#    define NAME "jemalloc"
#  else
#    define NAME "glibc"
#  endif
#  define A_MALLOC(n) malloc(n)
#  define A_FREE(p)   free(p)
typedef void *handle;
#  define H_PTR(h) (h)
#endif

#if defined(ALLOC_PMEM)
static int h_alloc(handle *h, size_t n)
{
    return pmemobj_alloc(pool, h, n, 0, NULL, NULL) == 0;
}
static void h_free(handle *h) { pmemobj_free(h); }
#else
static int h_alloc(handle *h, size_t n) { return (*h = A_MALLOC(n)) != NULL; }
static void h_free(handle *h) { A_FREE(*h); }
#endif

static double budget = 0.3;        /* seconds per figure */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static unsigned long long xs(unsigned long long *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_heap(%s): %s failed\n", NAME, what);
    exit(1);
}

/* ---- fixed-size batches --------------------------------------------------- */

#define BATCH 1000
struct sized { size_t size; double secs; long ops; pthread_barrier_t *bar; };

static long sized_rounds(size_t size, long rounds)
{
    static __thread handle h[BATCH];
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < BATCH; i++) {
            if (!h_alloc(&h[i], size))
                die("alloc");
            *(volatile long *)H_PTR(h[i]) = i;
        }
        for (int i = 0; i < BATCH; i++)
            h_free(&h[i]);
    }
    return rounds * BATCH * 2;
}

static void *sized_thread(void *arg)
{
    struct sized *s = arg;
    sized_rounds(s->size, 2);                 /* warm-up */
    pthread_barrier_wait(s->bar);
    double t0 = now(), t;
    long ops = 0;
    do
        ops += sized_rounds(s->size, 4);
    while ((t = now()) - t0 < budget);
    s->secs = t - t0;
    s->ops = ops;
    return NULL;
}

static double run_sized(size_t size, int nthreads)
{
    pthread_barrier_t bar;
    pthread_t tid[2];
    struct sized s[2];
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    for (int i = 0; i < nthreads; i++) {
        s[i] = (struct sized){ .size = size, .bar = &bar };
        pthread_create(&tid[i], NULL, sized_thread, &s[i]);
    }
    double rate = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(tid[i], NULL);
        rate += s[i].ops / s[i].secs;
    }
    pthread_barrier_destroy(&bar);
    return rate;
}

/* ---- larson-style mixed workload -------------------------------------------- */

#define LIVE 2000
#define WARM_ROUNDS 20     /* each block replaced ~20 times before timing */
struct blockset { handle h[LIVE]; size_t size[LIVE]; };
struct mixed {
    struct blockset *sets;     /* one per thread, exchanged every round */
    int self, nthreads;
    unsigned long long rng;
    long ops;
    double secs;
    pthread_barrier_t *bar;
    volatile int *stop;
};

static size_t mixed_size(unsigned long long *rng)
{
    unsigned long long r = xs(rng);
    return r % 100 < 90 ? 16 + r % 1009 : r % 100 < 99 ? 1024 + (r >> 8) % 7168 : 8192 + (r >> 8) % 24576;
}

static void mixed_fill(struct blockset *b, unsigned long long *rng)
{
    for (int i = 0; i < LIVE; i++) {
        b->size[i] = mixed_size(rng);
        if (!h_alloc(&b->h[i], b->size[i]))
            die("alloc");
        memset(H_PTR(b->h[i]), 1, 16);
    }
}

static void mixed_round(struct blockset *b, unsigned long long *rng, int n)
{
    for (int k = 0; k < n; k++) {
        int i = (int)(xs(rng) % LIVE);
        h_free(&b->h[i]);
        b->size[i] = mixed_size(rng);
        if (!h_alloc(&b->h[i], b->size[i]))
            die("alloc");
        memset(H_PTR(b->h[i]), 1, 16);
    }
}

static void *mixed_thread(void *arg)
{
    struct mixed *m = arg;
    double t0 = 0;
    for (int round = 0;; round++) {
        /* exchange block sets: rotate ownership every round */
        struct blockset *b = &m->sets[(m->self + round) % m->nthreads];
        mixed_round(b, &m->rng, 2000);
        if (round == WARM_ROUNDS)
            t0 = now();
        if (round > WARM_ROUNDS)
            m->ops += 2 * 2000;
        pthread_barrier_wait(m->bar);
        if (m->self == 0 && round > WARM_ROUNDS && now() - t0 >= budget)
            *m->stop = 1;
        pthread_barrier_wait(m->bar);
        if (*m->stop)
            break;
    }
    m->secs = now() - t0;
    return NULL;
}

static long rss_bytes(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = 0;
    if (f)
        fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

#if defined(ALLOC_CR)
static int add_extent(const struct cr_extent *e, void *arg)
{
    *(size_t *)arg += e->len;
    return 0;
}
#endif

/* For crmalloc: bytes of the region that hold data (what a full checkpoint
 * saves), after cr_heap_trim released free pages. 0 for the others. */
static size_t region_bytes(void)
{
    size_t n = 0;
#if defined(ALLOC_CR)
    if (cr_heap_trim() || cr_region_collect_populated(add_extent, &n))
        die("trim/collect_populated");
#endif
    return n;
}

static double run_mixed(int nthreads, size_t *live, size_t *footprint, size_t *region)
{
    static struct blockset sets[2];
    pthread_barrier_t bar;
    pthread_t tid[2];
    struct mixed m[2];
    volatile int stop = 0;
    unsigned long long seed = 12345;
    long rss0 = rss_bytes();
    for (int i = 0; i < nthreads; i++)
        mixed_fill(&sets[i], &seed);
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    for (int i = 0; i < nthreads; i++) {
        m[i] = (struct mixed){ .sets = sets, .self = i, .nthreads = nthreads,
                               .rng = 777 + (unsigned long long)i, .bar = &bar, .stop = &stop };
        pthread_create(&tid[i], NULL, mixed_thread, &m[i]);
    }
    double rate = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(tid[i], NULL);
        rate += m[i].ops / m[i].secs;
    }
    pthread_barrier_destroy(&bar);
    *live = 0;
    for (int t = 0; t < nthreads; t++)
        for (int i = 0; i < LIVE; i++)
            *live += sets[t].size[i];
    *footprint = (size_t)(rss_bytes() - rss0);
    *region = region_bytes();
#if defined(ALLOC_CR)
    struct cr_heap_stats st;
    cr_heap_stats(&st);
    if (getenv("BENCH_DEBUG"))
        fprintf(stderr, "live %zu small %zu large %zu free %zu dirty %zu heap %zu frag %.2f\n",
                st.live_bytes, st.small_bytes, st.large_bytes, st.free_bytes, st.free_dirty_bytes,
                st.heap_bytes, st.fragmentation);
#endif
    for (int t = 0; t < nthreads; t++)
        for (int i = 0; i < LIVE; i++)
            h_free(&sets[t].h[i]);
    return rate;
}

static void setup(void)
{
#if defined(ALLOC_CR)
    struct cr_region_params p = { .base = 0, .max_size = (size_t)16 << 30 };
    if (cr_region_open(&p) || cr_heap_init(CR_HEAP_FRESH))
        die("region/heap");
#elif defined(ALLOC_PMEM)
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/crmpi-bench-pmem-%d", (int)getpid());
    pool = pmemobj_create(path, "bench", (size_t)2 << 30, 0600);
    if (!pool)
        die("pmemobj_create");
    unlink(path);                      /* the mapping keeps it alive */
#endif
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = { 16, 64, 256, 1024, 4096, 16384, 65536 };
    const char *b = getenv("BENCH_BUDGET");
    if (b)
        budget = atof(b);
    /* "sized" or "mixed N": the mixed workload runs in a fresh process so
     * that its resident-set growth is its own. */
    const char *what = argc > 1 ? argv[1] : "sized";
    setup();
    if (!strcmp(what, "sized")) {
        for (int t = 1; t <= 2; t++)
            for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
                printf("%s,size%zu,%d,%.0f,,,\n", NAME, sizes[i], t, run_sized(sizes[i], t));
    } else {
        int t = argc > 2 ? atoi(argv[2]) : 1;
        size_t live, fp, region;
        double r = run_mixed(t < 1 ? 1 : t > 2 ? 2 : t, &live, &fp, &region);
        printf("%s,mixed,%d,%.0f,%zu,%zu,%zu\n", NAME, t, r, live, fp, region);
    }
#if defined(ALLOC_PMEM)
    pmemobj_close(pool);
#endif
    return 0;
}
