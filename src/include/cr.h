/*
 * cr.h - public API of libcr, the crmpi runtime for one process.
 *
 * A program linked with -lcr keeps its state in a persistent region: memory
 * from crmalloc() and the stacks of main and of persistent threads. Calling
 * cr_checkpoint() (every persistent thread calls it: it is a rendezvous)
 * saves the pages written since the previous checkpoint and every thread's
 * context into the checkpoint directory. When the program is killed and
 * started again with the same command, it resumes from its last committed
 * checkpoint: cr_checkpoint() returns CR_RESTARTED there.
 *
 * Configuration is by environment variables (CRMPI_DIR, CRMPI_LOG, ...):
 * see README.md, or run `crmpi-ckpt env`.
 *
 * Error convention: functions returning int return 0 (or a documented
 * non-negative value) on success and a negative code on failure: -errno for
 * system errors (-ENOMEM, -EIO, ...) and the CR_E* codes below for
 * crmpi's own. cr_strerror() names any of them. errno is not relied on.
 */
#ifndef CR_H
#define CR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CR_API __attribute__((visibility("default")))
#define CR_WUR __attribute__((warn_unused_result))
#define CR_MALLOC_ATTR __attribute__((malloc))
#define CR_ALLOC_SIZE(...) __attribute__((alloc_size(__VA_ARGS__)))
#else
#define CR_API
#define CR_WUR
#define CR_MALLOC_ATTR
#define CR_ALLOC_SIZE(...)
#endif

/* ---- status codes -------------------------------------------------------- */

#define CR_CHECKPOINTED 0   /* cr_checkpoint(): a checkpoint was taken       */
#define CR_RESTARTED    1   /* cr_checkpoint(): resumed from a checkpoint    */

/* crmpi's own error codes, below -256 so they never clash with -errno. */
enum cr_error {
    CR_ECORRUPT    = -257, /* checkpoint data fails a checksum or is malformed  */
    CR_EFORMAT     = -258, /* not a crmpi checkpoint, or another format version */
    CR_EMISMATCH   = -259, /* written by another executable or library build    */
    CR_ENOCKPT     = -260, /* no committed checkpoint in the directory          */
    CR_ERANKS      = -261, /* written by a job with another number of ranks     */
    CR_ECOLLISION  = -262, /* the region's fixed address is already mapped      */
    CR_ESTATE      = -263, /* call not valid in the current state (API misuse)  */
    CR_EUNSUPPORTED= -264, /* feature cannot be checkpointed                    */
    CR_EFOREIGN    = -265, /* checkpoint belongs to another job                 */
    CR_EPERM_TRUST = -266, /* checkpoint files not owned by us or writable by others */
    CR_EINJECTED   = -267, /* failure injected by CRMPI_FAULT (tests)           */
    CR_EREMOTE     = -268, /* the operation failed on another rank              */
};

/* Human-readable text for any status code (0, -errno or CR_E*). Never NULL. */
CR_API const char *cr_strerror(int code);

/* ---- persistent heap ----------------------------------------------------- */
/* Same semantics as the C library's malloc family; memory lives in the
 * persistent region and is restored with it. Exhaustion: NULL, errno=ENOMEM. */
CR_API void *crmalloc(size_t size) CR_MALLOC_ATTR CR_ALLOC_SIZE(1);
CR_API void *crcalloc(size_t nmemb, size_t size) CR_MALLOC_ATTR CR_ALLOC_SIZE(1, 2);
CR_API void *crrealloc(void *ptr, size_t size) CR_ALLOC_SIZE(2);
CR_API void  crfree(void *ptr);
CR_API int   cr_posix_memalign(void **memptr, size_t alignment, size_t size);
CR_API void *cr_aligned_alloc(size_t alignment, size_t size) CR_MALLOC_ATTR CR_ALLOC_SIZE(2);
CR_API size_t cr_malloc_usable_size(void *ptr);

#ifdef __cplusplus
}
#endif
#endif /* CR_H */
