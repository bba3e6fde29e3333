/*
 * page_copy.c - see page_copy.h. x86-64: 32-byte non-temporal stores
 * (AVX2, else the SSE2 of every x86-64 CPU); elsewhere memcpy.
 */
#include "page_copy.h"
#include "compiler.h"

#include <stdint.h>
#include <string.h>

#define PAGE 4096u

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#include <immintrin.h>

__attribute__((target("avx2"))) static void stream_avx2(void *dst, const void *src, size_t len)
{
    __m256i *d = dst;
    const __m256i *s = src;
    for (size_t i = 0; i < len / sizeof *d; i += 4) {
        __m256i a = _mm256_loadu_si256(s + i), b = _mm256_loadu_si256(s + i + 1);
        __m256i c = _mm256_loadu_si256(s + i + 2), e = _mm256_loadu_si256(s + i + 3);
        _mm256_stream_si256(d + i, a);
        _mm256_stream_si256(d + i + 1, b);
        _mm256_stream_si256(d + i + 2, c);
        _mm256_stream_si256(d + i + 3, e);
    }
}

static void stream_sse2(void *dst, const void *src, size_t len)
{
    __m128i *d = dst;
    const __m128i *s = src;
    for (size_t i = 0; i < len / sizeof *d; i += 4) {
        __m128i a = _mm_loadu_si128(s + i), b = _mm_loadu_si128(s + i + 1);
        __m128i c = _mm_loadu_si128(s + i + 2), e = _mm_loadu_si128(s + i + 3);
        _mm_stream_si128(d + i, a);
        _mm_stream_si128(d + i + 1, b);
        _mm_stream_si128(d + i + 2, c);
        _mm_stream_si128(d + i + 3, e);
    }
}

/* 0 unknown, 1 SSE2, 2 AVX2: a racy first call only computes it twice. */
static int level;

void cr_page_copy(void *dst, const void *src, size_t len, const void *next)
{
    if (((uintptr_t)dst | (uintptr_t)src | len) & (PAGE - 1)) {
        memcpy(dst, src, len);
        return;
    }
    if (cr_unlikely(!level))
        level = __builtin_cpu_supports("avx2") ? 2 : 1;
    const char *s = src;
    char *d = dst;
    for (size_t off = 0; off < len; off += PAGE) {
        /* Two pages ahead: this extent's, else the next extent's first. */
        const void *ahead = off + 2 * PAGE < len ? s + off + 2 * PAGE : next;
        if (ahead)
            _mm_prefetch((const char *)ahead, _MM_HINT_T0);
        if (level == 2)
            stream_avx2(d + off, s + off, PAGE);
        else
            stream_sse2(d + off, s + off, PAGE);
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
