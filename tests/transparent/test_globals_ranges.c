/*
 * test_globals_ranges.c - the executable's globals minus the objects copy
 * relocations placed in it (cr_globals_subtract, globals.c).
 *
 * The linker packs copied objects next to each other and lists them in the
 * relocation table in symbol order, not address order (kill_app had
 * ompi_mpi_double at +0x7360 listed before ompi_mpi_char at +0x7160): an
 * earlier version walked the cuts in table order and produced a piece whose
 * end lay before its start, whose "size" made transparent mode fail with
 * ENOMEM in every such program. Checked here against a byte map for that
 * layout and for random layouts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cutest.h"
#include "interpose/interpose.h"

enum { SPAN = 512 };

/* Expected: 1 for every byte of [lo, hi) outside all cuts. */
static void check(uintptr_t lo, uintptr_t hi, struct cr_range *cut, size_t ncut)
{
    unsigned char want[SPAN] = { 0 }, got[SPAN] = { 0 };
    for (uintptr_t a = lo; a < hi; a++)
        want[a] = 1;
    for (size_t i = 0; i < ncut; i++)
        for (uintptr_t a = cut[i].lo; a < cut[i].hi && a < SPAN; a++)
            want[a] = 0;
    struct cr_range *out = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(cr_globals_subtract(lo, hi, cut, ncut, &out, &n), 0);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_FATAL(out[i].lo < out[i].hi);            /* never empty or negative */
        CU_ASSERT_FATAL(out[i].lo >= lo && out[i].hi <= hi);
        if (i)
            CU_ASSERT_FATAL(out[i].lo > out[i - 1].hi - 1); /* ordered, disjoint */
        for (uintptr_t a = out[i].lo; a < out[i].hi; a++)
            got[a]++;
    }
    CU_ASSERT_EQUAL(memcmp(want, got, SPAN), 0);
    free(out);
}

static void test_adjacent_cuts_in_table_order(void)
{
    /* kill_app's .bss, offsets / 0x10: char, double listed double first */
    struct cr_range cut[] = { { 0x36, 0x56 }, { 0x16, 0x36 }, { 0x56, 0x57 },
                              { 0x58, 0x78 }, { 0x78, 0x98 } };
    check(0x10, 0x1f0, cut, 5);
}

static void test_edge_cases(void)
{
    struct cr_range a[] = { { 0, 100 } };
    check(10, 50, a, 1);                       /* all cut */
    struct cr_range b[] = { { 100, 200 } };
    check(10, 50, b, 1);                       /* no overlap */
    check(10, 50, NULL, 0);                    /* no cuts */
    struct cr_range c[] = { { 40, 80 }, { 5, 20 }, { 30, 45 } };
    check(10, 60, c, 3);                       /* overlapping, out of order */
    struct cr_range d[] = { { 10, 11 }, { 59, 60 } };
    check(10, 60, d, 2);                       /* first and last byte */
}

static void test_random_layouts(void)
{
    for (int round = 0; round < 2000; round++) {
        struct cr_range cut[12];
        size_t n = cutest_rand() % 12;
        for (size_t i = 0; i < n; i++) {
            uintptr_t lo = cutest_rand() % (SPAN - 1);
            cut[i].lo = lo;
            cut[i].hi = lo + 1 + cutest_rand() % 64;
            if (cut[i].hi > SPAN)
                cut[i].hi = SPAN;
        }
        uintptr_t lo = cutest_rand() % SPAN, hi = lo + cutest_rand() % (SPAN - lo + 1);
        check(lo, hi, cut, n);
    }
}

static CU_TestInfo tests[] = {
    CUTEST(test_adjacent_cuts_in_table_order),
    CUTEST(test_edge_cases),
    CUTEST(test_random_layouts),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    { "globals_ranges", NULL, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
