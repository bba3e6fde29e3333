/*
 * test_vhandle.c - virtual handles and their rebuild, under mpirun.
 *
 * Each test creates MPI objects through the wrappers, records what can be
 * observed about them (group membership, rank order, topology, type
 * signature via MPI_Type_get_envelope/get_contents, size, extent), then
 * simulates a restart: every real handle is freed and forgotten
 * (vh_release_reals) and everything is rebuilt from its recipe
 * (vh_rebuild_all). The application's handles must be unchanged and
 * describe equal objects, and traffic on rebuilt communicators must work.
 * Run at 2 and 4 ranks; every rank runs the same tests in the same order.
 */
#include "cutest_mpi.h"
#include "protocol.h"
#include "vhandle.h"
#include "wrap_support.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rank, size;

static void simulate_restart(void)
{
    vh_release_reals();
    CU_ASSERT_EQUAL_FATAL(vh_rebuild_all(), 0);
}

/* Every rank of comm sends its world rank to every other: checks the rank
 * order and that the communicator carries traffic. */
static int exchange_world_ranks(MPI_Comm comm)
{
    int n, me, ok = 1;
    MPI_Comm_size(comm, &n);
    MPI_Comm_rank(comm, &me);
    int *got = calloc((size_t)n, sizeof *got);
    MPI_Allgather(&rank, 1, MPI_INT, got, 1, MPI_INT, comm);
    for (int peer = 0; peer < n; peer++) {
        int msg = -1;
        MPI_Sendrecv(&rank, 1, MPI_INT, (me + 1) % n, 3, &msg, 1, MPI_INT,
                     (me - 1 + n) % n, 3, comm, MPI_STATUS_IGNORE);
        ok &= msg == got[(me - 1 + n) % n];
    }
    free(got);
    return ok;
}

static void world_ranks(MPI_Comm comm, int *out, int *n)
{
    MPI_Comm_size(comm, n);
    MPI_Allgather(&rank, 1, MPI_INT, out, 1, MPI_INT, comm);
}

static void test_handles_are_virtual_and_predefined_pass_through(void)
{
    MPI_Comm d;
    CU_ASSERT_EQUAL(MPI_Comm_dup(MPI_COMM_WORLD, &d), MPI_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(vh_get(d, VH_COMM));
    CU_ASSERT_PTR_NULL(vh_get(MPI_COMM_WORLD, VH_COMM));
    CU_ASSERT_PTR_EQUAL(vh_in_comm(MPI_COMM_WORLD), MPI_COMM_WORLD);
    CU_ASSERT_PTR_EQUAL(vh_in_type(MPI_INT), MPI_INT);
    CU_ASSERT_PTR_EQUAL(vh_in_op(MPI_SUM), MPI_SUM);
    MPI_Datatype t;
    MPI_Type_contiguous(1, MPI_INT, &t);
    CU_ASSERT_PTR_NOT_NULL(vh_get(t, VH_TYPE));
    CU_ASSERT_PTR_NULL(vh_get(t, VH_COMM));   /* kinds are not confused */
    MPI_Type_free(&t);
    MPI_Comm_free(&d);
    CU_ASSERT_PTR_EQUAL(d, MPI_COMM_NULL);
}

static void test_dup_split_create_rebuilt_with_same_members(void)
{
    MPI_Comm dup, split, created, cgroup, stype;
    MPI_Group wg, evens;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    MPI_Comm_split(MPI_COMM_WORLD, rank % 2, size - rank, &split);   /* reversed order */
    MPI_Comm_group(MPI_COMM_WORLD, &wg);
    int ne = (size + 1) / 2, ev[64];
    for (int i = 0; i < ne; i++)
        ev[i] = 2 * i;
    MPI_Group_incl(wg, ne, ev, &evens);
    MPI_Comm_create(MPI_COMM_WORLD, evens, &created);
    cgroup = MPI_COMM_NULL;
    if (rank % 2 == 0)
        MPI_Comm_create_group(MPI_COMM_WORLD, evens, 9, &cgroup);
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &stype);

    MPI_Comm all[] = { dup, split, created, cgroup, stype };
    int before[5][64], nb[5], after[5][64], na[5];
    for (int i = 0; i < 5; i++)
        if (all[i] != MPI_COMM_NULL)
            world_ranks(all[i], before[i], &nb[i]);
    CU_ASSERT_EQUAL(created == MPI_COMM_NULL, rank % 2 == 1);
    simulate_restart();
    for (int i = 0; i < 5; i++) {
        if (all[i] == MPI_COMM_NULL)
            continue;
        world_ranks(all[i], after[i], &na[i]);
        CU_ASSERT_EQUAL(na[i], nb[i]);
        CU_ASSERT_EQUAL(memcmp(before[i], after[i], (size_t)nb[i] * sizeof(int)), 0);
        CU_ASSERT_TRUE(exchange_world_ranks(all[i]));
    }
    int gsize, grank;
    MPI_Group_size(evens, &gsize);
    MPI_Group_rank(evens, &grank);
    CU_ASSERT_EQUAL(gsize, ne);
    CU_ASSERT_EQUAL(grank, rank % 2 ? MPI_UNDEFINED : rank / 2);
    for (int i = 0; i < 5; i++)
        if (all[i] != MPI_COMM_NULL)
            MPI_Comm_free(&all[i]);
    MPI_Group_free(&evens);
    MPI_Group_free(&wg);
}

static void test_cart_graph_distgraph_topologies_survive(void)
{
    int dims[2] = { 0, 0 }, periods[2] = { 1, 0 };
    MPI_Dims_create(size, 2, dims);
    MPI_Comm cart, graph, dist, sub;
    MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 1, &cart);
    int remain[2] = { 1, 0 };
    MPI_Cart_sub(cart, remain, &sub);
    int index[64], edges[128], ne = 0;
    for (int i = 0; i < size; i++) {          /* ring graph */
        edges[ne++] = (i + 1) % size;
        edges[ne++] = (i - 1 + size) % size;
        index[i] = ne;
    }
    MPI_Graph_create(MPI_COMM_WORLD, size, index, edges, 0, &graph);
    int src = (rank - 1 + size) % size, dst = (rank + 1) % size, w1 = 7, w2 = 9;
    MPI_Dist_graph_create_adjacent(MPI_COMM_WORLD, 1, &src, &w1, 1, &dst, &w2,
                                   MPI_INFO_NULL, 0, &dist);
    int coords_b[2], cartrank_b, sub_n_b;
    MPI_Comm_rank(cart, &cartrank_b);
    MPI_Cart_coords(cart, cartrank_b, 2, coords_b);
    MPI_Comm_size(sub, &sub_n_b);

    simulate_restart();

    int t;
    MPI_Topo_test(cart, &t);
    CU_ASSERT_EQUAL(t, MPI_CART);
    int d2[2], p2[2], c2[2], r2;
    MPI_Cart_get(cart, 2, d2, p2, c2);
    MPI_Comm_rank(cart, &r2);
    CU_ASSERT_EQUAL(r2, cartrank_b);
    CU_ASSERT_TRUE(d2[0] == dims[0] && d2[1] == dims[1] && p2[0] == 1 && p2[1] == 0);
    CU_ASSERT_TRUE(c2[0] == coords_b[0] && c2[1] == coords_b[1]);
    int s;
    MPI_Comm_size(sub, &s);
    CU_ASSERT_EQUAL(s, sub_n_b);
    MPI_Topo_test(graph, &t);
    CU_ASSERT_EQUAL(t, MPI_GRAPH);
    int nn, nedges;
    MPI_Graphdims_get(graph, &nn, &nedges);
    CU_ASSERT_TRUE(nn == size && nedges == ne);
    MPI_Topo_test(dist, &t);
    CU_ASSERT_EQUAL(t, MPI_DIST_GRAPH);
    int in, out, weighted, s2, sw, d3, dw;
    MPI_Dist_graph_neighbors_count(dist, &in, &out, &weighted);
    CU_ASSERT_TRUE(in == 1 && out == 1 && weighted);
    MPI_Dist_graph_neighbors(dist, 1, &s2, &sw, 1, &d3, &dw);
    CU_ASSERT_TRUE(s2 == src && sw == 7 && d3 == dst && dw == 9);
    /* neighbourhood collective on the rebuilt distributed graph */
    int sendv = rank, recvv = -1;
    MPI_Neighbor_alltoall(&sendv, 1, MPI_INT, &recvv, 1, MPI_INT, dist);
    CU_ASSERT_EQUAL(recvv, src);
    CU_ASSERT_TRUE(exchange_world_ranks(cart));
    MPI_Comm_free(&sub);
    MPI_Comm_free(&cart);
    MPI_Comm_free(&graph);
    MPI_Comm_free(&dist);
}

