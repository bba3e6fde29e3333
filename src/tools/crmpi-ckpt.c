/*
 * crmpi-ckpt - inspect a crmpi checkpoint directory.
 *
 *   crmpi-ckpt list DIR            every epoch file: number, full or
 *                                  incremental (and parent), committed or
 *                                  not, ranks, data bytes, pages, threads,
 *                                  creation date
 *   crmpi-ckpt verify DIR [EPOCH]  the index, the chain of EPOCH (default:
 *                                  the newest committed) and every checksum
 *                                  of every rank in it; exit 0 valid,
 *                                  1 invalid, 2 usage
 *   crmpi-ckpt env                 the CRMPI_* variables, defaults, values
 *
 * It reads with the same hostile-input reader as the restart path
 * (src/store/reader.c), so what it calls valid is what a restart accepts,
 * except for the identity of the restarting process, which only that
 * process can check.
 */
#include "store/internal.h"
#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: crmpi-ckpt list DIR\n"
               "       crmpi-ckpt verify DIR [EPOCH]\n"
               "       crmpi-ckpt env\n");
}

struct summary {
    uint64_t bytes, pages, threads;
    int complete;              /* every rank row valid */
};

static void summarize(struct cr_epfile *f, struct summary *s)
{
    memset(s, 0, sizeof *s);
    s->complete = 1;
    int lvl = cr_log_level_;
    cr_log_set_level(CR_LOG_NONE);     /* list is a survey; verify explains */
    for (uint32_t r = 0; r < f->h.nranks; r++) {
        struct cr_rank_row row;
        struct cr_index_row *rows;
        if (cr_epfile_rank(f, r, &row, &rows, NULL) < 0) {
            s->complete = 0;
            continue;
        }
        s->bytes += row.data_bytes;
        s->threads += row.nthreads;
        for (uint64_t i = 0; i < row.nextents; i++)
            s->pages += rows[i].len / CR_PAGE_SIZE;
        free(rows);
    }
    cr_log_set_level(lvl);
}

static int epoch_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int list_files(const char *dir, uint64_t **out, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
    }
    size_t cap = 16;
    *out = malloc(cap * sizeof **out);
    *n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned long long v;
        int len = 0;
        if (sscanf(de->d_name, "epoch-%12llu.h5%n", &v, &len) != 1 || de->d_name[len])
            continue;
        if (*n == cap)
            *out = realloc(*out, (cap *= 2) * sizeof **out);
        (*out)[(*n)++] = v;
    }
    closedir(d);
    qsort(*out, *n, sizeof **out, epoch_cmp);
    return 0;
}

static int cmd_list(const char *dir)
{
    struct cr_index ix = { 0 };
    int irc = cr_index_read(dir, &ix);
    if (irc == -ENOENT)
        printf("%s: no index (nothing committed)\n", dir);
    else if (irc < 0)
        printf("%s: index unusable: %s\n", dir, cr_strerror(irc));
    uint64_t *ep;
    size_t n;
    if (list_files(dir, &ep, &n) < 0)
        return 1;
    printf("%-8s %-18s %-11s %6s %14s %10s %8s  %s\n", "EPOCH", "KIND", "STATE", "RANKS",
           "BYTES", "PAGES", "THREADS", "DATE");
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX], kind[32], date[32] = "-";
        snprintf(path, sizeof path, "%s/" CR_EPOCH_FMT, dir, (unsigned long long)ep[i]);
        const char *state = cr_index_find(&ix, ep[i]) ? "committed" : "uncommitted";
        struct cr_epfile f;
        int lvl = cr_log_level_;
        cr_log_set_level(CR_LOG_NONE);
        int rc = cr_epfile_open(path, &f);
        cr_log_set_level(lvl);
        if (rc < 0) {
            printf("%-8llu %-18s %-11s (unreadable: %s)\n", (unsigned long long)ep[i], "?",
                   state, cr_strerror(rc));
            continue;
        }
        struct summary s;
        summarize(&f, &s);
        if (f.h.full)
            snprintf(kind, sizeof kind, "full");
        else
            snprintf(kind, sizeof kind, "incr(parent %llu)", (unsigned long long)f.h.parent);
        time_t t = (time_t)f.h.ctime;
        struct tm tm;
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
        printf("%-8llu %-18s %-11s %6u %14llu %10llu %8llu  %s%s\n", (unsigned long long)ep[i],
               kind, state, f.h.nranks, (unsigned long long)s.bytes,
               (unsigned long long)s.pages, (unsigned long long)s.threads, date,
               s.complete ? "" : "  (incomplete)");
        cr_epfile_close(&f);
    }
    free(ep);
    cr_index_free(&ix);
    return 0;
}

