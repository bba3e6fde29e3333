/*
 * md_proxy.c - a small molecular-dynamics code in the style of real MPI MD
 * proxies, written with plain malloc, globals and fopen. The only crmpi
 * change: one crmpi_checkpoint() call in the time-step loop (and -lcrmpi).
 *
 *   md_proxy STEPS PARTICLES_PER_RANK OUTFILE
 *
 * The periodic box is cut into slabs along x, one per rank; each slab is
 * binned into link cells. Every step: particles that left the slab migrate
 * to the neighbour (counts, then the particles with a derived struct
 * datatype); ghost particles within the cutoff of each face go to the
 * neighbour as an indexed datatype over the particle array (built and
 * freed each step); short-range forces over the link cells; velocity
 * Verlet-style update; the total energy is reduced every step and rank 0
 * appends it to OUTFILE. At the end rank 0 prints OUTFILE and a checksum
 * of all particles.
 */
#include <crmpi.h>
#include <mpi.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { double x[3], v[3]; long id; } particle_t;

/* Globals, as such codes keep them. */
static int rank, nranks, left, right;
static double L = 12.0, rc = 1.0, dt = 0.002;
static double xlo, xhi;
static particle_t *p;                 /* owned particles, then ghosts */
static int n, cap;
static int ncell[3];
static int *head, *next;
static MPI_Datatype particle_type;
static FILE *energy_file;
static uint64_t seed;

static double urand(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return (double)(seed >> 11) / 9007199254740992.0;
}