/* Signature of a datatype: envelope + contents (children compared as the
 * application's handles), size, extent, true extent. */
struct sig {
    int ni, na, nd, comb, size;
    int ints[64];
    MPI_Aint aints[64], lb, extent, tlb, textent;
    MPI_Datatype types[16];
};

static void signature(MPI_Datatype t, struct sig *s)
{
    memset(s, 0, sizeof *s);
    MPI_Type_get_envelope(t, &s->ni, &s->na, &s->nd, &s->comb);
    MPI_Type_get_contents(t, s->ni, s->na, s->nd, s->ints, s->aints, s->types);
    for (int i = 0; i < s->nd; i++) {          /* drop the new references */
        MPI_Datatype c = s->types[i];
        int a, b, d, comb;
        MPI_Type_get_envelope(c, &a, &b, &d, &comb);
        if (comb != MPI_COMBINER_NAMED)
            MPI_Type_free(&c);
    }
    MPI_Type_size(t, &s->size);
    MPI_Type_get_extent(t, &s->lb, &s->extent);
    MPI_Type_get_true_extent(t, &s->tlb, &s->textent);
}

static int sig_equal(const struct sig *a, const struct sig *b)
{
    return a->ni == b->ni && a->na == b->na && a->nd == b->nd && a->comb == b->comb &&
           a->size == b->size && a->lb == b->lb && a->extent == b->extent &&
           a->tlb == b->tlb && a->textent == b->textent &&
           !memcmp(a->ints, b->ints, (size_t)a->ni * sizeof(int)) &&
           !memcmp(a->aints, b->aints, (size_t)a->na * sizeof(MPI_Aint)) &&
           !memcmp(a->types, b->types, (size_t)a->nd * sizeof(MPI_Datatype));
}

#define NTYPES 12
static void make_types(MPI_Datatype *t)
{
    int bl[3] = { 1, 2, 3 }, disp[3] = { 0, 4, 10 };
    MPI_Aint adisp[3] = { 0, 16, 48 };
    MPI_Type_contiguous(3, MPI_DOUBLE, &t[0]);
    MPI_Type_vector(4, 2, 5, MPI_INT, &t[1]);
    MPI_Type_create_hvector(3, 1, 24, t[0], &t[2]);            /* child is virtual */
    MPI_Type_indexed(3, bl, disp, MPI_INT, &t[3]);
    MPI_Type_create_hindexed(3, bl, adisp, MPI_CHAR, &t[4]);
    MPI_Type_create_indexed_block(3, 2, disp, MPI_SHORT, &t[5]);
    MPI_Datatype st[3] = { MPI_INT, t[1], MPI_DOUBLE };
    MPI_Type_create_struct(3, bl, adisp, st, &t[6]);
    int gs[2] = { 8, 6 }, ss[2] = { 3, 2 }, starts[2] = { 1, 2 };
    MPI_Type_create_subarray(2, gs, ss, starts, MPI_ORDER_C, MPI_FLOAT, &t[7]);
    int dgs[1] = { 16 }, dist[1] = { MPI_DISTRIBUTE_BLOCK }, darg[1] = { MPI_DISTRIBUTE_DFLT_DARG },
        ps[1] = { size };
    MPI_Type_create_darray(size, rank, 1, dgs, dist, darg, ps, MPI_ORDER_C, MPI_INT, &t[8]);
    MPI_Type_create_resized(t[1], -8, 200, &t[9]);
    MPI_Type_dup(t[6], &t[10]);
    MPI_Type_create_hindexed_block(2, 3, adisp, MPI_INT, &t[11]);
    for (int i = 0; i < NTYPES; i++)
        MPI_Type_commit(&t[i]);
}

static void test_every_datatype_constructor_rebuilds_same_signature(void)
{
    MPI_Datatype t[NTYPES];
    make_types(t);
    static struct sig before[NTYPES], after[NTYPES];
    for (int i = 0; i < NTYPES; i++) {
        CU_ASSERT_PTR_NOT_NULL(vh_get(t[i], VH_TYPE));
        signature(t[i], &before[i]);
    }
    simulate_restart();
    for (int i = 0; i < NTYPES; i++) {
        signature(t[i], &after[i]);
        if (!sig_equal(&before[i], &after[i]))
            CU_FAIL("rebuilt datatype differs");
    }
    for (int i = NTYPES - 1; i >= 0; i--)
        MPI_Type_free(&t[i]);
}

static void test_child_type_freed_before_restart_still_rebuilds_parent(void)
{
    MPI_Datatype child, parent;
    MPI_Type_vector(3, 1, 4, MPI_DOUBLE, &child);
    MPI_Type_contiguous(2, child, &parent);
    MPI_Type_commit(&parent);
    MPI_Type_free(&child);                      /* legal: parent keeps it */
    struct sig b, a;
    signature(parent, &b);
    simulate_restart();
    signature(parent, &a);
    CU_ASSERT_EQUAL(a.comb, MPI_COMBINER_CONTIGUOUS);
    CU_ASSERT_EQUAL(a.size, b.size);
    CU_ASSERT_EQUAL(a.extent, b.extent);
    MPI_Type_free(&parent);
}

static void test_rebuilt_datatype_carries_strided_traffic(void)
{
    MPI_Datatype col;
    MPI_Type_vector(4, 1, 4, MPI_INT, &col);    /* a column of a 4x4 matrix */
    MPI_Type_commit(&col);
    simulate_restart();
    int m[16], r[16];
    for (int i = 0; i < 16; i++) {
        m[i] = rank * 100 + i;
        r[i] = -1;
    }
    int to = (rank + 1) % size, from = (rank - 1 + size) % size;
    MPI_Sendrecv(m + 1, 1, col, to, 0, r + 2, 1, col, from, 0, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
    int ok = 1;
    for (int i = 0; i < 16; i++)
        ok &= r[i] == (i % 4 == 2 ? from * 100 + (i - 1) : -1);
    CU_ASSERT_TRUE(ok);
    MPI_Type_free(&col);
}

static void my_max(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    int *a = in, *b = inout;
    for (int i = 0; i < *len; i++)
        b[i] = a[i] > b[i] ? a[i] : b[i];
}

static void test_user_op_info_and_errhandler_rebuilt(void)
{
    MPI_Op op;
    MPI_Op_create(my_max, 1, &op);
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "crmpi_key", "value42");
    MPI_Comm c;
    MPI_Comm_dup(MPI_COMM_WORLD, &c);
    MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
    CU_ASSERT_EQUAL(vh_snapshot(), 0);
    simulate_restart();
    int v = rank, m = -1;
    MPI_Allreduce(&v, &m, 1, MPI_INT, op, c);
    CU_ASSERT_EQUAL(m, size - 1);
    char val[64];
    int flag = 0;
    MPI_Info_get(info, "crmpi_key", 63, val, &flag);
    CU_ASSERT_TRUE(flag && !strcmp(val, "value42"));
    /* MPI_ERRORS_RETURN was re-attached: an invalid rank returns an error. */
    CU_ASSERT_NOT_EQUAL(MPI_Send(&v, 1, MPI_INT, size + 5, 0, c), MPI_SUCCESS);
    MPI_Op_free(&op);
    MPI_Info_free(&info);
    MPI_Comm_free(&c);
}

static MPI_Datatype op_seen_type;

static void sum_pairs(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    op_seen_type = *dt;
    int *a = in, *b = inout;
    for (int i = 0; i < 2 * *len; i++)
        b[i] += a[i];
}

/* A user op's function is given the application's datatype handle (not
 * Open MPI's), before and after a restart. */
