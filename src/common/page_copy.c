/*
 * page_copy.c - see page_copy.h. x86-64 with AVX2: 32-byte non-temporal
 * stores; elsewhere (older x86-64 CPUs, other architectures, sanitizer
 * builds) memcpy.
 */
#include "page_copy.h"

#include <stdint.h>
#include <string.h>

/* The region's page size (CR_PAGE_SIZE in region/region.h, which this
 * layer does not include): the unit of alignment and of prefetching. */
#define PAGE 4096u

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#include <immintrin.h>

__attribute__((target("avx2"))) static void stream_page(void *dst, const void *src)
{
    __m256i *d = dst;
    const __m256i *s = src;
    for (size_t i = 0; i < PAGE / sizeof *d; i += 4) {
        __m256i a = _mm256_loadu_si256(s + i), b = _mm256_loadu_si256(s + i + 1);
        __m256i c = _mm256_loadu_si256(s + i + 2), e = _mm256_loadu_si256(s + i + 3);
        _mm256_stream_si256(d + i, a);
        _mm256_stream_si256(d + i + 1, b);
        _mm256_stream_si256(d + i + 2, c);
        _mm256_stream_si256(d + i + 3, e);
    }
}

void cr_page_copy(void *dst, const void *src, size_t len, const void *next)
{
    /* __builtin_cpu_supports reads a word libgcc fills at load time. */
    if ((((uintptr_t)dst | (uintptr_t)src | len) & (PAGE - 1)) ||
        !__builtin_cpu_supports("avx2")) {
        memcpy(dst, src, len);
        return;
    }
    const char *s = src;
    char *d = dst;
    for (size_t off = 0; off < len; off += PAGE) {
        /* Two pages ahead while this run lasts, then the caller's next. */
        const void *ahead = off + 2 * PAGE < len ? s + off + 2 * PAGE : next;
        if (ahead)
            _mm_prefetch((const char *)ahead, _MM_HINT_T0);
        stream_page(d + off, s + off);
    }
}

void cr_page_copy_done(void)
{
    _mm_sfence();
}

#else

void cr_page_copy(void *dst, const void *src, size_t len, const void *next)
{
    (void)next;
    memcpy(dst, src, len);
}

void cr_page_copy_done(void) {}

#endif
