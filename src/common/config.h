/*
 * config.h - run-time configuration from environment variables.
 *
 * One table (config.c) names every variable, its type, default and meaning;
 * cr_config_load() parses them all, and `crmpi-ckpt env` prints the table.
 * Invalid values are an error naming the variable, never silently ignored.
 */
#ifndef CR_CONFIG_H
#define CR_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cr_tracker_kind {
    CR_TRACKER_AUTO = 0,
    CR_TRACKER_UFFD_ASYNC,   /* userfaultfd async WP + PAGEMAP_SCAN (kernel >= 6.7) */
    CR_TRACKER_UFFD_SYNC,    /* userfaultfd WP with a handler thread (>= 5.7)     */
    CR_TRACKER_MPROTECT,     /* mprotect + SIGSEGV                                  */
};

enum cr_ckpt_mode {
    CR_CKPT_ASYNC = 0,       /* snapshot to a staging buffer, background writer   */
    CR_CKPT_SYNC,            /* write and commit inside the checkpoint call       */
};

struct cr_config {
    char     dir[PATH_MAX];   /* CRMPI_DIR: checkpoint directory (absolute)     */
    uintptr_t region_base;    /* CRMPI_REGION_BASE                              */
    size_t   region_max;      /* CRMPI_REGION_MAX                               */
    int      tracker;         /* CRMPI_TRACKER (enum cr_tracker_kind)           */
    int      log_level;       /* CRMPI_LOG (enum cr_log_level)                  */
    unsigned full_every;      /* CRMPI_FULL_EVERY: every Nth epoch is full      */
    unsigned keep;            /* CRMPI_KEEP: committed checkpoints to keep      */
    size_t   align;           /* CRMPI_ALIGN: alignment of bulk data in files   */
    int      prealloc;        /* CRMPI_PREALLOC: fallocate each rank's slice    */
    int      gc_inline;       /* CRMPI_GC_INLINE: delete old epochs in commit   */
    int      restore_reader;  /* CRMPI_RESTORE_READER: reader thread in restore */
    int      heap_check;      /* CRMPI_HEAP_CHECK: check heap on every op       */
    int      disable;         /* CRMPI_DISABLE: run without checkpoint/restart  */
    int      interpose;       /* CRMPI_INTERPOSE: transparent mode (malloc, globals, files) */
    char     fault[256];      /* CRMPI_FAULT: fault-injection spec (tests)      */
    char     layout_helper[256]; /* CRMPI_LAYOUT_HELPER: "", "off" or a program */
    unsigned ckpt_interval;   /* CRMPI_CKPT_INTERVAL: seconds, 0 = Young/Daly   */
    unsigned mtbf;            /* CRMPI_MTBF: mean time between failures, s      */
    int      stop_signals;    /* CRMPI_STOP_SIGNALS: bit 0 SIGUSR1, bit 1 SIGTERM */
    int      ckpt_mode;       /* CRMPI_CKPT_MODE (enum cr_ckpt_mode)            */
    size_t   staging_max;     /* CRMPI_STAGING_MAX: bytes of the staging buffer */
    int      full_from_chain; /* CRMPI_FULL_FROM_CHAIN: compose async full epochs */
    int      restore;         /* CRMPI_RESTORE: enum cr_restore_mode            */
    unsigned writer_nice;     /* CRMPI_WRITER_NICE: nice value of the writer    */
    unsigned stage_threads;   /* CRMPI_STAGE_THREADS: staging copy team, 0 auto */
    unsigned coll_spin_us;    /* CRMPI_COLL_SPIN_US: protocol collectives poll, then nap */
    unsigned writer_delay_us; /* CRMPI_WRITER_DELAY_US: writer starts after the call */
};
enum cr_restore_mode { CR_RESTORE_EAGER = 0, CR_RESTORE_LAZY };

/* Parse the environment into *cfg (defaults for unset variables).
 * Returns 0, or -EINVAL after logging which variable is wrong. */
int cr_config_parse(struct cr_config *cfg);
/* The process-wide configuration, parsed on first use. If parsing fails,
 * the error is logged and defaults are used for the wrong variables. */
const struct cr_config *cr_config(void);
/* Re-read the environment (tests change variables between cases). */
int cr_config_reload(void);
/* Print the variable table (name, default, meaning, current value). */
void cr_config_describe(FILE *out);

/* Parsers, shared with tools: "64M", "1G", "4096"; hex or decimal addresses. */
int cr_parse_size(const char *s, size_t *out);
int cr_parse_uint(const char *s, unsigned long long *out);

#endif
