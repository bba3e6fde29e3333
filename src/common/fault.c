/*
 * fault.c - fault points (see fault.h): parse CRMPI_FAULT into specs,
 * count the hits of each named point, act at the chosen one.
 *
 * The model is CRIU's fault-injection.h and SQLite's test6.c: tests ask
 * for a failure at an exact point by name and count, so the Nth write or
 * the fsync of the index can be made to fail (or the process killed
 * there) deterministically, and the code's answer to that exact failure
 * is checked. Production pays one string-emptiness test per point.
 */
#include "fault.h"
#include "config.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

enum fault_action { ACT_KILL, ACT_EIO, ACT_ENOSPC };

#define MAX_SPECS 8

struct spec {
    char point[64];
    unsigned long n;
    enum fault_action action;
    unsigned long hits;
    long rank;             /* fire only in this rank (-1: any)            */
};

/* Every point of the code (fault_points.def). */
static const char *const known_points[] = {
#define CR_FAULT_POINT(name, module, kind, where) name,
#include "fault_points.def"
#undef CR_FAULT_POINT
};

int cr_fault_point_known(const char *name)
{
    for (size_t i = 0; i < sizeof known_points / sizeof known_points[0]; i++)
        if (!strcmp(known_points[i], name))
            return 1;
    return 0;
}

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static char parsed_src[sizeof(((struct cr_config *)0)->fault)];
static struct spec specs[MAX_SPECS];
static size_t nspecs;

static int parse_one(char *s, struct spec *sp)
{
    char *act = strchr(s, ':');
    if (act)
        *act++ = 0;
    char *hash = strchr(s, '#');
    if (hash)
        *hash++ = 0;
    char *at = strchr(s, '@');
    if (at)
        *at++ = 0;
    memset(sp, 0, sizeof *sp);
    if (!*s || strlen(s) >= sizeof sp->point)
        return -EINVAL;
    strcpy(sp->point, s);
    sp->n = 1;
    sp->rank = -1;
    if (hash) {
        char *end;
        sp->rank = strtol(hash, &end, 10);
        if (*end || !*hash || sp->rank < 0)
            return -EINVAL;
    }
    if (at) {
        char *end;
        sp->n = strtoul(at, &end, 10);
        if (*end || sp->n == 0)
            return -EINVAL;
    }
    if (!act || !strcmp(act, "kill"))
        sp->action = ACT_KILL;
    else if (!strcmp(act, "eio"))
        sp->action = ACT_EIO;
    else if (!strcmp(act, "enospc"))
        sp->action = ACT_ENOSPC;
    else
        return -EINVAL;
    return 0;
}

/* The rank the launcher gave this process (MPI may not be initialised, and
 * src/ never calls MPI): Open MPI, PMIx, PMI, Slurm. -1 if none. */
static long launcher_rank(void)
{
    static const char *const vars[] = { "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK",
                                        "SLURM_PROCID" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return strtol(v, NULL, 10);
    }
    return -1;
}

/* Called with fault_mu held when CRMPI_FAULT differs from what was parsed. */
static void parse_specs(const char *src)
{
    char buf[sizeof parsed_src];
    snprintf(parsed_src, sizeof parsed_src, "%s", src);
    snprintf(buf, sizeof buf, "%s", src);
    nspecs = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (nspecs == MAX_SPECS) {
            cr_err("CRMPI_FAULT: more than %d fault points; ignoring '%s'", MAX_SPECS, tok);
            break;
        }
        char t[sizeof buf];
        snprintf(t, sizeof t, "%s", tok);
        if (parse_one(t, &specs[nspecs]) < 0) {
            cr_err("CRMPI_FAULT: cannot parse '%s' (want POINT[@N][#R][:kill|eio|enospc])", tok);
            continue;
        }
        /* A misspelt point would silently never fire. */
        if (!cr_fault_point_known(specs[nspecs].point))
            cr_warn("CRMPI_FAULT: '%s' is not a fault point of this build "
                    "(src/common/fault_points.def)", specs[nspecs].point);
        nspecs++;
    }
}

int cr_fault(const char *point)
{
    const char *src = cr_config()->fault;
    if (!src[0])
        return 0;
    int rc = 0, kill = 0;
    pthread_mutex_lock(&fault_mu);
    if (strcmp(src, parsed_src))
        parse_specs(src);
    for (size_t i = 0; i < nspecs; i++) {
        struct spec *sp = &specs[i];
        if (strcmp(sp->point, point) || ++sp->hits != sp->n ||
            (sp->rank >= 0 && sp->rank != launcher_rank()))
            continue;
        if (sp->action == ACT_KILL)
            kill = 1;
        else
            rc = sp->action == ACT_EIO ? -EIO : -ENOSPC;
        cr_info("fault point %s: hit %lu, injecting %s", point, sp->hits,
                kill ? "SIGKILL" : rc == -EIO ? "EIO" : "ENOSPC");
    }
    pthread_mutex_unlock(&fault_mu);
    if (kill)
        raise(SIGKILL);
    return rc;
}

int cr_fault_errno(const char *point)
{
    int rc = cr_fault(point);
    if (rc < 0) {
        errno = -rc;
        return 1;
    }
    return 0;
}

unsigned long cr_fault_hits(const char *point)
{
    unsigned long n = 0;
    pthread_mutex_lock(&fault_mu);
    for (size_t i = 0; i < nspecs; i++)
        if (!strcmp(specs[i].point, point))
            n = specs[i].hits;
    pthread_mutex_unlock(&fault_mu);
    return n;
}

void cr_fault_reset(void)
{
    pthread_mutex_lock(&fault_mu);
    parsed_src[0] = 0;
    nspecs = 0;
    pthread_mutex_unlock(&fault_mu);
}
