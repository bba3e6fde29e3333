/*
 * config.c - the table of environment variables and its one parser.
 */
#include "config.h"
#include "log.h"
#include "compiler.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum var_type { T_PATH, T_STR, T_SIZE, T_ADDR, T_UINT, T_BOOL, T_ENUM };

struct var {
    const char *name;
    enum var_type type;
    const char *def;
    size_t offset;
    const char *const *choices;   /* T_ENUM: NULL-terminated, index = value */
    const char *doc;
};

static const char *const tracker_names[] = { "auto", "uffd-async", "uffd-sync", "mprotect", NULL };
/* Index = bit mask: bit 0 SIGUSR1, bit 1 SIGTERM (mpi-wrap/jobctl.c). */
static const char *const stop_signal_names[] = { "none", "usr1", "term", "usr1,term", NULL };
static const char *const ckpt_mode_names[] = { "async", "sync", NULL };
static const char *const restore_names[] = { "eager", "lazy", NULL };
static const char *const log_names[] = { "none", "error", "warn", "info", "debug", NULL };

#define F(field) offsetof(struct cr_config, field)
static const struct var vars[] = {
    { "CRMPI_DIR", T_PATH, "crmpi-ckpt", F(dir), NULL,
      "checkpoint directory (relative paths are taken from the working directory at start)" },
    { "CRMPI_REGION_BASE", T_ADDR, "0x200000000000", F(region_base), NULL,
      "fixed virtual address of the persistent region" },
    { "CRMPI_REGION_MAX", T_SIZE, "64G", F(region_max), NULL,
      "maximum size of the persistent region (address space reserved, not memory)" },
    { "CRMPI_TRACKER", T_ENUM, "auto", F(tracker), tracker_names,
      "dirty-page tracker: auto, uffd-async, uffd-sync or mprotect" },
    { "CRMPI_LOG", T_ENUM, "error", F(log_level), log_names,
      "log level on stderr: none, error, warn, info or debug" },
    { "CRMPI_FULL_EVERY", T_UINT, "8", F(full_every), NULL,
      "every Nth checkpoint is full, the others incremental (1 = always full)" },
    { "CRMPI_KEEP", T_UINT, "2", F(keep), NULL,
      "number of committed checkpoints kept (older ones are garbage-collected)" },
    { "CRMPI_ALIGN", T_SIZE, "1M", F(align), NULL,
      "alignment of bulk data in checkpoint files (use the stripe size of a parallel FS)" },
    { "CRMPI_PREALLOC", T_BOOL, "1", F(prealloc), NULL,
      "allocate each rank's slice of a checkpoint file of 2 or more ranks (fallocate) "
      "before writing it" },
    { "CRMPI_GC_INLINE", T_BOOL, "0", F(gc_inline), NULL,
      "delete garbage-collected checkpoint files inside commit instead of in a helper thread" },
    { "CRMPI_RESTORE_READER", T_BOOL, "0", F(restore_reader), NULL,
      "eager restore reads in a reader thread ahead of the CRC checks (ranks with a spare core)" },
    { "CRMPI_HEAP_CHECK", T_BOOL, "0", F(heap_check), NULL,
      "check every heap invariant on every allocator call (slow; debugging)" },
    { "CRMPI_DISABLE", T_BOOL, "0", F(disable), NULL,
      "run without checkpoint/restart (checkpoint calls do nothing)" },
    { "CRMPI_INTERPOSE", T_BOOL, "1", F(interpose), NULL,
      "transparent mode: malloc of persistent threads from the persistent heap, "
      "globals of the executable and open files restored" },
    { "CRMPI_FAULT", T_STR, "", F(fault), NULL,
      "fault injection for tests: POINT[@N][:ACTION] (see tests/README)" },
    { "CRMPI_CKPT_INTERVAL", T_UINT, "0", F(ckpt_interval), NULL,
      "crmpi_need_checkpoint(): seconds between checkpoints (0: Young/Daly from the measured cost and CRMPI_MTBF)" },
    { "CRMPI_MTBF", T_UINT, "86400", F(mtbf), NULL,
      "mean time between failures of the job in seconds, for Young/Daly's interval sqrt(2*cost*MTBF)" },
    { "CRMPI_STOP_SIGNALS", T_ENUM, "usr1", F(stop_signals), stop_signal_names,
      "signals asking for checkpoint-and-stop (crmpi_should_exit): none, usr1, term or usr1,term" },
    { "CRMPI_CKPT_MODE", T_ENUM, "async", F(ckpt_mode), ckpt_mode_names,
      "async: copy dirty pages to a staging buffer, write in the background, commit at the next checkpoint/wait/exit; sync: write and commit inside the call (same value on every rank)" },
    { "CRMPI_STAGING_MAX", T_SIZE, "1G", F(staging_max), NULL,
      "largest staging buffer of async checkpoints per process; a checkpoint with more dirty bytes is written synchronously" },
    { "CRMPI_FULL_FROM_CHAIN", T_BOOL, "1", F(full_from_chain), NULL,
      "async full epochs: copy only the pages written since the previous epoch in the call; the writer takes the others from the previous epoch's files (0: copy every page in the call)" },
    { "CRMPI_LAYOUT_HELPER", T_STR, "", F(layout_helper), NULL,
      "program that lays out the checkpoint files (rank 0's, for all ranks) outside the checkpoint call: "
      "empty for the installed crmpi-layout-helper, off to lay them out in the call" },
    { "CRMPI_WRITER_NICE", T_UINT, "19", F(writer_nice), NULL,
      "nice value (0-19) of the background checkpoint writer thread: where it shares a CPU with the computation, the computation runs first" },
    { "CRMPI_WRITER_DELAY_US", T_UINT, "2000", F(writer_delay_us), NULL,
      "microseconds after a checkpoint call has returned before its background writer starts "
      "(unless something waits for it): the writer's first work changes page tables, which held back "
      "ranks still finishing the call" },
    { "CRMPI_STAGE_THREADS", T_UINT, "0", F(stage_threads), NULL,
      "threads (the checkpointing one included) that copy the dirty pages to the staging buffer while the application is blocked; "
      "0: the PUs the rank has to itself (its CPU binding, shared among the node's ranks when unbound), at most 4" },
    { "CRMPI_COLL_SPIN_US", T_UINT, "100", F(coll_spin_us), NULL,
      "microseconds a rank polls for one of the checkpoint protocol's own collectives before it sleeps between polls, "
      "leaving the CPU to ranks still working (ranks sharing CPUs)" },
    { "CRMPI_RESTORE", T_ENUM, "eager", F(restore), restore_names,
      "restart: eager (read and verify everything, then resume) or lazy (resume at once; pages are fetched on first touch and by a background prefetch)" },
};
#undef F

