/*
 * log.h - leveled logging for the runtime.
 *
 * Silent by default: only errors are printed (to stderr), because test
 * harnesses compare program output byte for byte. CRMPI_LOG=warn|info|debug
 * asks for more. Every line carries "crmpi[rank/pid] file:line:" so a log
 * from 64 ranks can be sorted out. Safe to call from any thread; lines are
 * written with one write(2) so they do not interleave.
 */
#ifndef CR_LOG_H
#define CR_LOG_H

#include "compiler.h"

enum cr_log_level { CR_LOG_NONE = 0, CR_LOG_ERROR, CR_LOG_WARN, CR_LOG_INFO, CR_LOG_DEBUG };

extern int cr_log_level_;   /* read via cr_log_enabled() */

void cr_log_write(int level, const char *file, int line, int err,
                  const char *fmt, ...) CR_PRINTF(5, 6);
/* Set the level (also done by cr_config_load from CRMPI_LOG). */
void cr_log_set_level(int level);
/* Rank shown in log lines; -1 (the default) shows none. */
void cr_log_set_rank(int rank);

static inline int cr_log_enabled(int level) { return level <= cr_log_level_; }

#define cr_log_(lvl, err, ...) do { if (cr_log_enabled(lvl)) \
        cr_log_write(lvl, __FILE__, __LINE__, err, __VA_ARGS__); } while (0)
#define cr_err(...)   cr_log_(CR_LOG_ERROR, 0, __VA_ARGS__)
#define cr_warn(...)  cr_log_(CR_LOG_WARN,  0, __VA_ARGS__)
#define cr_info(...)  cr_log_(CR_LOG_INFO,  0, __VA_ARGS__)
#define cr_dbg(...)   cr_log_(CR_LOG_DEBUG, 0, __VA_ARGS__)
/* Like cr_err, appending ": strerror(errno)". Captures errno first. */
#define cr_perr(...)  do { int e_ = errno; cr_log_(CR_LOG_ERROR, e_, __VA_ARGS__); } while (0)
/* Log a negative status code (from a callee) with its text. */
#define cr_errc(code, ...) cr_log_(CR_LOG_ERROR, (code) < 0 ? -(code) : (code), __VA_ARGS__)

#endif
