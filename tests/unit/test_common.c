/*
 * test_common.c - configuration parsing, error texts, CRC-32C, page copy.
 */
#include "cutest.h"
#include "common/config.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/compiler.h"
#include "common/page_copy.h"

#include <sys/mman.h>

#include <stdlib.h>
#include <string.h>

static void test_parse_size_suffixes(void)
{
    size_t v;
    CU_ASSERT_EQUAL(cr_parse_size("4096", &v), 0);  CU_ASSERT_EQUAL(v, 4096);
    CU_ASSERT_EQUAL(cr_parse_size("64M", &v), 0);   CU_ASSERT_EQUAL(v, 64UL << 20);
    CU_ASSERT_EQUAL(cr_parse_size("1GiB", &v), 0);  CU_ASSERT_EQUAL(v, 1UL << 30);
    CU_ASSERT_EQUAL(cr_parse_size("2k", &v), 0);    CU_ASSERT_EQUAL(v, 2048);
    CU_ASSERT_EQUAL(cr_parse_size("0x1000", &v), 0); CU_ASSERT_EQUAL(v, 4096);
}

static void test_parse_size_rejects_garbage_and_overflow(void)
{
    size_t v;
    CU_ASSERT_NOT_EQUAL(cr_parse_size("", &v), 0);
    CU_ASSERT_NOT_EQUAL(cr_parse_size("-1", &v), 0);
    CU_ASSERT_NOT_EQUAL(cr_parse_size("12Q", &v), 0);
    CU_ASSERT_NOT_EQUAL(cr_parse_size("99999999999T", &v), 0);
    CU_ASSERT_NOT_EQUAL(cr_parse_size("1M extra", &v), 0);
}

static void test_config_defaults_and_overrides(void)
{
    struct cr_config c;
    unsetenv("CRMPI_TRACKER");
    setenv("CRMPI_REGION_MAX", "8G", 1);
    setenv("CRMPI_DIR", "/tmp/somewhere", 1);
    CU_ASSERT_EQUAL(cr_config_parse(&c), 0);
    CU_ASSERT_EQUAL(c.region_max, 8UL << 30);
    CU_ASSERT_STRING_EQUAL(c.dir, "/tmp/somewhere");
    CU_ASSERT_EQUAL(c.tracker, CR_TRACKER_AUTO);
    CU_ASSERT_EQUAL(c.region_base, 0x200000000000UL);
    unsetenv("CRMPI_REGION_MAX");
    unsetenv("CRMPI_DIR");
}

static void test_config_invalid_value_is_error_with_default(void)
{
    struct cr_config c;
    setenv("CRMPI_TRACKER", "telepathy", 1);
    setenv("CRMPI_LOG", "none", 1);   /* keep the expected error message quiet */
    CU_ASSERT_EQUAL(cr_config_parse(&c), -EINVAL);
    CU_ASSERT_EQUAL(c.tracker, CR_TRACKER_AUTO);
    setenv("CRMPI_TRACKER", "MPROTECT", 1);
    CU_ASSERT_EQUAL(cr_config_parse(&c), 0);
    CU_ASSERT_EQUAL(c.tracker, CR_TRACKER_MPROTECT);
    unsetenv("CRMPI_TRACKER");
    unsetenv("CRMPI_LOG");
}

static void test_relative_dir_is_made_absolute(void)
{
    struct cr_config c;
    setenv("CRMPI_DIR", "ck", 1);
    CU_ASSERT_EQUAL(cr_config_parse(&c), 0);
    CU_ASSERT_EQUAL(c.dir[0], '/');
    CU_ASSERT_PTR_NOT_NULL(strstr(c.dir, "/ck"));
    unsetenv("CRMPI_DIR");
}

static void test_strerror_names_every_code(void)
{
    CU_ASSERT_STRING_EQUAL(cr_strerror(0), "success");
    CU_ASSERT_PTR_NOT_NULL(strstr(cr_strerror(CR_ECORRUPT), "corrupt"));
    CU_ASSERT_PTR_NOT_NULL(strstr(cr_strerror(CR_ERANKS), "ranks"));
    CU_ASSERT_STRING_EQUAL(cr_strerror(-ENOMEM), strerror(ENOMEM));
    CU_ASSERT_STRING_EQUAL(cr_strerror(-1000), "unknown crmpi error");
    for (int c = CR_EREMOTE; c <= CR_ECORRUPT; c++)
        CU_ASSERT_STRING_NOT_EQUAL(cr_strerror(c), "unknown crmpi error");
}

static void test_crc32c_known_vectors(void)
{
    /* RFC 3720 B.4 test vectors. */
    unsigned char zeros[32] = { 0 }, ones[32], inc[32];
    memset(ones, 0xff, sizeof ones);
    for (int i = 0; i < 32; i++)
        inc[i] = (unsigned char)i;
    CU_ASSERT_EQUAL(cr_crc32c(0, zeros, 32), 0x8a9136aa);
    CU_ASSERT_EQUAL(cr_crc32c(0, ones, 32), 0x62a8ab43);
    CU_ASSERT_EQUAL(cr_crc32c(0, inc, 32), 0x46dd794e);
    CU_ASSERT_EQUAL(cr_crc32c(0, "123456789", 9), 0xe3069283);
}

