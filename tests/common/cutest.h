/*
 * cutest.h - shared scaffolding for the CUnit test programs.
 *
 *   static CU_TestInfo region_tests[] = { CUTEST(test_first_page_reported), ... CU_TEST_INFO_NULL };
 *   static CU_SuiteInfo suites[] = { { "region", NULL, NULL, NULL, NULL, region_tests }, CU_SUITE_INFO_NULL };
 *   int main(int argc, char **argv) { return cutest_main(argc, argv, suites); }
 *
 * cutest_main runs every suite in CUnit's basic mode (whose summary CTest
 * logs show) and returns non-zero if any assertion failed. An optional
 * argument selects one suite, or "suite:test".
 */
#ifndef CUTEST_H
#define CUTEST_H

#include <CUnit/Basic.h>
#include <stddef.h>

#define CUTEST(fn) { #fn, fn }

int cutest_main(int argc, char **argv, CU_SuiteInfo *suites);

/* A private temporary directory for the test (removed by cutest_rmtree). */
char *cutest_tmpdir(const char *tag);
void cutest_rmtree(const char *path);
/* Deterministic per-test random numbers (xorshift64*), seeded from
 * CUTEST_SEED or a fixed default; the seed is printed on failure. */
void cutest_seed(unsigned long long seed);
unsigned long long cutest_rand(void);

#endif
