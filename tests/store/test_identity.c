/*
 * test_identity.c - which differences between the checkpointed process and
 * this one refuse a restore: another build of anything, or another address
 * of an object loaded at program start; an object dlopen'ed later (as Open
 * MPI does with libpmix inside MPI_Init) may move if its build is the same.
 */
#include "cutest.h"
#include "cr.h"
#include "common/config.h"
#include "store/internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rewrite the line of text whose path contains `match`: add `delta` to its
 * address, or (delta == 0) flip the first hex digit of its build-id.
 * Returns a new text (caller frees), or NULL if no line matched. */
static char *edit_line(const char *text, const char *match, unsigned long long delta)
{
    size_t n = strlen(text);
    char *out = malloc(n + 64), *o = out;
    int done = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        char line[4096], build[129], path[4000];
        unsigned long long addr;
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        if (!done && strstr(line, match) &&
            sscanf(line, "%128s %llx %3999[^\n]", build, &addr, path) == 3) {
            if (delta)
                addr += delta;
            else
                build[0] = build[0] == 'a' ? 'b' : 'a';
            o += sprintf(o, "%s 0x%llx %s\n", build, addr, path);
            done = 1;
        } else {
            memcpy(o, line, len);
            o += len;
        }
        p += len;
    }
    *o = 0;
    if (!done) {
        free(out);
        return NULL;
    }
    return out;
}

static int check_edited(const char *match, unsigned long long delta)
{
    char *text;
    size_t len;
    if (cr_identity_text(&text, &len) != 0)
        return -9999;
    char *edited = edit_line(text, match, delta);
    free(text);
    if (!edited)
        return -9998;
    int rc = cr_identity_check(edited, strlen(edited), "test");
    free(edited);
    return rc;
}

static void test_same_process_matches(void)
{
    char *text;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(cr_identity_text(&text, &len), 0);
    CU_ASSERT_EQUAL(cr_identity_check(text, len, "test"), 0);
    free(text);
}

static void test_startup_library_moved_is_refused(void)
{
    CU_ASSERT_EQUAL(check_edited("libc.so", 0x200000), CR_EMISMATCH);
}

static void test_executable_moved_is_refused(void)
{
    CU_ASSERT_EQUAL(check_edited("test_identity", 0x200000), CR_EMISMATCH);
}

static void test_dlopened_library_moved_is_accepted(void)
{
    CU_ASSERT_EQUAL(check_edited("identity_fixture", 0x40000000), 0);
}

static void test_dlopened_library_other_build_is_refused(void)
{
    CU_ASSERT_EQUAL(check_edited("identity_fixture", 0), CR_EMISMATCH);
}

static int setup(void)
{
    setenv("CRMPI_LOG", "none", 1);   /* the refusals are expected */
    cr_config_reload();
    const char *p = getenv("IDENTITY_FIXTURE");
    return !p || !dlopen(p, RTLD_NOW) ? -1 : 0;
}

static CU_TestInfo tests[] = {
    CUTEST(test_same_process_matches),
    CUTEST(test_startup_library_moved_is_refused),
    CUTEST(test_executable_moved_is_refused),
    CUTEST(test_dlopened_library_moved_is_accepted),
    CUTEST(test_dlopened_library_other_build_is_refused),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    { "identity", setup, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv) { return cutest_main(argc, argv, suites); }
