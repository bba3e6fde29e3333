/*
 * slurm_app.c - the MPI program of the Slurm tests: a small iterative
 * computation with a deterministic final checksum, checkpointed when
 * crmpi_need_checkpoint() says so and stopping when crmpi_should_exit().
 *
 *   slurm_app STEPS [SLEEP_MS [first]]
 *
 * Every step each rank mixes its block of 64-bit words with the block of
 * its left neighbour (ring MPI_Sendrecv, so messages cross nodes) and the
 * ranks fold a global MPI_Allreduce into an accumulator; SLEEP_MS stretches
 * a step so a test can kill a node mid-run. With "first", steps are slow
 * only in the first run of a Slurm job (SLURM_RESTART_COUNT unset or 0, read
 * from /proc/self/environ at every step): the time-limit test needs a
 * first run longer than the time limit and a requeued run that finishes. Integer arithmetic only: the
 * checksum printed by rank 0 at the end is identical bit for bit however
 * often the run was interrupted and resumed.
 *
 * Two builds of the same source:
 *   slurm_app          (CRMPI_APP_LIBCRMPI) linked with libcrmpi: the state
 *                      lives in crmalloc() memory and on main's persistent
 *                      stack; crmpi_checkpoint() saves it, a restart resumes
 *                      after it. This is the end-to-end test of crmpi.
 *   slurm_app_applevel an ordinary MPI program that checkpoints its state
 *                      itself (one file per rank and epoch, committed by
 *                      rank 0 renaming app.commit) and uses crmpi's job
 *                      control (mpi-wrap/jobctl.c, linked in) exactly as
 *                      libcrmpi does. It tests the Slurm side - cluster,
 *                      launcher, requeue, stop signal - independently of
 *                      the checkpoint library.
 */
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef CRMPI_APP_LIBCRMPI
#include <crmpi.h>
#else
#include <fcntl.h>
#include <limits.h>
#include "jobctl.h"
#endif

#define WORDS 4096       /* per rank */
#define HALO  64         /* words sent to the right neighbour each step */

struct state {
    uint64_t magic;
    uint64_t step;
    uint64_t acc;
    uint64_t x[WORDS];
};
#define STATE_MAGIC 0x70704173697275ULL

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void die(const char *what, int code)
{
    fprintf(stderr, "slurm_app: %s failed (%d)\n", what, code);
    MPI_Abort(MPI_COMM_WORLD, 2);
    exit(2);
}

static void init_state(struct state *s, int rank)
{
    memset(s, 0, sizeof *s);
    s->magic = STATE_MAGIC;
    for (int i = 0; i < WORDS; i++)
        s->x[i] = mix((uint64_t)rank * WORDS + (uint64_t)i);
}

static void step(struct state *s, int rank, int size)
{
    uint64_t out[HALO], in[HALO];
    memcpy(out, s->x, sizeof out);
    int rc = MPI_Sendrecv(out, HALO, MPI_UINT64_T, (rank + 1) % size, 7,
                          in, HALO, MPI_UINT64_T, (rank + size - 1) % size, 7,
                          MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
        die("MPI_Sendrecv", rc);
    for (int i = 0; i < WORDS; i++)
        s->x[i] = mix(s->x[i] ^ in[i % HALO] ^ s->step);
    uint64_t local = s->x[s->step % WORDS], sum = 0;
    rc = MPI_Allreduce(&local, &sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS)
        die("MPI_Allreduce", rc);
    s->acc = mix(s->acc ^ sum);
    s->step++;
}

static uint64_t checksum(const struct state *s)
{
    uint64_t h = s->acc, all = 0;
    for (int i = 0; i < WORDS; i++)
        h = mix(h ^ s->x[i]);
    int rc = MPI_Allreduce(&h, &all, 1, MPI_UINT64_T, MPI_BXOR, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS)
        die("MPI_Allreduce", rc);
    return all;
}

/* SLURM_RESTART_COUNT of this process, from /proc/self/environ: after a
 * restart getenv() may see the environment saved in the checkpoint. */
static long restart_count(void)
{
    static const char key[] = "SLURM_RESTART_COUNT=";
    char buf[65536];
    long count = 0;
    FILE *f = fopen("/proc/self/environ", "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (!strncmp(buf + i, key, sizeof key - 1))
            count = strtol(buf + i + sizeof key - 1, NULL, 10);
    return count;
}

/* Sleep ms, or not at all in a requeued run when only_first. */
static void nap(long ms, int only_first)
{
    if (only_first && restart_count() > 0)
        return;
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#ifndef CRMPI_APP_LIBCRMPI
/* ---- application-level checkpoint (the ordinary-MPI build) ------------- */

static const char *ckpt_dir(void)
{
    const char *d = getenv("CRMPI_DIR");
    return d && *d ? d : "crmpi-ckpt";
}

static void path_of(char *buf, size_t n, uint64_t epoch, int rank)
{
    snprintf(buf, n, "%s/app.%" PRIu64 ".%d", ckpt_dir(), epoch, rank);
}

static int write_all(const char *path, const void *buf, size_t len)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -errno;
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) { int e = errno; close(fd); return -e; }
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) || close(fd) || rename(tmp, path))
        return -errno;
    return 0;
}