static void test_user_op_gets_the_applications_datatype(void)
{
    MPI_Datatype pair;
    MPI_Type_contiguous(2, MPI_INT, &pair);
    MPI_Type_commit(&pair);
    MPI_Op op;
    CU_ASSERT_EQUAL_FATAL(MPI_Op_create(sum_pairs, 1, &op), MPI_SUCCESS);
    for (int round = 0; round < 2; round++) {
        if (round)
            simulate_restart();
        int v[2] = { rank, 1 }, sum[2] = { -1, -1 };
        op_seen_type = MPI_DATATYPE_NULL;
        CU_ASSERT_EQUAL(MPI_Allreduce(v, sum, 1, pair, op, MPI_COMM_WORLD), MPI_SUCCESS);
        CU_ASSERT_TRUE(sum[0] == size * (size - 1) / 2 && sum[1] == size);
        int called = op_seen_type != MPI_DATATYPE_NULL, any = 0;
        MPI_Allreduce(&called, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        CU_ASSERT_TRUE(any);                      /* some rank applied it */
        if (called)
            CU_ASSERT_PTR_EQUAL(op_seen_type, pair);
    }
    MPI_Op_free(&op);
    MPI_Type_free(&pair);
}

/* MPI lets the application free an op that a pending non-blocking
 * collective uses: the collective still completes with it, and after the
 * next checkpoint new ops work (the freed op's slot serves again). */
static void test_user_op_freed_under_a_pending_collective(void)
{
    MPI_Datatype pair;
    MPI_Type_contiguous(2, MPI_INT, &pair);
    MPI_Type_commit(&pair);
    for (int round = 0; round < 70; round++) {      /* more than the 64 slots */
        MPI_Op op;
        CU_ASSERT_EQUAL_FATAL(MPI_Op_create(sum_pairs, 1, &op), MPI_SUCCESS);
        int v[2] = { rank, round }, sum[2] = { -1, -1 };
        MPI_Request r;
        CU_ASSERT_EQUAL(MPI_Iallreduce(v, sum, 1, pair, op, MPI_COMM_WORLD, &r), MPI_SUCCESS);
        CU_ASSERT_EQUAL(MPI_Op_free(&op), MPI_SUCCESS);
        op_seen_type = MPI_DATATYPE_NULL;
        CU_ASSERT_EQUAL(MPI_Wait(&r, MPI_STATUS_IGNORE), MPI_SUCCESS);
        CU_ASSERT_TRUE(sum[0] == size * (size - 1) / 2 && sum[1] == size * round);
        if (op_seen_type != MPI_DATATYPE_NULL)
            CU_ASSERT_PTR_EQUAL(op_seen_type, pair);
        if (round % 16 == 15) {                      /* checkpoints release the slots */
            CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);
            CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
        }
    }
    MPI_Type_free(&pair);
}

static int errh_calls;

static void count_errh(MPI_Comm *c, int *code, ...)
{
    (void)c;
    (void)code;
    errh_calls++;
}

/* MPI lets the application free an error handler that a communicator
 * still uses: after a restart the communicator must still have it. */
static void test_freed_attached_errhandler_survives_restart(void)
{
    MPI_Errhandler e;
    MPI_Comm_create_errhandler(count_errh, &e);
    MPI_Comm d;
    MPI_Comm_dup(MPI_COMM_WORLD, &d);
    MPI_Comm_set_errhandler(d, e);
    CU_ASSERT_EQUAL(MPI_Errhandler_free(&e), MPI_SUCCESS);
    CU_ASSERT_PTR_EQUAL(e, MPI_ERRHANDLER_NULL);
    simulate_restart();
    errh_calls = 0;
    int v = rank;
    CU_ASSERT_NOT_EQUAL(MPI_Send(&v, 1, MPI_INT, size + 5, 0, d), MPI_SUCCESS);
    CU_ASSERT_EQUAL(errh_calls, 1);
    /* MPI_Comm_get_errhandler hands out a handle the caller frees */
    MPI_Errhandler g = MPI_ERRHANDLER_NULL;
    CU_ASSERT_EQUAL(MPI_Comm_get_errhandler(d, &g), MPI_SUCCESS);
    CU_ASSERT_PTR_NOT_EQUAL(g, MPI_ERRHANDLER_NULL);
    CU_ASSERT_EQUAL(MPI_Errhandler_free(&g), MPI_SUCCESS);
    CU_ASSERT_NOT_EQUAL(MPI_Send(&v, 1, MPI_INT, size + 5, 0, d), MPI_SUCCESS);
    CU_ASSERT_EQUAL(errh_calls, 2);
    MPI_Comm_free(&d);
}

/* Communicators inherit their parent's error handler; the rebuild makes
 * them from MPI_COMM_WORLD of a fresh MPI, whose handler is the default
 * then (simulated below), so it must apply what each inherited. */
static void test_inherited_errhandler_survives_restart(void)
{
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm d, s;
    MPI_Comm_dup(MPI_COMM_WORLD, &d);
    MPI_Comm_split(d, rank % 2, rank, &s);
    vh_release_reals();
    PMPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);   /* a fresh MPI */
    CU_ASSERT_EQUAL_FATAL(vh_rebuild_all(), 0);
    MPI_Comm cs[3] = { MPI_COMM_WORLD, d, s };
    for (int i = 0; i < 3; i++) {
        MPI_Errhandler e;
        CU_ASSERT_EQUAL(MPI_Comm_get_errhandler(cs[i], &e), MPI_SUCCESS);
        CU_ASSERT_PTR_EQUAL(e, MPI_ERRORS_RETURN);
    }
    int v = rank;
    CU_ASSERT_NOT_EQUAL(MPI_Send(&v, 1, MPI_INT, size + 5, 0, s), MPI_SUCCESS);
    MPI_Comm_free(&s);
    MPI_Comm_free(&d);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
}

static int deleted, *last_deleted;

static int count_delete(MPI_Comm c, int key, void *val, void *extra)
{
    (void)c; (void)key; (void)extra;
    deleted++;
    last_deleted = val;
    return MPI_SUCCESS;
}

/* The test uses the MPI-1 names MPI_Attr_put/get too (deprecated). */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* Attributes on MPI_COMM_WORLD, a dup'ed communicator (one key copied by
 * MPI_COMM_DUP_FN into a further dup, one not) and a datatype are there
 * after a restart, under the application's key numbers, though the fresh
 * MPI gives the keys other numbers (a key made first takes the lowest). */
static void test_attributes_survive_restart_under_the_same_keys(void)
{
    static int wv, dv, nv, tv;
    int ka, kb, kt;
    CU_ASSERT_EQUAL_FATAL(MPI_Comm_create_keyval(MPI_COMM_DUP_FN, count_delete, &ka, NULL),
                          MPI_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, count_delete, &kb, NULL),
                          MPI_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(MPI_Type_create_keyval(MPI_TYPE_NULL_COPY_FN,
                                                 MPI_TYPE_NULL_DELETE_FN, &kt, NULL),
                          MPI_SUCCESS);
    MPI_Comm d, d2;
    MPI_Comm_dup(MPI_COMM_WORLD, &d);
    MPI_Comm_set_attr(MPI_COMM_WORLD, ka, &wv);
    MPI_Comm_set_attr(d, ka, &dv);
    MPI_Attr_put(d, kb, &nv);                 /* the MPI-1 name */
    MPI_Comm_dup(d, &d2);                     /* carries ka (DUP_FN), not kb */
    MPI_Datatype t;
    MPI_Type_contiguous(3, MPI_INT, &t);
    MPI_Type_commit(&t);
    MPI_Type_set_attr(t, kt, &tv);
    CU_ASSERT_EQUAL(vh_snapshot(), 0);       /* as every checkpoint does */
    vh_release_reals();
    int dummy;                                /* the fresh MPI's numbering differs */
    PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, MPI_COMM_NULL_DELETE_FN, &dummy, NULL);
    CU_ASSERT_EQUAL_FATAL(vh_rebuild_all(), 0);
    void *v = NULL;
    int flag = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, ka, &v, &flag);
    CU_ASSERT_TRUE(flag && v == &wv);
    MPI_Comm_get_attr(d, ka, &v, &flag);
    CU_ASSERT_TRUE(flag && v == &dv);
    MPI_Attr_get(d, kb, &v, &flag);
    CU_ASSERT_TRUE(flag && v == &nv);
    MPI_Comm_get_attr(d2, ka, &v, &flag);
    CU_ASSERT_TRUE(flag && v == &dv);
    MPI_Comm_get_attr(d2, kb, &v, &flag);
    CU_ASSERT_FALSE(flag);
    MPI_Type_get_attr(t, kt, &v, &flag);
    CU_ASSERT_TRUE(flag && v == &tv);
    int *ub = NULL;                           /* predefined keys pass through */
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag);
    CU_ASSERT_TRUE(flag && ub && *ub >= 32767);
    /* the restored value is deleted with its communicator, by its key's
     * delete function */
    deleted = 0;
    MPI_Comm_free(&d2);
    CU_ASSERT_EQUAL(deleted, 1);
    MPI_Comm_delete_attr(d, kb);
    CU_ASSERT_TRUE(deleted == 2 && last_deleted == &nv);
    MPI_Comm_delete_attr(MPI_COMM_WORLD, ka);
    CU_ASSERT_TRUE(deleted == 3 && last_deleted == &wv);
    MPI_Comm_free(&d);
    MPI_Type_free(&t);
    CU_ASSERT_EQUAL(MPI_Comm_free_keyval(&ka), MPI_SUCCESS);
    CU_ASSERT_EQUAL(ka, MPI_KEYVAL_INVALID);
    MPI_Comm_free_keyval(&kb);
    MPI_Type_free_keyval(&kt);
    PMPI_Comm_free_keyval(&dummy);
}

/* What a key's callbacks were last given. */
static struct { MPI_Comm comm; MPI_Datatype type; int key; void *extra; int calls; } cb;