static void reserve(int want)
{
    if (want <= cap)
        return;
    cap = want + want / 2 + 16;
    p = realloc(p, (size_t)cap * sizeof *p);
    if (!p) {
        fprintf(stderr, "md_proxy: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

static void make_types(void)
{
    int bl[3] = { 3, 3, 1 };
    MPI_Aint disp[3] = { offsetof(particle_t, x), offsetof(particle_t, v),
                         offsetof(particle_t, id) };
    MPI_Datatype t[3] = { MPI_DOUBLE, MPI_DOUBLE, MPI_LONG }, tmp;
    MPI_Type_create_struct(3, bl, disp, t, &tmp);
    MPI_Type_create_resized(tmp, 0, sizeof(particle_t), &particle_type);
    MPI_Type_commit(&particle_type);
    MPI_Type_free(&tmp);
}

/* Send the particles selected by keep()==0 to dst; receive from src. */
static void migrate(void)
{
    int *go_l = malloc((size_t)n * sizeof *go_l), *go_r = malloc((size_t)n * sizeof *go_r);
    int nl = 0, nr = 0, k = 0;
    particle_t *out = malloc((size_t)(n + 1) * sizeof *out);
    for (int i = 0; i < n; i++) {
        double x = p[i].x[0];
        if (x < xlo && !(rank == 0 && x >= L - (xhi - xlo)))
            go_l[nl++] = i;
        else if (x >= xhi && !(rank == nranks - 1 && x < (xhi - xlo)))
            go_r[nr++] = i;
        else
            out[k++] = p[i];
    }
    particle_t *sl = malloc((size_t)(nl + 1) * sizeof *sl), *sr = malloc((size_t)(nr + 1) * sizeof *sr);
    for (int i = 0; i < nl; i++) sl[i] = p[go_l[i]];
    for (int i = 0; i < nr; i++) sr[i] = p[go_r[i]];
    int inl = 0, inr = 0;
    MPI_Sendrecv(&nl, 1, MPI_INT, left, 1, &inr, 1, MPI_INT, right, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Sendrecv(&nr, 1, MPI_INT, right, 2, &inl, 1, MPI_INT, left, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    memcpy(p, out, (size_t)k * sizeof *p);
    n = k;
    reserve(n + inl + inr);
    MPI_Sendrecv(sl, nl, particle_type, left, 3, p + n, inr, particle_type, right, 3,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    n += inr;
    MPI_Sendrecv(sr, nr, particle_type, right, 4, p + n, inl, particle_type, left, 4,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    n += inl;
    for (int i = 0; i < n; i++)      /* periodic wrap */
        p[i].x[0] = fmod(p[i].x[0] + L, L);
    free(go_l); free(go_r); free(out); free(sl); free(sr);
}

/* Ghosts: owned particles within rc of a face go to that neighbour. */
static int halo(void)
{
    int *il = malloc((size_t)(n + 1) * sizeof *il), *ir = malloc((size_t)(n + 1) * sizeof *ir);
    int nl = 0, nr = 0;
    for (int i = 0; i < n; i++) {
        double x = p[i].x[0];
        if (fmod(x - xlo + L, L) < rc)
            il[nl++] = i;
        if (fmod(xhi - x + L, L) <= rc)
            ir[nr++] = i;
    }
    MPI_Datatype tl, tr;
    MPI_Type_create_indexed_block(nl, 1, il, particle_type, &tl);
    MPI_Type_create_indexed_block(nr, 1, ir, particle_type, &tr);
    MPI_Type_commit(&tl);
    MPI_Type_commit(&tr);
    int gl = 0, gr = 0;
    MPI_Sendrecv(&nl, 1, MPI_INT, left, 5, &gr, 1, MPI_INT, right, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Sendrecv(&nr, 1, MPI_INT, right, 6, &gl, 1, MPI_INT, left, 6, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    reserve(n + gl + gr);
    MPI_Sendrecv(p, 1, tl, left, 7, p + n, gr, particle_type, right, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Sendrecv(p, 1, tr, right, 8, p + n + gr, gl, particle_type, left, 8, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
    MPI_Type_free(&tl);
    MPI_Type_free(&tr);
    free(il);
    free(ir);
    return gl + gr;
}

static int cell_index(const double *x)
{
    double lx = fmod(x[0] - xlo + 2 * L, L);   /* ghosts of the far side wrap */
    if (lx > L / 2)
        lx -= L;
    int c[3];
    c[0] = (int)floor((lx + rc) / rc);
    c[1] = (int)(x[1] / rc);
    c[2] = (int)(x[2] / rc);
    for (int d = 0; d < 3; d++)
        c[d] = c[d] < 0 ? 0 : c[d] >= ncell[d] ? ncell[d] - 1 : c[d];
    return (c[0] * ncell[1] + c[1]) * ncell[2] + c[2];
}

static double forces(int nghost)
{
    int total = n + nghost, cells = ncell[0] * ncell[1] * ncell[2];
    free(head);
    free(next);
    head = malloc((size_t)cells * sizeof *head);
    next = malloc((size_t)total * sizeof *next);
    for (int c = 0; c < cells; c++)
        head[c] = -1;
    for (int i = 0; i < total; i++) {
        int c = cell_index(p[i].x);
        next[i] = head[c];
        head[c] = i;
    }
    double epot = 0;
    for (int i = 0; i < n; i++) {
        int ci = cell_index(p[i].x), cx = ci / (ncell[1] * ncell[2]);
        int cy = (ci / ncell[2]) % ncell[1], cz = ci % ncell[2];
        for (int dx = -1; dx <= 1; dx++)
            for (int dy = -1; dy <= 1; dy++)
                for (int dz = -1; dz <= 1; dz++) {
                    int x = cx + dx, y = cy + dy, z = cz + dz;
                    if (x < 0 || y < 0 || z < 0 || x >= ncell[0] || y >= ncell[1] || z >= ncell[2])
                        continue;
                    for (int j = head[(x * ncell[1] + y) * ncell[2] + z]; j >= 0; j = next[j]) {
                        if (j == i)
                            continue;
                        double d[3], r2 = 0;
                        for (int k = 0; k < 3; k++) {
                            d[k] = p[i].x[k] - p[j].x[k];
                            if (d[k] > L / 2) d[k] -= L;
                            if (d[k] < -L / 2) d[k] += L;
                            r2 += d[k] * d[k];
                        }
                        if (r2 >= rc * rc)
                            continue;
                        double s = 1 - r2 / (rc * rc);
                        epot += 0.5 * s * s;
                        for (int k = 0; k < 3; k++)
                            p[i].v[k] += 4 * s / (rc * rc) * d[k] * dt;
                    }
                }
    }
    return epot;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (argc < 4) {
        if (rank == 0)
            fprintf(stderr, "usage: md_proxy STEPS PARTICLES_PER_RANK OUTFILE\n");
        MPI_Finalize();
        return 2;
    }
    int steps = atoi(argv[1]), np = atoi(argv[2]);
    left = (rank + nranks - 1) % nranks;
    right = (rank + 1) % nranks;
    xlo = L * rank / nranks;
    xhi = L * (rank + 1) / nranks;
    ncell[0] = (int)ceil((xhi - xlo) / rc) + 2;
    ncell[1] = ncell[2] = (int)(L / rc);
    seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(rank + 1);
    make_types();
    reserve(np);
    for (n = 0; n < np; n++) {
        p[n].x[0] = xlo + urand() * (xhi - xlo);
        p[n].x[1] = urand() * L;
        p[n].x[2] = urand() * L;
        for (int k = 0; k < 3; k++)
            p[n].v[k] = urand() - 0.5;
        p[n].id = (long)rank * np + n;
    }
    if (rank == 0) {
        energy_file = fopen(argv[3], "w");
        if (!energy_file) {
            perror(argv[3]);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        fprintf(energy_file, "# step particles kinetic potential total\n");
    }
    for (int step = 0; step < steps; step++) {
        migrate();
        int ghosts = halo();
        double e[3] = { 0, forces(ghosts), (double)n }, sum[3];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 3; k++) {
                p[i].x[k] += p[i].v[k] * dt;
                if (k > 0)
                    p[i].x[k] = fmod(p[i].x[k] + L, L);
                e[0] += 0.5 * p[i].v[k] * p[i].v[k];
            }
        MPI_Allreduce(e, sum, 3, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (rank == 0)
            fprintf(energy_file, "%d %.0f %.10e %.10e %.10e\n", step, sum[2], sum[0], sum[1],
                    sum[0] + sum[1]);
        if (crmpi_checkpoint() < 0 && rank == 0)
            fprintf(stderr, "md_proxy: checkpoint at step %d failed\n", step);
    }
    uint64_t h = 1469598103934665603ULL, all = 0;
    for (int i = 0; i < n; i++) {
        uint64_t b[6];
        memcpy(b, p[i].x, sizeof b);
        for (int k = 0; k < 6; k++)
            h += (b[k] ^ (uint64_t)p[i].id) * 1099511628211ULL;
    }
    MPI_Reduce(&h, &all, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        fclose(energy_file);
        FILE *f = fopen(argv[3], "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            fputs(line, stdout);
        if (f)
            fclose(f);
        printf("md_proxy: %d steps, checksum %016llx\n", steps, (unsigned long long)all);
    }
    MPI_Type_free(&particle_type);
    MPI_Finalize();
    return 0;
}