/* Collective: every rank writes its epoch file, then rank 0 commits. */
static void app_checkpoint(const struct state *s, int rank, uint64_t *epoch)
{
    char path[PATH_MAX];
    double t0 = MPI_Wtime();
    uint64_t e = *epoch + 1;
    path_of(path, sizeof path, e, rank);
    int rc = write_all(path, s, sizeof *s), worst = 0;
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (worst != 0)
        die("writing the checkpoint", worst);
    if (rank == 0) {
        char commit[PATH_MAX], text[32];
        snprintf(commit, sizeof commit, "%s/app.commit", ckpt_dir());
        snprintf(text, sizeof text, "%" PRIu64 "\n", e);
        if ((rc = write_all(commit, text, strlen(text))) != 0)
            die("committing the checkpoint", rc);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (e > 2) {                    /* keep the last two epochs */
        path_of(path, sizeof path, e - 2, rank);
        unlink(path);
    }
    *epoch = e;
    crmpi_jobctl_record_cost(MPI_Wtime() - t0);
    if ((rc = crmpi_jobctl_after_checkpoint(e)) != 0)
        die("crmpi_jobctl_after_checkpoint", rc);
}

/* Collective: the committed epoch (0 = none) and this rank's state. */
static uint64_t app_restore(struct state *s, int rank, int size)
{
    uint64_t epoch = 0;
    if (rank == 0) {
        char commit[PATH_MAX];
        snprintf(commit, sizeof commit, "%s/app.commit", ckpt_dir());
        FILE *f = fopen(commit, "r");
        if (f) {
            if (fscanf(f, "%" SCNu64, &epoch) != 1)
                epoch = 0;
            fclose(f);
        }
    }
    MPI_Bcast(&epoch, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (epoch == 0)
        return 0;
    char path[PATH_MAX];
    path_of(path, sizeof path, epoch, rank);
    FILE *f = fopen(path, "rb");
    if (!f || fread(s, sizeof *s, 1, f) != 1 || s->magic != STATE_MAGIC)
        die("reading the checkpoint", f ? -EINVAL : -errno);
    fclose(f);
    if (rank == 0)
        fprintf(stderr, "slurm_app: %d ranks resumed from epoch %" PRIu64 " at step %" PRIu64 "\n",
                size, epoch, s->step);
    return epoch;
}
#endif

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s STEPS [SLEEP_MS [first]]\n", argv[0]);
        return 2;
    }
    uint64_t steps = strtoull(argv[1], NULL, 0);
    long sleep_ms = argc > 2 ? strtol(argv[2], NULL, 0) : 0;
    int only_first = argc > 3 && !strcmp(argv[3], "first");
    int rank, size, rc;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

#ifdef CRMPI_APP_LIBCRMPI
    struct state *s = crmalloc(sizeof *s);
    if (!s)
        die("crmalloc", -ENOMEM);
    init_state(s, rank);
#else
    static struct state st;
    struct state *s = &st;
    uint64_t epoch;
    if ((rc = crmpi_jobctl_init()) != 0)
        die("crmpi_jobctl_init", rc);
    init_state(s, rank);
    epoch = app_restore(s, rank, size);
#endif
    while (s->step < steps) {
        step(s, rank, size);
        nap(sleep_ms, only_first);
        if ((rc = crmpi_need_checkpoint()) < 0)
            die("crmpi_need_checkpoint", rc);
        if (rc == 1) {
#ifdef CRMPI_APP_LIBCRMPI
            if ((rc = crmpi_checkpoint()) < 0)
                die("crmpi_checkpoint", rc);
            if (rc == CRMPI_RESTARTED && rank == 0)
                fprintf(stderr, "slurm_app: %d ranks restarted at step %" PRIu64 "\n", size, s->step);
#else
            app_checkpoint(s, rank, &epoch);
#endif
        }
        if (crmpi_should_exit()) {
            if (rank == 0)
                fprintf(stderr, "slurm_app: checkpointed at step %" PRIu64 ", stopping\n", s->step);
            MPI_Finalize();
            return crmpi_exit_code();
        }
    }
    uint64_t sum = checksum(s);
    if (rank == 0)
        printf("slurm_app: ranks=%d steps=%" PRIu64 " checksum=%016" PRIx64 "\n", size, steps, sum);
    MPI_Finalize();
    return 0;
}