static int note_copy(MPI_Comm c, int key, void *extra, void *in, void *out, int *flag)
{
    cb.comm = c, cb.key = key, cb.extra = extra, cb.calls++;
    *(void **)out = in;
    *flag = 1;
    return MPI_SUCCESS;
}

static int note_delete(MPI_Comm c, int key, void *val, void *extra)
{
    (void)val;
    cb.comm = c, cb.key = key, cb.extra = extra, cb.calls++;
    return MPI_SUCCESS;
}

static int note_type_delete(MPI_Datatype t, int key, void *val, void *extra)
{
    (void)val;
    cb.type = t, cb.key = key, cb.extra = extra, cb.calls++;
    return MPI_SUCCESS;
}

/* A key's copy and delete functions are given the application's handles,
 * key number and extra state (Open MPI's are others), before and after a
 * restart; the key's callbacks still run for an attribute set under a key
 * freed meanwhile. */
static void test_attribute_callbacks_get_the_applications_handles(void)
{
    static int val, extra;
    int k, kt;
    CU_ASSERT_EQUAL_FATAL(MPI_Comm_create_keyval(note_copy, note_delete, &k, &extra),
                          MPI_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(MPI_Type_create_keyval(MPI_TYPE_NULL_COPY_FN, note_type_delete, &kt,
                                                 &extra), MPI_SUCCESS);
    MPI_Comm d, d2;
    MPI_Datatype t;
    MPI_Comm_dup(MPI_COMM_WORLD, &d);
    MPI_Type_contiguous(2, MPI_INT, &t);
    for (int round = 0; round < 2; round++) {
        if (round) {
            CU_ASSERT_EQUAL(vh_snapshot(), 0);
            simulate_restart();
        }
        MPI_Comm_set_attr(d, k, &val);
        memset(&cb, 0, sizeof cb);
        MPI_Comm_dup(d, &d2);                        /* copy */
        CU_ASSERT_TRUE(cb.calls == 1 && cb.comm == d && cb.key == k && cb.extra == &extra);
        memset(&cb, 0, sizeof cb);
        MPI_Comm_delete_attr(d2, k);                 /* delete */
        CU_ASSERT_TRUE(cb.calls == 1 && cb.comm == d2 && cb.key == k && cb.extra == &extra);
        MPI_Comm_free(&d2);
        MPI_Type_set_attr(t, kt, &val);
        memset(&cb, 0, sizeof cb);
        MPI_Type_delete_attr(t, kt);
        CU_ASSERT_TRUE(cb.calls == 1 && cb.type == t && cb.key == kt && cb.extra == &extra);
    }
    int kept = k;
    MPI_Comm_free_keyval(&k);                        /* the attribute on d stays */
    memset(&cb, 0, sizeof cb);
    MPI_Comm_free(&d);
    CU_ASSERT_TRUE(cb.calls == 1 && cb.key == kept && cb.extra == &extra);
    MPI_Type_free(&t);
    MPI_Type_free_keyval(&kt);
}

/* Names given to MPI_COMM_SELF, a communicator and a datatype come back
 * after a restart; renaming keeps the last name. */
static void test_object_names_survive_restart(void)
{
    MPI_Comm d;
    MPI_Datatype t;
    MPI_Comm_dup(MPI_COMM_WORLD, &d);
    MPI_Type_contiguous(2, MPI_DOUBLE, &t);
    MPI_Comm_set_name(d, "first name");
    MPI_Comm_set_name(d, "solver comm");
    MPI_Type_set_name(t, "pair of doubles");
    MPI_Comm_set_name(MPI_COMM_SELF, "my self");
    vh_release_reals();
    PMPI_Comm_set_name(MPI_COMM_SELF, "MPI_COMM_SELF");   /* a fresh MPI's */
    CU_ASSERT_EQUAL_FATAL(vh_rebuild_all(), 0);
    char name[MPI_MAX_OBJECT_NAME];
    int len = 0;
    MPI_Comm_get_name(d, name, &len);
    CU_ASSERT_STRING_EQUAL(name, "solver comm");
    MPI_Type_get_name(t, name, &len);
    CU_ASSERT_STRING_EQUAL(name, "pair of doubles");
    MPI_Comm_get_name(MPI_COMM_SELF, name, &len);
    CU_ASSERT_STRING_EQUAL(name, "my self");
    MPI_Comm_set_name(MPI_COMM_SELF, "MPI_COMM_SELF");
    MPI_Comm_free(&d);
    MPI_Type_free(&t);
}

static void test_get_contents_returns_virtual_children(void)
{
    MPI_Datatype child, parent;
    MPI_Type_contiguous(2, MPI_INT, &child);
    MPI_Type_vector(2, 1, 3, child, &parent);
    int ni, na, nd, comb, ints[4];
    MPI_Aint a[1];
    MPI_Datatype kids[1];
    MPI_Type_get_envelope(parent, &ni, &na, &nd, &comb);
    MPI_Type_get_contents(parent, ni, na, nd, ints, a, kids);
    CU_ASSERT_PTR_EQUAL(kids[0], child);
    CU_ASSERT_EQUAL(ints[0], 2);
    MPI_Type_free(&kids[0]);
    MPI_Type_free(&parent);
    MPI_Type_free(&child);
}

static void test_uncheckpointable_calls_are_refused_by_name(void)
{
    MPI_Win win;
    int *shared;
    CU_ASSERT_EQUAL(MPI_Win_allocate_shared(16, sizeof(int), MPI_INFO_NULL, MPI_COMM_WORLD,
                                            &shared, &win), MPI_ERR_UNSUPPORTED_OPERATION);
    char port[MPI_MAX_PORT_NAME];
    CU_ASSERT_EQUAL(MPI_Open_port(MPI_INFO_NULL, port), MPI_ERR_UNSUPPORTED_OPERATION);
    MPI_Request r;
    CU_ASSERT_EQUAL(MPI_Grequest_start(NULL, NULL, NULL, NULL, &r),
                    MPI_ERR_UNSUPPORTED_OPERATION);
}

/* A file name of this job's, the same on every rank (rank 0's pid). */
static void job_file_name(char *name, size_t n, const char *what)
{
    long id = rank == 0 ? (long)getpid() : 0;
    MPI_Bcast(&id, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    snprintf(name, n, "/tmp/crmpi-test-%s-%ld", what, id);
}

/* An MPI-IO file with an info hint, an interleaved view (its filetype
 * freed by the application), atomic mode and MPI_ERRORS_RETURN, taken through a
 * checkpoint (drain + sync + pointers), written further, then restarted:
 * it is open again with the same view, atomicity and handler, its
 * individual pointer where the checkpoint left it and its size cut back to
 * the checkpoint's; what was written before reads back through the view. */
static void test_file_reopened_with_view_pointer_and_size(void)
{
    char name[64];
    job_file_name(name, sizeof name, "vfile");
    MPI_File fh;
    MPI_Info hints;
    MPI_Info_create(&hints);
    MPI_Info_set(hints, "crmpi_test_hint", "7");
    CU_ASSERT_EQUAL_FATAL(MPI_File_open(MPI_COMM_WORLD, name, MPI_MODE_CREATE | MPI_MODE_RDWR,
                                        hints, &fh), MPI_SUCCESS);
    MPI_Info_free(&hints);
    CU_ASSERT_PTR_NOT_NULL(vh_get(fh, VH_FILE));
    MPI_Datatype every;                          /* one int in every `size` */
    MPI_Type_vector(64, 1, size, MPI_INT, &every);
    MPI_Type_commit(&every);
    CU_ASSERT_EQUAL(MPI_File_set_view(fh, (MPI_Offset)rank * (MPI_Offset)sizeof(int), MPI_INT,
                                      every, "native", MPI_INFO_NULL), MPI_SUCCESS);
    MPI_Type_free(&every);                       /* the view keeps it */
    MPI_File_set_atomicity(fh, 1);
    MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN);
    int out[4], in[4];
    for (int i = 0; i < 4; i++)
        out[i] = rank * 100 + i;
    CU_ASSERT_EQUAL(MPI_File_write_all(fh, out, 4, MPI_INT, MPI_STATUS_IGNORE), MPI_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);   /* the checkpoint's MPI half */
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    MPI_Offset size_ckpt = 0, pos = -1;
    MPI_File_get_size(fh, &size_ckpt);
    CU_ASSERT_EQUAL(size_ckpt, (MPI_Offset)(4 * size * sizeof(int)));
    /* Every rank has read the size before any writes further (Open MPI's
     * write_all may write each rank's part on its own, at once). */
    MPI_Barrier(MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(MPI_File_write_all(fh, out, 4, MPI_INT, MPI_STATUS_IGNORE), MPI_SUCCESS);
    vh_release_reals();
    CU_ASSERT_EQUAL_FATAL(vh_rebuild_all(), 0);
    MPI_Offset now = 0;
    MPI_File_get_size(fh, &now);
    CU_ASSERT_EQUAL(now, size_ckpt);
    CU_ASSERT_PTR_EQUAL(MPI_File_f2c(MPI_File_c2f(fh)), fh);   /* Fortran handles too */
    MPI_Info used;                                /* the hint is given again */
    char hv[8] = "";
    int hflag = 0;
    MPI_File_get_info(fh, &used);
    MPI_Info_get(used, "crmpi_test_hint", 7, hv, &hflag);
    CU_ASSERT_TRUE(hflag && !strcmp(hv, "7"));
    MPI_Info_free(&used);
    MPI_File_get_position(fh, &pos);
    CU_ASSERT_EQUAL(pos, 4);
    int atomic = 0;
    MPI_File_get_atomicity(fh, &atomic);
    CU_ASSERT_TRUE(atomic);
    MPI_Errhandler e;
    MPI_File_get_errhandler(fh, &e);
    CU_ASSERT_PTR_EQUAL(e, MPI_ERRORS_RETURN);
    MPI_Offset disp;
    MPI_Datatype et, ft;
    char rep[MPI_MAX_DATAREP_STRING];
    CU_ASSERT_EQUAL(MPI_File_get_view(fh, &disp, &et, &ft, rep), MPI_SUCCESS);
    CU_ASSERT_EQUAL(disp, (MPI_Offset)rank * (MPI_Offset)sizeof(int));
    CU_ASSERT_PTR_EQUAL(et, MPI_INT);
    CU_ASSERT_STRING_EQUAL(rep, "native");
    int ni, na, nd, comb = -1;
    MPI_Type_get_envelope(ft, &ni, &na, &nd, &comb);
    CU_ASSERT_EQUAL(comb, MPI_COMBINER_VECTOR);
    MPI_Type_free(&ft);
    memset(in, 0, sizeof in);
    CU_ASSERT_EQUAL(MPI_File_read_at_all(fh, 0, in, 4, MPI_INT, MPI_STATUS_IGNORE), MPI_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(in, out, sizeof in), 0);
    CU_ASSERT_EQUAL(MPI_File_close(&fh), MPI_SUCCESS);
    CU_ASSERT_PTR_EQUAL(fh, MPI_FILE_NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        MPI_File_delete(name, MPI_INFO_NULL);
}

/* A split collective between its _begin and _end fails the checkpoint on
 * every rank (CR_EUNSUPPORTED); ended, the next checkpoint goes through and
 * the data is in the file. */
static void test_split_collective_in_progress_fails_checkpoint(void)
{
    char name[64];
    job_file_name(name, sizeof name, "split");
    MPI_File fh;
    CU_ASSERT_EQUAL_FATAL(MPI_File_open(MPI_COMM_WORLD, name, MPI_MODE_CREATE | MPI_MODE_RDWR,
                                        MPI_INFO_NULL, &fh), MPI_SUCCESS);
    int v[2] = { rank, rank + 1 }, back[2] = { -1, -1 };
    MPI_Offset at = (MPI_Offset)rank * (MPI_Offset)sizeof v;
    CU_ASSERT_EQUAL(MPI_File_write_at_all_begin(fh, at, v, 2, MPI_INT), MPI_SUCCESS);
    CU_ASSERT_EQUAL(crmpi_quiesce(), CR_EUNSUPPORTED);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    CU_ASSERT_EQUAL(MPI_File_write_at_all_end(fh, v, MPI_STATUS_IGNORE), MPI_SUCCESS);
    CU_ASSERT_EQUAL(crmpi_quiesce(), 0);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    MPI_File_read_at(fh, at, back, 2, MPI_INT, MPI_STATUS_IGNORE);
    CU_ASSERT_TRUE(back[0] == rank && back[1] == rank + 1);
    MPI_File_close(&fh);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        MPI_File_delete(name, MPI_INFO_NULL);
}

/* MPI_Comm_idup of a Cartesian communicator with MPI_ERRORS_RETURN: a
 * virtual communicator at once, usable once the request completes, and
 * rebuilt after a restart with the parent's members, topology and handler. */
static void test_comm_idup_rebuilt_like_its_parent(void)
{
    int dims[1] = { size }, periods[1] = { 1 };
    MPI_Comm cart, d;
    MPI_Cart_create(MPI_COMM_WORLD, 1, dims, periods, 0, &cart);
    MPI_Comm_set_errhandler(cart, MPI_ERRORS_RETURN);
    MPI_Request r;
    CU_ASSERT_EQUAL_FATAL(MPI_Comm_idup(cart, &d, &r), MPI_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(vh_get(d, VH_COMM));
    CU_ASSERT_EQUAL(MPI_Wait(&r, MPI_STATUS_IGNORE), MPI_SUCCESS);
    CU_ASSERT_PTR_EQUAL(r, MPI_REQUEST_NULL);
    simulate_restart();
    int topo = -1, n = -1, me = -1;
    MPI_Topo_test(d, &topo);
    MPI_Comm_size(d, &n);
    MPI_Comm_rank(d, &me);
    CU_ASSERT_EQUAL(topo, MPI_CART);
    CU_ASSERT_EQUAL(n, size);
    CU_ASSERT_EQUAL(me, rank);
    CU_ASSERT_TRUE(exchange_world_ranks(d));
    MPI_Errhandler e;
    MPI_Comm_get_errhandler(d, &e);
    CU_ASSERT_PTR_EQUAL(e, MPI_ERRORS_RETURN);
    MPI_Comm_free(&d);
    MPI_Comm_free(&cart);
}

/* Persistent requests on a derived datatype the application has freed and
 * a duplicated communicator: after the restart the same handles start
 * again and carry the same strided traffic, twice (a persistent request
 * outlives its completions). */
static size_t live_types(void)
{
    size_t n = 0;
    for (struct vh *h = crmpi_st->live[VH_TYPE].head; h; h = h->next)
        n++;
    return n;
}

static void test_persistent_requests_rebuilt_after_restart(void)
{
    size_t types_before = live_types();
    MPI_Datatype col;
    MPI_Comm dup;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    MPI_Type_vector(4, 1, 4, MPI_INT, &col);
    MPI_Type_commit(&col);
    int m[16], r[16];
    int to = (rank + 1) % size, from = (rank - 1 + size) % size;
    MPI_Request req[2];
    CU_ASSERT_EQUAL_FATAL(MPI_Recv_init(r + 2, 1, col, from, 9, dup, &req[0]), MPI_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(MPI_Send_init(m + 1, 1, col, to, 9, dup, &req[1]), MPI_SUCCESS);
    MPI_Type_free(&col);                        /* legal: the requests keep it */
    CU_ASSERT_PTR_NOT_NULL(vh_get(req[0], VH_REQ));
    /* inactive: completes at once with the empty status */
    MPI_Status st;
    int flag = 0;
    CU_ASSERT_EQUAL(MPI_Test(&req[0], &flag, &st), MPI_SUCCESS);
    CU_ASSERT_TRUE(flag);
    CU_ASSERT_EQUAL(st.MPI_SOURCE, MPI_ANY_SOURCE);
    CU_ASSERT_EQUAL(st.MPI_TAG, MPI_ANY_TAG);
    CU_ASSERT_PTR_NOT_EQUAL(req[0], MPI_REQUEST_NULL);
    simulate_restart();
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 16; i++) {
            m[i] = rank * 100 + i + round * 1000;
            r[i] = -1;
        }
        MPI_Status sts[2];
        CU_ASSERT_EQUAL(MPI_Startall(2, req), MPI_SUCCESS);
        CU_ASSERT_EQUAL(MPI_Start(&req[0]), MPI_ERR_REQUEST);   /* still active */
        CU_ASSERT_EQUAL(MPI_Waitall(2, req, sts), MPI_SUCCESS);
        int ok = 1;
        for (int i = 0; i < 16; i++)
            ok &= r[i] == (i % 4 == 2 ? from * 100 + (i - 1) + round * 1000 : -1);
        CU_ASSERT_TRUE(ok);
        CU_ASSERT_EQUAL(sts[0].MPI_SOURCE, from);
        CU_ASSERT_EQUAL(sts[0].MPI_TAG, 9);
        CU_ASSERT_PTR_NOT_EQUAL(req[0], MPI_REQUEST_NULL);
        CU_ASSERT_PTR_NOT_EQUAL(req[1], MPI_REQUEST_NULL);
    }
    CU_ASSERT_EQUAL(MPI_Request_free(&req[0]), MPI_SUCCESS);
    CU_ASSERT_EQUAL(MPI_Request_free(&req[1]), MPI_SUCCESS);
    CU_ASSERT_PTR_EQUAL(req[0], MPI_REQUEST_NULL);
    /* the last reference to the type went with the requests */
    CU_ASSERT_EQUAL(live_types(), types_before);
    MPI_Comm_free(&dup);
}

/* The layer's state of another format version (a checkpoint written by an
 * older libcrmpi) or of another job size is refused by name, and the
 * state stays as it was. */
static void test_state_of_another_version_or_size_is_refused(void)
{
    struct crmpi_state *st = crmpi_st;
    st->version = CRMPI_STATE_VERSION - 1;
    CU_ASSERT_EQUAL(crmpi_state_attach(size, rank), CR_EFORMAT);
    st->version = CRMPI_STATE_VERSION;
    CU_ASSERT_EQUAL(crmpi_state_attach(size + 1, rank), CR_ERANKS);
    CU_ASSERT_EQUAL(crmpi_state_attach(size, rank), 0);
    CU_ASSERT_PTR_EQUAL(crmpi_st, st);
}

/* ---- one-sided windows ---------------------------------------------------------- */

static long *win_slots(MPI_Win win)
{
    long *base = NULL;
    int flag = 0;
    MPI_Win_get_attr(win, MPI_WIN_BASE, &base, &flag);
    return flag ? base : NULL;
}

/* An allocated window in a fence epoch with operations issued but not yet
 * fenced at the checkpoint: the checkpoint's fence completes them (the
 * targets hold the values right after crmpi_quiesce); after a simulated
 * restart the window is there again with its name, handler and flavor,
 * still in a fence epoch, and carries the next operations. */
static void test_window_fence_epoch_survives_restart(void)
{
    MPI_Win win;
    long *mem = NULL;
    CU_ASSERT_EQUAL_FATAL(MPI_Win_allocate(4 * sizeof(long), sizeof(long), MPI_INFO_NULL,
                                           MPI_COMM_WORLD, &mem, &win), MPI_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(vh_get(win, VH_WIN));
    MPI_Win_set_name(win, "halo-window");
    MPI_Win_set_errhandler(win, MPI_ERRORS_RETURN);
    int right = (rank + 1) % size;
    long me = rank + 1, ten = 10 * (rank + 1);
    MPI_Win_fence(0, win);
    MPI_Put(&me, 1, MPI_LONG, right, 0, 1, MPI_LONG, win);
    MPI_Accumulate(&me, 1, MPI_LONG, 0, 1, 1, MPI_LONG, MPI_SUM, win);
    CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);   /* fences: the operations are done */
    CU_ASSERT_EQUAL(mem[0], (rank + size - 1) % size + 1);
    if (rank == 0)
        CU_ASSERT_EQUAL(mem[1], (long)size * (size + 1) / 2);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    simulate_restart();                          /* re-made over the same memory */
    CU_ASSERT_PTR_EQUAL(win_slots(win), mem);
    MPI_Put(&ten, 1, MPI_LONG, right, 2, 1, MPI_LONG, win);   /* still in the epoch */
    CU_ASSERT_EQUAL(MPI_Win_fence(0, win), MPI_SUCCESS);
    CU_ASSERT_EQUAL(mem[2], 10L * ((rank + size - 1) % size + 1));
    CU_ASSERT_EQUAL(mem[0], (rank + size - 1) % size + 1);
    char name[MPI_MAX_OBJECT_NAME];
    int len = 0, *flavor = NULL, flag = 0;
    MPI_Win_get_name(win, name, &len);
    CU_ASSERT_STRING_EQUAL(name, "halo-window");
    MPI_Errhandler e;
    MPI_Win_get_errhandler(win, &e);
    CU_ASSERT_PTR_EQUAL(e, MPI_ERRORS_RETURN);
    MPI_Win_get_attr(win, MPI_WIN_CREATE_FLAVOR, &flavor, &flag);
    CU_ASSERT_TRUE(flag && *flavor == MPI_WIN_FLAVOR_ALLOCATE);
    CU_ASSERT_PTR_EQUAL(MPI_Win_f2c(MPI_Win_c2f(win)), win);
    MPI_Group g;
    int gsize = 0;
    MPI_Win_get_group(win, &g);
    MPI_Group_size(g, &gsize);
    CU_ASSERT_EQUAL(gsize, size);
    MPI_Group_free(&g);
    MPI_Win_fence(MPI_MODE_NOSUCCEED, win);
    CU_ASSERT_EQUAL(MPI_Win_free(&win), MPI_SUCCESS);
    CU_ASSERT_PTR_EQUAL(win, MPI_WIN_NULL);
}

/* Passive target: under MPI_Win_lock_all the checkpoint flushes what every
 * rank issued (rank 0's counter holds all of it once crmpi_quiesce
 * returned everywhere), and a restart takes the lock_all again (flush and
 * unlock_all fail without it). A dynamic window's attached memory is
 * attached again at the same address; a shared lock is taken again. */
static void test_window_locks_flushed_and_taken_again(void)
{
    long *mem = NULL;
    CU_ASSERT_EQUAL_FATAL(MPI_Alloc_mem(2 * sizeof(long), MPI_INFO_NULL, &mem), MPI_SUCCESS);
    mem[0] = mem[1] = 0;
    MPI_Win win, dyn;
    CU_ASSERT_EQUAL_FATAL(MPI_Win_create(mem, 2 * sizeof(long), sizeof(long), MPI_INFO_NULL,
                                         MPI_COMM_WORLD, &win), MPI_SUCCESS);
    MPI_Win_set_errhandler(win, MPI_ERRORS_RETURN);
    long *att = NULL;
    MPI_Alloc_mem(sizeof(long), MPI_INFO_NULL, &att);
    *att = -1;
    CU_ASSERT_EQUAL_FATAL(MPI_Win_create_dynamic(MPI_INFO_NULL, MPI_COMM_WORLD, &dyn),
                          MPI_SUCCESS);
    MPI_Win_set_errhandler(dyn, MPI_ERRORS_RETURN);
    CU_ASSERT_EQUAL(MPI_Win_attach(dyn, att, sizeof(long)), MPI_SUCCESS);
    MPI_Aint mine, *addrs = calloc((size_t)size, sizeof *addrs);
    MPI_Get_address(att, &mine);
    MPI_Allgather(&mine, 1, MPI_AINT, addrs, 1, MPI_AINT, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Win_lock_all(0, win);
    int right = (rank + 1) % size;
    MPI_Win_lock(MPI_LOCK_SHARED, right, 0, dyn);
    long one = 1, old = -1;
    MPI_Fetch_and_op(&one, &old, MPI_LONG, 0, 0, MPI_SUM, win);
    CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);
    if (rank == 0)
        CU_ASSERT_EQUAL(mem[0], (long)size);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    simulate_restart();
    MPI_Fetch_and_op(&one, &old, MPI_LONG, 0, 0, MPI_SUM, win);
    CU_ASSERT_EQUAL(MPI_Win_flush_all(win), MPI_SUCCESS);
    CU_ASSERT_EQUAL(MPI_Win_unlock_all(win), MPI_SUCCESS);
    long me = rank;                                  /* the dynamic window */
    CU_ASSERT_EQUAL(MPI_Put(&me, 1, MPI_LONG, right, addrs[right], 1, MPI_LONG, dyn),
                    MPI_SUCCESS);
    CU_ASSERT_EQUAL(MPI_Win_unlock(right, dyn), MPI_SUCCESS);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        CU_ASSERT_EQUAL(mem[0], 2L * size);
    CU_ASSERT_EQUAL(*att, (long)((rank + size - 1) % size));
    CU_ASSERT_EQUAL(MPI_Win_detach(dyn, att), MPI_SUCCESS);
    MPI_Win_free(&dyn);
    MPI_Win_free(&win);
    MPI_Free_mem(att);
    MPI_Free_mem(mem);
    free(addrs);
}

/* Request-based operations (MPI_Rput, MPI_Rget, MPI_Raccumulate) still
 * pending at a checkpoint are completed by it like non-blocking
 * collectives; after a (simulated) restart waiting on them succeeds and
 * their effects are there. */
static void test_window_request_operations_pending_across_checkpoint(void)
{
    long *mem = NULL;
    MPI_Alloc_mem(3 * sizeof(long), MPI_INFO_NULL, &mem);
    mem[0] = rank * 10;
    mem[1] = mem[2] = 0;
    MPI_Win win;
    CU_ASSERT_EQUAL_FATAL(MPI_Win_create(mem, 3 * sizeof(long), sizeof(long), MPI_INFO_NULL,
                                         MPI_COMM_WORLD, &win), MPI_SUCCESS);
    MPI_Barrier(MPI_COMM_WORLD);
    int right = (rank + 1) % size, left = (rank + size - 1) % size;
    MPI_Win_lock_all(0, win);
    long got = -1, me = rank + 1, one = 1;
    MPI_Request r[3];
    CU_ASSERT_EQUAL(MPI_Rget(&got, 1, MPI_LONG, right, 0, 1, MPI_LONG, win, &r[0]), MPI_SUCCESS);
    CU_ASSERT_EQUAL(MPI_Rput(&me, 1, MPI_LONG, right, 1, 1, MPI_LONG, win, &r[1]), MPI_SUCCESS);
    CU_ASSERT_EQUAL(MPI_Raccumulate(&one, 1, MPI_LONG, 0, 2, 1, MPI_LONG, MPI_SUM, win, &r[2]),
                    MPI_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(vh_get(r[0], VH_REQ));
    CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);
    for (int i = 0; i < 3; i++)                  /* nothing left for a restart to lose */
        CU_ASSERT_EQUAL(((struct vreq *)r[i])->state, VREQ_DONE);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    simulate_restart();
    CU_ASSERT_EQUAL(MPI_Waitall(3, r, MPI_STATUSES_IGNORE), MPI_SUCCESS);
    CU_ASSERT_EQUAL(got, right * 10);
    CU_ASSERT_EQUAL(MPI_Win_unlock_all(win), MPI_SUCCESS);
    MPI_Barrier(MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(mem[1], (long)left + 1);
    if (rank == 0)
        CU_ASSERT_EQUAL(mem[2], (long)size);
    MPI_Win_free(&win);
    MPI_Free_mem(mem);
}

static struct { int calls; MPI_Win win; MPI_File file; } seen_errh;

static void win_errh(MPI_Win *w, int *code, ...)
{
    (void)code;
    seen_errh.calls++;
    seen_errh.win = *w;
}

static void file_errh(MPI_File *f, int *code, ...)
{
    (void)code;
    seen_errh.calls++;
    seen_errh.file = *f;
}

/* User error handlers of windows and files (the file's inherited from the
 * files' default on MPI_FILE_NULL), their handles freed at once: after a
 * simulated restart they are still attached, called with the
 * application's handles, and the default still applies to new files. */
static void test_window_and_file_user_errhandlers_survive_restart(void)
{
    long *mem = NULL;
    MPI_Alloc_mem(sizeof(long), MPI_INFO_NULL, &mem);
    MPI_Win win;
    CU_ASSERT_EQUAL_FATAL(MPI_Win_create(mem, sizeof(long), sizeof(long), MPI_INFO_NULL,
                                         MPI_COMM_WORLD, &win), MPI_SUCCESS);
    MPI_Errhandler we, fe, got;
    CU_ASSERT_EQUAL_FATAL(MPI_Win_create_errhandler(win_errh, &we), MPI_SUCCESS);
    CU_ASSERT_EQUAL(MPI_Win_set_errhandler(win, we), MPI_SUCCESS);
    MPI_Errhandler_free(&we);
    CU_ASSERT_EQUAL_FATAL(MPI_File_create_errhandler(file_errh, &fe), MPI_SUCCESS);
    CU_ASSERT_EQUAL(MPI_File_set_errhandler(MPI_FILE_NULL, fe), MPI_SUCCESS);
    char name[64];
    job_file_name(name, sizeof name, "errh");
    MPI_File fh;
    CU_ASSERT_EQUAL_FATAL(MPI_File_open(MPI_COMM_WORLD, name, MPI_MODE_CREATE | MPI_MODE_RDWR,
                                        MPI_INFO_NULL, &fh), MPI_SUCCESS);
    MPI_Errhandler_free(&fe);
    for (int round = 0; round < 2; round++) {
        if (round)
            simulate_restart();
        memset(&seen_errh, 0, sizeof seen_errh);
        MPI_Win_call_errhandler(win, MPI_ERR_OTHER);
        CU_ASSERT_TRUE(seen_errh.calls == 1 && seen_errh.win == win);
        MPI_File_call_errhandler(fh, MPI_ERR_OTHER);
        CU_ASSERT_TRUE(seen_errh.calls == 2 && seen_errh.file == fh);
        CU_ASSERT_EQUAL(MPI_Win_get_errhandler(win, &got), MPI_SUCCESS);
        CU_ASSERT_PTR_NOT_NULL(vh_get(got, VH_ERRH));   /* the application's handle */
        MPI_Errhandler_free(&got);
    }
    MPI_File_get_errhandler(MPI_FILE_NULL, &got);     /* the default, for new files */
    CU_ASSERT_PTR_NOT_NULL(vh_get(got, VH_ERRH));
    MPI_Errhandler_free(&got);
    MPI_File_set_errhandler(MPI_FILE_NULL, MPI_ERRORS_RETURN);
    MPI_File_close(&fh);
    MPI_Win_free(&win);
    MPI_Free_mem(mem);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        MPI_File_delete(name, MPI_INFO_NULL);
}

static struct { MPI_Win win; int key; void *val; int calls; } win_del;

static int note_win_delete(MPI_Win w, int key, void *val, void *extra)
{
    (void)extra;
    win_del.win = w, win_del.key = key, win_del.val = val, win_del.calls++;
    return MPI_SUCCESS;
}

/* An attribute cached on a window comes back after a restart under the
 * application's key (the fresh MPI numbers its keys otherwise); the key's
 * delete function gets the application's window and key; predefined
 * window attributes pass through. */
static void test_window_attributes_survive_restart(void)
{
    static int val;
    long *mem = NULL;
    MPI_Alloc_mem(sizeof(long), MPI_INFO_NULL, &mem);
    MPI_Win win;
    CU_ASSERT_EQUAL_FATAL(MPI_Win_create(mem, sizeof(long), sizeof(long), MPI_INFO_NULL,
                                         MPI_COMM_WORLD, &win), MPI_SUCCESS);
    int k;
    CU_ASSERT_EQUAL_FATAL(MPI_Win_create_keyval(MPI_WIN_NULL_COPY_FN, note_win_delete, &k, NULL),
                          MPI_SUCCESS);
    CU_ASSERT_EQUAL(MPI_Win_set_attr(win, k, &val), MPI_SUCCESS);
    CU_ASSERT_EQUAL(vh_snapshot(), 0);
    vh_release_reals();
    int dummy;                                   /* the fresh MPI's numbering differs */
    PMPI_Win_create_keyval(MPI_WIN_NULL_COPY_FN, MPI_WIN_NULL_DELETE_FN, &dummy, NULL);
    CU_ASSERT_EQUAL_FATAL(vh_rebuild_all(), 0);
    void *v = NULL;
    int flag = 0;
    CU_ASSERT_EQUAL(MPI_Win_get_attr(win, k, &v, &flag), MPI_SUCCESS);
    CU_ASSERT_TRUE(flag && v == &val);
    long *base = NULL;
    MPI_Win_get_attr(win, MPI_WIN_BASE, &base, &flag);
    CU_ASSERT_TRUE(flag && base == mem);
    memset(&win_del, 0, sizeof win_del);
    CU_ASSERT_EQUAL(MPI_Win_delete_attr(win, k), MPI_SUCCESS);
    CU_ASSERT_TRUE(win_del.calls == 1 && win_del.win == win && win_del.key == k &&
                   win_del.val == &val);
    CU_ASSERT_EQUAL(MPI_Win_free_keyval(&k), MPI_SUCCESS);
    CU_ASSERT_EQUAL(k, MPI_KEYVAL_INVALID);
    PMPI_Win_free_keyval(&dummy);
    MPI_Win_free(&win);
    MPI_Free_mem(mem);
}

/* What cannot be checkpointed fails the checkpoint on every rank (the
 * drain agrees), the job goes on, and once it is over the next checkpoint
 * goes through: an exclusive lock held by one rank only, then a
 * generalized active-target epoch. */
static void test_window_exclusive_lock_or_pscw_fails_checkpoint(void)
{
    long *mem = NULL;
    MPI_Alloc_mem(sizeof(long), MPI_INFO_NULL, &mem);
    MPI_Win win;
    CU_ASSERT_EQUAL_FATAL(MPI_Win_create(mem, sizeof(long), sizeof(long), MPI_INFO_NULL,
                                         MPI_COMM_WORLD, &win), MPI_SUCCESS);
    if (rank == 0)
        MPI_Win_lock(MPI_LOCK_EXCLUSIVE, size - 1, 0, win);
    CU_ASSERT_EQUAL(crmpi_quiesce(), CR_EUNSUPPORTED);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    if (rank == 0)
        MPI_Win_unlock(size - 1, win);
    CU_ASSERT_EQUAL(crmpi_quiesce(), 0);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    MPI_Group world;
    MPI_Comm_group(MPI_COMM_WORLD, &world);
    MPI_Win_post(world, 0, win);
    MPI_Win_start(world, 0, win);
    CU_ASSERT_EQUAL(crmpi_quiesce(), CR_EUNSUPPORTED);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    MPI_Win_complete(win);
    MPI_Win_wait(win);
    CU_ASSERT_EQUAL(crmpi_quiesce(), 0);
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    MPI_Group_free(&world);
    MPI_Win_free(&win);
    MPI_Free_mem(mem);
}

/* An inter-communicator between the even and the odd world ranks (and a
 * dup of it): a message in flight across the checkpoint is drained and
 * received after a simulated restart, the rebuilt ones carry point-to-point
 * and collective traffic between the groups, keep their handler, and merge. */
static void test_intercommunicator_survives_restart(void)
{
    if (size < 2)
        return;
    MPI_Comm half, inter, idup, merged;
    int color = rank % 2;
    MPI_Comm_split(MPI_COMM_WORLD, color, rank, &half);
    CU_ASSERT_EQUAL_FATAL(MPI_Intercomm_create(half, 0, MPI_COMM_WORLD, 1 - color, 77, &inter),
                          MPI_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(vh_get(inter, VH_COMM));
    MPI_Comm_set_errhandler(inter, MPI_ERRORS_RETURN);
    MPI_Request ir;                                 /* MPI_Comm_idup of one too */
    CU_ASSERT_EQUAL_FATAL(MPI_Comm_idup(inter, &idup, &ir), MPI_SUCCESS);
    MPI_Wait(&ir, MPI_STATUS_IGNORE);
    int lr, ls, rs;
    MPI_Comm_rank(inter, &lr);
    MPI_Comm_size(inter, &ls);
    MPI_Comm_remote_size(inter, &rs);
    int out = 1000 + rank, in = -1;
    /* Each even rank sends to the odd rank rs - 1 - lr % rs (not the same
     * local rank: the message counters must name the remote group's). */
    int expect = 0;
    for (int r = 0; color == 1 && r < rs; r++)
        expect += rs - 1 - r % rs == lr;
    MPI_Request s = MPI_REQUEST_NULL;
    if (color == 0)
        MPI_Isend(&out, 1, MPI_INT, rs - 1 - lr % rs, 3, inter, &s);
    CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);      /* in flight: drained */
    CU_ASSERT_EQUAL(MPI_Wait(&s, MPI_STATUS_IGNORE), MPI_SUCCESS);
    simulate_restart();
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);
    int got = 0, sum = 0;
    for (int i = 0; i < expect; i++) {
        MPI_Status st;
        CU_ASSERT_EQUAL(MPI_Recv(&in, 1, MPI_INT, MPI_ANY_SOURCE, 3, inter, &st), MPI_SUCCESS);
        /* the sender is a remote rank; its world rank is 2 * it + the other color */
        CU_ASSERT_EQUAL(in, 1000 + 2 * st.MPI_SOURCE + (1 - color));
        got++;
    }
    CU_ASSERT_EQUAL(got, expect);
    int mine = rank, theirs = -1;                   /* an inter-collective: */
    MPI_Allreduce(&mine, &theirs, 1, MPI_INT, MPI_SUM, idup);   /* the remote group's sum */
    for (int r = 1 - color; r < size; r += 2)
        sum += r;
    CU_ASSERT_EQUAL(theirs, sum);
    CU_ASSERT_NOT_EQUAL(MPI_Send(&out, 1, MPI_INT, rs + 5, 0, inter), MPI_SUCCESS);
    CU_ASSERT_EQUAL(MPI_Intercomm_merge(inter, color, &merged), MPI_SUCCESS);
    int ms = 0;
    MPI_Comm_size(merged, &ms);
    CU_ASSERT_EQUAL(ms, size);
    MPI_Comm_free(&merged);
    MPI_Comm_free(&idup);
    MPI_Comm_free(&inter);
    MPI_Comm_free(&half);
}

static size_t live_comms(void)
{
    return crmpi_st->live[VH_COMM].count;
}

/* MPI lets the application free a communicator while requests on it live:
 * persistent ones made on it, and a receive still pending (which the drain
 * defers and re-posts). It is kept for them, drained, rebuilt after a
 * restart, and goes with the last of them. */
static void test_communicator_freed_under_its_requests(void)
{
    size_t comms_before = live_comms();
    MPI_Comm d;
    MPI_Comm_dup(MPI_COMM_WORLD, &d);
    int right = (rank + 1) % size, left = (rank + size - 1) % size;
    int out = rank, in = -1, late = -1, late_out = 100 + rank;
    MPI_Request ps[3], pend;
    MPI_Send_init(&out, 1, MPI_INT, right, 4, d, &ps[0]);
    MPI_Recv_init(&in, 1, MPI_INT, left, 4, d, &ps[1]);
    MPI_Send_init(&late_out, 1, MPI_INT, right, 5, d, &ps[2]);
    MPI_Irecv(&late, 1, MPI_INT, left, 5, d, &pend);   /* its message comes later */
    CU_ASSERT_EQUAL(MPI_Comm_free(&d), MPI_SUCCESS);
    CU_ASSERT_PTR_EQUAL(d, MPI_COMM_NULL);
    CU_ASSERT_EQUAL(live_comms(), comms_before + 1);  /* kept */
    CU_ASSERT_EQUAL_FATAL(crmpi_quiesce(), 0);        /* the Irecv is deferred */
    simulate_restart();                               /* made again from its recipe, */
    CU_ASSERT_EQUAL_FATAL(crmpi_resume(), 0);         /* the Irecv posted again on it */
    CU_ASSERT_EQUAL(MPI_Startall(3, ps), MPI_SUCCESS);
    CU_ASSERT_EQUAL(MPI_Waitall(3, ps, MPI_STATUSES_IGNORE), MPI_SUCCESS);
    CU_ASSERT_EQUAL(in, left);
    CU_ASSERT_EQUAL(MPI_Wait(&pend, MPI_STATUS_IGNORE), MPI_SUCCESS);
    CU_ASSERT_EQUAL(late, 100 + left);
    MPI_Request_free(&ps[0]);
    MPI_Request_free(&ps[2]);
    CU_ASSERT_EQUAL(live_comms(), comms_before + 1);  /* one request still names it */
    MPI_Request_free(&ps[1]);
    CU_ASSERT_EQUAL(live_comms(), comms_before);      /* gone with the last */
}

static CU_TestInfo tests[] = {
    CUTEST(test_handles_are_virtual_and_predefined_pass_through),
    CUTEST(test_dup_split_create_rebuilt_with_same_members),
    CUTEST(test_cart_graph_distgraph_topologies_survive),
    CUTEST(test_every_datatype_constructor_rebuilds_same_signature),
    CUTEST(test_child_type_freed_before_restart_still_rebuilds_parent),
    CUTEST(test_rebuilt_datatype_carries_strided_traffic),
    CUTEST(test_user_op_info_and_errhandler_rebuilt),
    CUTEST(test_get_contents_returns_virtual_children),
    CUTEST(test_user_op_gets_the_applications_datatype),
    CUTEST(test_user_op_freed_under_a_pending_collective),
    CUTEST(test_inherited_errhandler_survives_restart),
    CUTEST(test_freed_attached_errhandler_survives_restart),
    CUTEST(test_attributes_survive_restart_under_the_same_keys),
    CUTEST(test_attribute_callbacks_get_the_applications_handles),
    CUTEST(test_object_names_survive_restart),
    CUTEST(test_uncheckpointable_calls_are_refused_by_name),
    CUTEST(test_persistent_requests_rebuilt_after_restart),
    CUTEST(test_comm_idup_rebuilt_like_its_parent),
    CUTEST(test_communicator_freed_under_its_requests),
    CUTEST(test_intercommunicator_survives_restart),
    CUTEST(test_file_reopened_with_view_pointer_and_size),
    CUTEST(test_split_collective_in_progress_fails_checkpoint),
    CUTEST(test_state_of_another_version_or_size_is_refused),
    CUTEST(test_window_fence_epoch_survives_restart),
    CUTEST(test_window_locks_flushed_and_taken_again),
    CUTEST(test_window_request_operations_pending_across_checkpoint),
    CUTEST(test_window_exclusive_lock_or_pscw_fails_checkpoint),
    CUTEST(test_window_and_file_user_errhandlers_survive_restart),
    CUTEST(test_window_attributes_survive_restart),
    CU_TEST_INFO_NULL
};
static CU_SuiteInfo suites[] = {
    { "vhandle", NULL, NULL, NULL, NULL, tests },
    CU_SUITE_INFO_NULL
};

int main(int argc, char **argv)
{
    return cutest_mpi_main(argc, argv, suites, "test_vhandle", &rank, &size, NULL);
}
