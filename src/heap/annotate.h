/*
 * annotate.h - tell AddressSanitizer and Valgrind memcheck which heap bytes
 * are allocated, behind the build option CRMPI_HEAP_ASAN.
 *
 * Free objects and free pages are poisoned (ASan) / NOACCESS (memcheck);
 * an allocation unpoisons exactly its usable bytes. The allocator's own
 * reads and writes of a free object's link word go through link_read /
 * link_write, which open the word for the access. Without the option every
 * macro is empty and the links are plain loads and stores.
 */
#ifndef CR_HEAP_ANNOTATE_H
#define CR_HEAP_ANNOTATE_H

#include <stddef.h>

#if defined(CRMPI_HEAP_ASAN) && CRMPI_HEAP_ASAN
#  include <sanitizer/asan_interface.h>   /* macros are no-ops without -fsanitize */
#  if defined(__has_include)
#    if __has_include(<valgrind/memcheck.h>)
#      include <valgrind/memcheck.h>
#      define HEAP_HAVE_VALGRIND 1
#    endif
#  endif
#  ifndef HEAP_HAVE_VALGRIND
#    define VALGRIND_MALLOCLIKE_BLOCK(p, n, rz, z) ((void)0)
#    define VALGRIND_FREELIKE_BLOCK(p, rz)         ((void)0)
#    define VALGRIND_MAKE_MEM_NOACCESS(p, n)       ((void)0)
#    define VALGRIND_MAKE_MEM_DEFINED(p, n)        ((void)0)
#  endif
#  define HEAP_ANN_ALLOC(p, n, zeroed) do { ASAN_UNPOISON_MEMORY_REGION((p), (n)); \
        VALGRIND_MALLOCLIKE_BLOCK((p), (n), 0, (zeroed)); } while (0)
#  define HEAP_ANN_FREE(p, n) do { VALGRIND_FREELIKE_BLOCK((p), 0); \
        ASAN_POISON_MEMORY_REGION((p), (n)); } while (0)
#  define HEAP_ANN_NOACCESS(p, n) do { ASAN_POISON_MEMORY_REGION((p), (n)); \
        VALGRIND_MAKE_MEM_NOACCESS((p), (n)); } while (0)
#  define HEAP_ANN_OPEN(p, n) do { ASAN_UNPOISON_MEMORY_REGION((p), (n)); \
        VALGRIND_MAKE_MEM_DEFINED((p), (n)); } while (0)
#else
#  define HEAP_ANN_ALLOC(p, n, zeroed) ((void)0)
#  define HEAP_ANN_FREE(p, n)          ((void)0)
#  define HEAP_ANN_NOACCESS(p, n)      ((void)0)
#  define HEAP_ANN_OPEN(p, n)          ((void)0)
#endif

static inline void *link_read(void *obj)
{
    HEAP_ANN_OPEN(obj, sizeof(void *));
    void *v = *(void **)obj;
    HEAP_ANN_NOACCESS(obj, sizeof(void *));
    return v;
}

static inline void link_write(void *obj, void *v)
{
    HEAP_ANN_OPEN(obj, sizeof(void *));
    *(void **)obj = v;
    HEAP_ANN_NOACCESS(obj, sizeof(void *));
}

#endif