int cr_parse_uint(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -EINVAL;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

int cr_parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -EINVAL;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno)
        return -EINVAL;
    int shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    }
    if (shift && (*end == 'i' || *end == 'I'))
        end++;
    if (shift && (*end == 'B' || *end == 'b'))
        end++;
    if (*end || (shift && v > (~0ULL >> shift)))
        return -EINVAL;
    *out = (size_t)(v << shift);
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = { "1", "yes", "true", "on" };
    static const char *const no[]  = { "0", "no", "false", "off", "" };
    for (size_t i = 0; i < CR_ARRAY_SIZE(yes); i++)
        if (!strcasecmp(s, yes[i])) { *out = 1; return 0; }
    for (size_t i = 0; i < CR_ARRAY_SIZE(no); i++)
        if (!strcasecmp(s, no[i])) { *out = 0; return 0; }
    return -EINVAL;
}

static int parse_var(const struct var *v, const char *s, struct cr_config *cfg)
{
    char *field = (char *)cfg + v->offset;
    unsigned long long u;
    size_t sz;
    switch (v->type) {
    case T_PATH: {
        char *dst = field;
        if (!*s)
            return -EINVAL;
        if (s[0] == '/') {
            if (strlen(s) >= PATH_MAX)
                return -ENAMETOOLONG;
            strcpy(dst, s);
            return 0;
        }
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return -errno;
        if ((size_t)snprintf(dst, PATH_MAX, "%s/%s", cwd, s) >= PATH_MAX)
            return -ENAMETOOLONG;
        return 0;
    }
    case T_STR:
        if (strlen(s) >= sizeof cfg->fault)
            return -ENAMETOOLONG;
        strcpy(field, s);
        return 0;
    case T_SIZE:
        if (cr_parse_size(s, &sz))
            return -EINVAL;
        *(size_t *)field = sz;
        return 0;
    case T_ADDR:
        if (cr_parse_uint(s, &u))
            return -EINVAL;
        *(uintptr_t *)field = (uintptr_t)u;
        return 0;
    case T_UINT:
        if (cr_parse_uint(s, &u) || u > UINT32_MAX)
            return -EINVAL;
        *(unsigned *)field = (unsigned)u;
        return 0;
    case T_BOOL:
        return parse_bool(s, (int *)field);
    case T_ENUM:
        for (int i = 0; v->choices[i]; i++)
            if (!strcasecmp(s, v->choices[i])) { *(int *)field = i; return 0; }
        return -EINVAL;
    }
    return -EINVAL;
}

int cr_config_parse(struct cr_config *cfg)
{
    int rc = 0;
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < CR_ARRAY_SIZE(vars); i++) {
        const struct var *v = &vars[i];
        const char *s = getenv(v->name);
        if (s && parse_var(v, s, cfg) == 0)
            continue;
        if (s) {
            cr_err("invalid %s='%s' (%s); using the default '%s'", v->name, s, v->doc, v->def);
            rc = -EINVAL;
        }
        if (parse_var(v, v->def, cfg) != 0)
            rc = -EINVAL;   /* a default that does not parse is a bug in the table */
    }
    if (cfg->full_every == 0)
        cfg->full_every = 1;
    if (cfg->keep == 0)
        cfg->keep = 1;
    if (!cr_is_pow2(cfg->align)) {
        cr_err("CRMPI_ALIGN=%zu is not a power of two; using 1M", cfg->align);
        cfg->align = 1 << 20;
        rc = -EINVAL;
    }
    return rc;
}

static struct cr_config the_config;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

static void config_init(void)
{
    (void)cr_config_reload();
}

int cr_config_reload(void)
{
    /* The log level must be known before parsing reports errors. */
    const char *lvl = getenv("CRMPI_LOG");
    if (lvl)
        for (int i = 0; log_names[i]; i++)
            if (!strcasecmp(lvl, log_names[i]))
                cr_log_set_level(i);
    int rc = cr_config_parse(&the_config);
    cr_log_set_level(the_config.log_level);
    return rc;
}

const struct cr_config *cr_config(void)
{
    pthread_once(&config_once, config_init);
    return &the_config;
}

void cr_config_describe(FILE *out)
{
    for (size_t i = 0; i < CR_ARRAY_SIZE(vars); i++) {
        const char *cur = getenv(vars[i].name);
        fprintf(out, "%-18s default %-16s %s%s%s%s\n", vars[i].name,
                *vars[i].def ? vars[i].def : "(empty)", vars[i].doc,
                cur ? " [set: " : "", cur ? cur : "", cur ? "]" : "");
    }
}