/* Every check of one epoch file, all ranks. Returns 0 or the first error. */
static int verify_file(const char *dir, const struct cr_index *ix, const struct cr_index_entry *e)
{
    char path[PATH_MAX];
    struct cr_epfile f;
    snprintf(path, sizeof path, "%s/%s", dir, e->name);
    int rc = cr_epfile_open(path, &f);
    if (rc < 0) {
        printf("  epoch %llu: %s: %s\n", (unsigned long long)e->epoch, e->name,
               rc == -ENOENT ? "file missing" : cr_strerror(rc));
        return rc == -ENOENT ? CR_ECORRUPT : rc;
    }
    if (memcmp(f.h.job_uuid, ix->job_uuid, CR_UUID_BYTES)) {
        printf("  epoch %llu: belongs to another job (UUID)\n", (unsigned long long)e->epoch);
        rc = CR_EFOREIGN;
    } else if (f.h.epoch != e->epoch || f.h.parent != e->parent ||
               f.h.full != !!(e->flags & CR_ENTRY_FULL) || f.h.nranks != e->nranks) {
        printf("  epoch %llu: file and index disagree on epoch/parent/kind/ranks\n",
               (unsigned long long)e->epoch);
        rc = CR_ECORRUPT;
    }
    uint64_t bytes = 0;
    for (uint32_t r = 0; rc == 0 && r < f.h.nranks; r++) {
        struct cr_rank_row row;
        struct cr_index_row *rows = NULL;
        char *id = NULL;
        rc = cr_epfile_rank(&f, r, &row, &rows, NULL);
        if (rc == 0)
            rc = cr_epfile_identity(&f, &row, &id);
        if (rc == 0)
            rc = cr_epfile_verify_data(&f, &row, rows);
        if (rc == 0)
            bytes += row.data_bytes;
        else
            printf("  epoch %llu rank %u: %s\n", (unsigned long long)e->epoch, r,
                   cr_strerror(rc));
        free(rows);
        free(id);
    }
    if (rc == 0)
        printf("  epoch %llu (%s): ok, %u ranks, %llu data bytes checked\n",
               (unsigned long long)e->epoch, f.h.full ? "full" : "incremental", f.h.nranks,
               (unsigned long long)bytes);
    cr_epfile_close(&f);
    return rc;
}

/* The chain ending at epoch, verified oldest first. */
static int verify_chain(const char *dir, const struct cr_index *ix, uint64_t epoch)
{
    uint64_t chain[4096];
    size_t n = 0;
    for (uint64_t ep = epoch; ;) {
        const struct cr_index_entry *e = cr_index_find(ix, ep);
        if (!e || n == 4096) {
            printf("  epoch %llu: the chain needs epoch %llu, which the index does not name\n",
                   (unsigned long long)epoch, (unsigned long long)ep);
            return CR_ECORRUPT;
        }
        chain[n++] = ep;
        if (e->flags & CR_ENTRY_FULL)
            break;
        ep = e->parent;
    }
    int rc = 0;
    for (size_t i = n; i-- > 0 && rc == 0;)
        rc = verify_file(dir, ix, cr_index_find(ix, chain[i]));
    return rc;
}

static int cmd_verify(const char *dir, const char *epoch_arg)
{
    unsigned long long want = 0;
    if (epoch_arg && (cr_parse_uint(epoch_arg, &want) < 0 || want == 0)) {
        fprintf(stderr, "crmpi-ckpt: '%s' is not an epoch number\n", epoch_arg);
        return 2;
    }
    struct cr_index ix;
    int rc = cr_index_read(dir, &ix);
    if (rc < 0) {
        printf("INVALID: %s: %s\n", dir, rc == -ENOENT ? "no index: nothing committed"
                                                       : cr_strerror(rc));
        return 1;
    }
    printf("index: %u committed epoch(s), checksum ok\n", ix.n);
    if (ix.n == 0 || (want && !cr_index_find(&ix, want))) {
        printf("INVALID: %s: %s\n", dir, want ? "that epoch is not committed"
                                              : "no committed epoch");
        cr_index_free(&ix);
        return 1;
    }
    uint64_t target = want ? want : ix.e[ix.n - 1].epoch;
    rc = verify_chain(dir, &ix, target);
    if (rc == 0) {
        printf("VALID: epoch %llu and its chain pass every check\n", (unsigned long long)target);
    } else {
        printf("INVALID: epoch %llu: %s\n", (unsigned long long)target, cr_strerror(rc));
        for (uint32_t i = ix.n; !want && i-- > 0;) {
            if (ix.e[i].epoch >= target)
                continue;
            printf("checking older epoch %llu:\n", (unsigned long long)ix.e[i].epoch);
            if (verify_chain(dir, &ix, ix.e[i].epoch) == 0) {
                printf("a restart would use epoch %llu\n", (unsigned long long)ix.e[i].epoch);
                break;
            }
        }
    }
    cr_index_free(&ix);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    (void)cr_config();
    if (argc == 2 && !strcmp(argv[1], "env")) {
        cr_config_describe(stdout);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "list"))
        return cmd_list(argv[2]);
    if ((argc == 3 || argc == 4) && !strcmp(argv[1], "verify"))
        return cmd_verify(argv[2], argc == 4 ? argv[3] : NULL);
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
