/*
 * cutest.c - CUnit runner and small test utilities.
 */

#include "cutest.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long long rng_state = 0x9e3779b97f4a7c15ULL;
static unsigned long long seed_used;

void cutest_seed(unsigned long long seed)
{
    seed_used = seed;
    rng_state = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

unsigned long long cutest_rand(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

char *cutest_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path;
    if (asprintf(&path, "%s/crtest-%s-XXXXXX", base ? base : "/tmp", tag) < 0)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

void cutest_rmtree(const char *path)
{
    if (path)
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int cutest_main(int argc, char **argv, CU_SuiteInfo *suites)
{
    const char *seed = getenv("CUTEST_SEED");
    cutest_seed(seed ? strtoull(seed, NULL, 0) : 42);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "cutest: %s\n", CU_get_error_msg());
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    if (argc > 1) {
        char *sel = strdup(argv[1]);
        char *test = strchr(sel, ':');
        if (test)
            *test++ = 0;
        CU_pSuite s = CU_get_suite(sel);
        if (!s) {
            fprintf(stderr, "cutest: no suite '%s'\n", sel);
            return 2;
        }
        if (test) {
            CU_pTest t = CU_get_test(s, test);
            if (!t) {
                fprintf(stderr, "cutest: no test '%s' in suite '%s'\n", test, sel);
                return 2;
            }
            CU_basic_run_test(s, t);
        } else {
            CU_basic_run_suite(s);
        }
        free(sel);
    } else {
        CU_basic_run_tests();
    }
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    unsigned ran = CU_get_number_of_tests_run();
    if (failed)
        fprintf(stderr, "cutest: %u failure(s); seed was %llu (set CUTEST_SEED to repeat)\n",
                failed, seed_used);
    CU_cleanup_registry();
    if (!ran) {
        fprintf(stderr, "cutest: no test ran\n");
        return 1;
    }
    return failed ? 1 : 0;
}
