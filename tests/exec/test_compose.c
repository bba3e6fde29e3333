/*
 * test_compose.c - unit tests of the extent plan of a full epoch composed
 * from the previous chain (src/exec/compose.c, cr_compose_plan): the epoch
 * must hold exactly the populated pages and the written data pages, cut
 * into extents no longer than CR_EXTENT_MAX, sorted and disjoint, and never
 * the pages that were only discarded. The bytes themselves are checked by
 * the kill tests (exec_kill_iter_composed, mpi_kill_composed_halo_np2),
 * whose final answers must equal an uninterrupted run's.
 */
#include "cutest.h"
#include "exec/exec.h"

#include <stdlib.h>
#include <string.h>

#include "region/region.h"

#define PG 4096u
#define A0 ((uintptr_t)1 << 40)

static struct cr_extent X(uintptr_t page, size_t pages, unsigned flags)
{
    return (struct cr_extent){ .addr = A0 + page * PG, .len = pages * PG, .flags = flags };
}

/* Plan, then check the structural rules and return the pages covered as a
 * 0/1 array of npages (the caller frees both). */
static struct cr_extent *plan(const struct cr_extent *pop, size_t np, const struct cr_extent *d,
                              size_t nd, size_t *n, unsigned char **cover, size_t npages)
{
    struct cr_extent *out = NULL;
    size_t cap = 0;
    CU_ASSERT_EQUAL_FATAL(cr_compose_plan(pop, np, d, nd, &out, n, &cap), 0);
    *cover = calloc(npages, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(*cover);
    for (size_t i = 0; i < *n; i++) {
        CU_ASSERT(out[i].len > 0 && out[i].len <= CR_EXTENT_MAX);
        CU_ASSERT_EQUAL(out[i].flags, 0);
        CU_ASSERT_EQUAL(out[i].addr % PG, 0);
        CU_ASSERT_EQUAL(out[i].len % PG, 0);
        if (i)
            CU_ASSERT(out[i].addr >= out[i - 1].addr + out[i - 1].len);
        for (uintptr_t a = out[i].addr; a < out[i].addr + out[i].len; a += PG) {
            size_t p = (a - A0) / PG;
            CU_ASSERT_FATAL(p < npages);
            (*cover)[p] = 1;
        }
    }
    return out;
}

static void test_empty(void)
{
    struct cr_extent *out = NULL;
    size_t n = 7, cap = 0;
    CU_ASSERT_EQUAL(cr_compose_plan(NULL, 0, NULL, 0, &out, &n, &cap), 0);
    CU_ASSERT_EQUAL(n, 0);
    free(out);
}

/* Written pages are populated: the plan is the populated set, merged
 * where adjacent, whatever the written extents look like. */
static void test_written_inside_populated(void)
{
    struct cr_extent pop[] = { X(0, 4, 0), X(4, 2, 0), X(10, 3, 0) };
    struct cr_extent d[] = { X(1, 1, 0), X(5, 1, 0), X(11, 2, 0) };
    size_t n;
    unsigned char *cov;
    struct cr_extent *out = plan(pop, 3, d, 3, &n, &cov, 16);
    CU_ASSERT_EQUAL(n, 2);                      /* [0,6) and [10,13) */
    CU_ASSERT_EQUAL(out[0].addr, A0);
    CU_ASSERT_EQUAL(out[0].len, 6 * PG);
    CU_ASSERT_EQUAL(out[1].addr, A0 + 10 * PG);
    CU_ASSERT_EQUAL(out[1].len, 3 * PG);
    free(out);
    free(cov);
}

/* A written data page outside the populated set (it cannot happen with a
 * consistent tracker, but the epoch must never lose it) is added; a
 * discarded (zero) page is not. */
static void test_union_and_discards(void)
{
    struct cr_extent pop[] = { X(2, 2, 0), X(8, 1, 0) };
    struct cr_extent d[] = { X(0, 1, CR_EXTENT_ZERO), X(4, 1, 0), X(6, 1, CR_EXTENT_ZERO),
                             X(9, 2, 0), X(14, 1, 0) };
    size_t n;
    unsigned char *cov;
    struct cr_extent *out = plan(pop, 2, d, 5, &n, &cov, 16);
    unsigned char want[16] = { 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0 };
    CU_ASSERT_EQUAL(memcmp(cov, want, 16), 0);
    CU_ASSERT_EQUAL(n, 3);                      /* [2,5) [8,11) [14,15) */
    free(out);
    free(cov);
}

/* Long runs are cut at CR_EXTENT_MAX (the writer builds at least one
 * extent per batch; restore reads whole extents). */
static void test_cut_long_runs(void)
{
    size_t per = CR_EXTENT_MAX / PG, total = 3 * per + 5;
    struct cr_extent pop[] = { X(0, total, 0) };
    struct cr_extent d[] = { X(per - 1, 2, 0) };   /* straddles a cut */
    size_t n;
    unsigned char *cov;
    struct cr_extent *out = plan(pop, 1, d, 1, &n, &cov, total + 1);
    CU_ASSERT_EQUAL(n, 4);
    size_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += out[i].len;
    CU_ASSERT_EQUAL(sum, total * PG);
    CU_ASSERT_EQUAL(out[n - 1].len, 5 * PG);
    CU_ASSERT_EQUAL(cov[total], 0);
    free(out);
    free(cov);
}

/* The output array is reused across calls (the engine keeps it). */
static void test_reuses_output(void)
{
    struct cr_extent *out = NULL;
    size_t n, cap = 0;
    struct cr_extent a[] = { X(0, 1, 0), X(2, 1, 0), X(4, 1, 0) };
    CU_ASSERT_EQUAL(cr_compose_plan(a, 3, NULL, 0, &out, &n, &cap), 0);
    CU_ASSERT_EQUAL(n, 3);
    struct cr_extent b[] = { X(7, 1, 0) };
    CU_ASSERT_EQUAL(cr_compose_plan(b, 1, NULL, 0, &out, &n, &cap), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(out[0].addr, A0 + 7 * PG);
    free(out);
}

static CU_TestInfo tests[] = {
    CUTEST(test_empty),
    CUTEST(test_written_inside_populated),
    CUTEST(test_union_and_discards),
    CUTEST(test_cut_long_runs),
    CUTEST(test_reuses_output),
    CU_TEST_INFO_NULL,
};
static CU_SuiteInfo suites[] = {
    { "compose_plan", NULL, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv) { return cutest_main(argc, argv, suites); }
