/*
 * compiler.h - attributes and small helpers used across the runtime.
 */
#ifndef CR_COMPILER_H
#define CR_COMPILER_H

#include <stddef.h>
#include <stdint.h>

#define CR_EXPORT      __attribute__((visibility("default")))
#define CR_HIDDEN      __attribute__((visibility("hidden")))
#define CR_MUST_CHECK  __attribute__((warn_unused_result))
#define CR_NORETURN    __attribute__((noreturn))
#define CR_UNUSED      __attribute__((unused))
#define CR_PRINTF(a,b) __attribute__((format(printf, a, b)))
#define cr_likely(x)   __builtin_expect(!!(x), 1)
#define cr_unlikely(x) __builtin_expect(!!(x), 0)

#define CR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CR_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Round x up/down to a multiple of the power of two a. */
static inline uintptr_t cr_align_up(uintptr_t x, uintptr_t a)   { return (x + a - 1) & ~(a - 1); }
static inline uintptr_t cr_align_down(uintptr_t x, uintptr_t a) { return x & ~(a - 1); }
static inline int cr_is_pow2(uintptr_t x) { return x && !(x & (x - 1)); }

#endif