static void test_crc32c_hw_equals_sw_any_alignment(void)
{
    unsigned char buf[4096 + 16];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)cutest_rand();
    for (size_t off = 0; off < 16; off++)
        for (size_t len = 0; len < 200; len += 7)
            CU_ASSERT_EQUAL(cr_crc32c(0, buf + off, len), cr_crc32c_sw(0, buf + off, len));
    /* incremental == one shot */
    uint32_t a = cr_crc32c(cr_crc32c(0, buf, 1000), buf + 1000, 3000);
    CU_ASSERT_EQUAL(a, cr_crc32c(0, buf, 4000));
}

/* Buffers long enough for the interleaved streams (3 x 256 and 3 x 8192
 * byte blocks), at lengths around every block boundary, any alignment,
 * with a non-zero starting CRC. */
static void test_crc32c_hw_equals_sw_long_buffers(void)
{
    size_t size = 4 * 3 * 8192 + 64;
    unsigned char *buf = malloc(size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (size_t i = 0; i < size; i++)
        buf[i] = (unsigned char)cutest_rand();
    const size_t base[] = { 3 * 256, 2 * 3 * 256, 3 * 8192, 2 * 3 * 8192, 3 * 8192 + 3 * 256,
                            4 * 3 * 8192 };
    for (size_t b = 0; b < sizeof base / sizeof *base; b++)
        for (size_t off = 0; off < 9; off += 3)
            for (size_t d = 0; d < 24; d += 5) {
                size_t len = base[b] - 12 + d;
                if (off + len > size)
                    continue;
                uint32_t seed = (uint32_t)cutest_rand();
                CU_ASSERT_EQUAL(cr_crc32c(seed, buf + off, len),
                                cr_crc32c_sw(seed, buf + off, len));
            }
    /* a 2 MiB extent, the size the store writes, in one call and in parts */
    size_t big = 2u << 20;
    unsigned char *e = malloc(big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    for (size_t i = 0; i < big; i++)
        e[i] = (unsigned char)(i * 131 + (i >> 9));
    uint32_t one = cr_crc32c(0, e, big);
    CU_ASSERT_EQUAL(one, cr_crc32c_sw(0, e, big));
    CU_ASSERT_EQUAL(one, cr_crc32c(cr_crc32c(0, e, 12345), e + 12345, big - 12345));
    free(e);
    free(buf);
}

/* Page copies equal memcpy's: aligned runs of one and several pages with
 * and without a prefetch address (the stores bypass the cache), and
 * unaligned or partial ones (which fall back to memcpy). */
static void test_page_copy_equals_memcpy(void)
{
    const size_t P = 4096, n = 16 * P;
    unsigned char *src = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *dst = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(src != MAP_FAILED && dst != MAP_FAILED);
    for (size_t i = 0; i < n; i++)
        src[i] = (unsigned char)(i * 7 + (i >> 12));
    static const struct { size_t doff, soff, len; int ahead; } cases[] = {
        { 0, 0, 4096, 0 }, { 0, 4096, 4096, 1 }, { 4096, 8 * 4096, 5 * 4096, 1 },
        { 0, 0, 16 * 4096, 0 }, { 3, 4096, 4096, 1 }, { 0, 17, 2 * 4096, 0 },
        { 8192, 8192, 100, 1 }, { 0, 0, 0, 0 },
    };
    for (size_t k = 0; k < CR_ARRAY_SIZE(cases); k++) {
        memset(dst, 0xee, n);
        cr_page_copy(dst + cases[k].doff, src + cases[k].soff, cases[k].len,
                     cases[k].ahead ? src + 12 * P : NULL);
        cr_page_copy_done();
        CU_ASSERT_EQUAL(memcmp(dst + cases[k].doff, src + cases[k].soff, cases[k].len), 0);
        /* nothing outside the destination range is touched */
        for (size_t i = 0; i < n; i++)
            if (i < cases[k].doff || i >= cases[k].doff + cases[k].len)
                if (dst[i] != 0xee) {
                    CU_FAIL("page copy wrote outside its destination");
                    break;
                }
    }
    munmap(src, n);
    munmap(dst, n);
}

static CU_TestInfo common_tests[] = {
    CUTEST(test_parse_size_suffixes),
    CUTEST(test_parse_size_rejects_garbage_and_overflow),
    CUTEST(test_config_defaults_and_overrides),
    CUTEST(test_config_invalid_value_is_error_with_default),
    CUTEST(test_relative_dir_is_made_absolute),
    CUTEST(test_strerror_names_every_code),
    CUTEST(test_crc32c_known_vectors),
    CUTEST(test_crc32c_hw_equals_sw_any_alignment),
    CUTEST(test_crc32c_hw_equals_sw_long_buffers),
    CUTEST(test_page_copy_equals_memcpy),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    { "common", NULL, NULL, NULL, NULL, common_tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv) { return cutest_main(argc, argv, suites); }
