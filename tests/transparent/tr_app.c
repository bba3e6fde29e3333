/*
 * tr_app.c - a serial particle code written as its author would, with plain
 * malloc/realloc, global variables and an fopen'd output file appended each
 * step; one cr_checkpoint() call in the time-step loop is the only change.
 *
 *   tr_app STEPS PARTICLES OUTFILE
 *
 * Particles move in a periodic box binned into link cells (arrays rebuilt
 * with malloc/free each step, a realloc'd history grows); each step appends
 * a line with the energy to OUTFILE. At the end the program prints the
 * output file back and a checksum of the final state: the same bytes
 * whether or not it was killed and restarted (tests/transparent, killrun).
 *
 * Like codes we did not write, it leans on the C library allocating for it:
 * a strdup'd label per step kept in a realloc'd array, a qsort of a copy of
 * the particles (glibc sorts that size in a malloc'd buffer) for the median
 * speed, a wide printf field every 50 steps, getline to read the file back,
 * and a plain pthread started each step (not persistent: its scratch
 * memory is glibc's) that sums the kinetic energy.
 */
#include <cr.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NC 8                          /* cells per dimension */

struct particle { double x[3], v[3]; };

static struct particle *parts;        /* global pointers to heap memory */
static int nparts;
static int *cell_head, *cell_next;
static double box = 10.0, dt = 0.005;
static double *history;               /* grows by realloc */
static size_t nhistory;
static FILE *out;
static uint64_t rng = 88172645463325252ULL;   /* global state in .data */
static char **labels;                 /* strdup'd, one per step */
static double ekin_thread;            /* written by a plain pthread */

static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static int cell_of(const double *x)
{
    int c[3];
    for (int d = 0; d < 3; d++) {
        c[d] = (int)(x[d] / box * NC);
        if (c[d] >= NC)
            c[d] = NC - 1;
    }
    return (c[0] * NC + c[1]) * NC + c[2];
}

static void bin(void)
{
    free(cell_head);
    free(cell_next);
    cell_head = malloc(NC * NC * NC * sizeof *cell_head);
    cell_next = malloc((size_t)nparts * sizeof *cell_next);
    for (int c = 0; c < NC * NC * NC; c++)
        cell_head[c] = -1;
    for (int i = 0; i < nparts; i++) {
        int c = cell_of(parts[i].x);
        cell_next[i] = cell_head[c];
        cell_head[c] = i;
    }
}

/* Soft repulsion between particles of the same cell. */
static double step(void)
{
    double epot = 0, ekin = 0;
    for (int c = 0; c < NC * NC * NC; c++)
        for (int i = cell_head[c]; i >= 0; i = cell_next[i])
            for (int j = cell_next[i]; j >= 0; j = cell_next[j]) {
                double d[3], r2 = 0.01;
                for (int k = 0; k < 3; k++) {
                    d[k] = parts[i].x[k] - parts[j].x[k];
                    r2 += d[k] * d[k];
                }
                double f = 0.01 / (r2 * r2);
                epot += 0.01 / r2;
                for (int k = 0; k < 3; k++) {
                    parts[i].v[k] += f * d[k] * dt;
                    parts[j].v[k] -= f * d[k] * dt;
                }
            }
    for (int i = 0; i < nparts; i++)
        for (int k = 0; k < 3; k++) {
            parts[i].x[k] = fmod(parts[i].x[k] + parts[i].v[k] * dt + box, box);
            ekin += 0.5 * parts[i].v[k] * parts[i].v[k];
        }
    return epot + ekin;
}

static int by_speed(const void *a, const void *b)
{
    const struct particle *p = a, *q = b;
    double s = p->v[0] * p->v[0] + p->v[1] * p->v[1] + p->v[2] * p->v[2];
    double t = q->v[0] * q->v[0] + q->v[1] * q->v[1] + q->v[2] * q->v[2];
    return (s > t) - (s < t);
}

static double median_speed2(void)
{
    struct particle *copy = malloc((size_t)nparts * sizeof *copy);
    memcpy(copy, parts, (size_t)nparts * sizeof *copy);
    qsort(copy, (size_t)nparts, sizeof *copy, by_speed);
    const double *v = copy[nparts / 2].v;
    double m = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
    free(copy);
    return m;
}

/* A helper thread as a library or an OpenMP-less code would start one. */
static void *kinetic(void *unused)
{
    double *e = malloc((size_t)nparts * sizeof *e);
    double sum = 0;
    for (int i = 0; i < nparts; i++) {
        e[i] = 0.5 * (parts[i].v[0] * parts[i].v[0] + parts[i].v[1] * parts[i].v[1] +
                      parts[i].v[2] * parts[i].v[2]);
        sum += e[i];
    }
    free(e);
    ekin_thread = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s STEPS PARTICLES OUTFILE\n", argv[0]);
        return 2;
    }
    int nsteps = atoi(argv[1]);
    nparts = atoi(argv[2]);
    parts = malloc((size_t)nparts * sizeof *parts);
    out = fopen(argv[3], "w");
    if (!parts || !out) {
        perror("tr_app");
        return 1;
    }
    for (int i = 0; i < nparts; i++)
        for (int k = 0; k < 3; k++) {
            parts[i].x[k] = urand() * box;
            parts[i].v[k] = urand() - 0.5;
        }
    fprintf(out, "# step energy\n");
    for (int s = 0; s < nsteps; s++) {
        bin();
        double e = step();
        history = realloc(history, (nhistory + 1) * sizeof *history);
        history[nhistory++] = e;
        pthread_t helper;
        if (pthread_create(&helper, NULL, kinetic, NULL) != 0 ||
            pthread_join(helper, NULL) != 0) {
            perror("tr_app: pthread");
            return 1;
        }
        char label[64];
        snprintf(label, sizeof label, "step-%d-%.6f", s, ekin_thread);
        labels = realloc(labels, (size_t)(s + 1) * sizeof *labels);
        labels[s] = strdup(label);
        fprintf(out, "%d %.12e %.9e %.9e\n", s, e, ekin_thread, median_speed2());
        if (s % 50 == 49)
            fprintf(out, "%*d\n", 6000, s);
        if (s % 16 == 15)             /* a kick from the random stream */
            parts[(int)(urand() * nparts)].v[0] += urand() - 0.5;
        int rc = cr_checkpoint();
        if (rc == CR_RESTARTED)
            fprintf(stderr, "tr_app: restarted at step %d\n", s);
        else if (rc < 0)
            fprintf(stderr, "tr_app: checkpoint failed at step %d\n", s);
    }
    fclose(out);
    out = fopen(argv[3], "r");
    char *line = NULL;
    size_t cap = 0;
    while (out && getline(&line, &cap, out) > 0)
        fputs(line, stdout);
    free(line);
    if (out)
        fclose(out);
    printf("last label %s\n", nsteps > 0 ? labels[nsteps - 1] : "-");
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < nhistory; i++) {
        uint64_t b;
        memcpy(&b, &history[i], sizeof b);
        h = (h ^ b) * 1099511628211ULL;
    }
    for (int i = 0; i < nsteps; i++)
        for (const char *c = labels[i]; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    printf("steps %d history %zu hash %016llx\n", nsteps, nhistory, (unsigned long long)h);
    return 0;
}
