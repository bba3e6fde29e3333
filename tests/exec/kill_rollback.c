/*
 * kill_rollback.c - kill-test program: speculative steps undone by
 * cr_rollback().
 *
 *   kill_rollback [STEPS [PAGES [THREADS]]]
 *
 * Every step checkpoints, then speculates: scribbles over a few pages of a
 * crmalloc'd array and of a malloc'd one (transparent mode), frees and
 * allocates, changes a global and main's locals, and on THREADS-1 extra
 * persistent threads their own stack arrays - then rolls back. The
 * checkpoint call of that step returns CR_ROLLEDBACK; the state is checked
 * against hashes taken before the checkpoint (a mismatch exits 1 naming
 * it), and the real step is applied. The output (hashes of everything) is
 * the same whether or not the program was killed and restarted, and
 * whether or not it speculated.
 */
#include <cr.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096
#define WORKER_WORDS 2048

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash(const uint64_t *a, size_t n)
{
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++)
        h = mix(h ^ a[i]) + i;
    return h;
}

static uint64_t g_counter;          /* a global: restored by transparent mode */
static long steps;

struct worker {
    int id;
    uint64_t result;
};

static void die(const char *what, long step, int rc)
{
    fprintf(stderr, "kill_rollback: %s at step %ld (%d: %s)\n", what, step, rc, cr_strerror(rc));
    exit(1);
}

/* A worker keeps its state in an array on its persistent stack. */
static void *worker_main(void *p)
{
    struct worker *w = p;
    uint64_t a[WORKER_WORDS];
    for (size_t i = 0; i < WORKER_WORDS; i++)
        a[i] = (uint64_t)w->id * 1000003u + i;
    for (long s = 0; s < steps; s++) {
        uint64_t before = hash(a, WORKER_WORDS);
        int rc = cr_checkpoint();
        if (rc < 0)
            die("worker checkpoint failed", s, rc);
        if (hash(a, WORKER_WORDS) != before)
            die("worker's stack differs after the checkpoint", s, rc);
        /* speculate: the main thread rolls back; we only scribble */
        if (rc != CR_ROLLEDBACK) {
            for (size_t i = 0; i < WORKER_WORDS; i += 97)
                a[i] = ~a[i];
            rc = cr_checkpoint();   /* the rollback round: does not return with 0 */
            die("worker: the rollback round returned", s, rc);
        }
        for (size_t i = 0; i < WORKER_WORDS; i++)
            a[i] = mix(a[i] + (uint64_t)s);
    }
    w->result = hash(a, WORKER_WORDS);
    return NULL;
}

int main(int argc, char **argv)
{
    steps = argc > 1 ? atol(argv[1]) : 300;
    size_t pages = argc > 2 ? (size_t)atol(argv[2]) : 64;
    int nthreads = argc > 3 ? atoi(argv[3]) : 2;
    size_t words = pages * PAGE / 8;
    uint64_t *a = crmalloc(words * 8);
    uint64_t *b = malloc(words * 8);      /* persistent heap in transparent mode */
    if (!a || !b) {
        fprintf(stderr, "kill_rollback: allocation failed\n");
        return 1;
    }
    for (size_t i = 0; i < words; i++) {
        a[i] = i;
        b[i] = ~i;
    }
    struct worker w[8];
    crthread_t tid[8];
    nthreads = nthreads < 1 ? 1 : nthreads > 8 ? 8 : nthreads;
    for (int t = 1; t < nthreads; t++) {
        w[t].id = t;
        w[t].result = 0;
        if (crthread_create(&tid[t], worker_main, &w[t]) != 0) {
            fprintf(stderr, "kill_rollback: crthread_create failed\n");
            return 1;
        }
    }
    long rollbacks = 0;
    for (long s = 0; s < steps; s++) {
        uint64_t ha = hash(a, words), hb = hash(b, words), gc = g_counter;
        long local = s;
        int rc = cr_checkpoint();
        if (rc < 0)
            die("checkpoint failed", s, rc);
        if (hash(a, words) != ha || hash(b, words) != hb || g_counter != gc || local != s)
            die(rc == CR_ROLLEDBACK ? "state differs after the rollback"
                                    : "state differs after the checkpoint", s, rc);
        if (rc != CR_ROLLEDBACK) {
            /* speculation: a few pages, heap churn, a global, a local */
            uint64_t x = mix((uint64_t)s + 1);
            for (int k = 0; k < 4; k++) {
                x = mix(x);
                size_t p = (size_t)(x % pages);
                memset((char *)a + p * PAGE, 0xA5, PAGE);
                memset((char *)b + ((p * 7) % pages) * PAGE, 0x5A, PAGE / 2);
            }
            void *junk = malloc(3 * PAGE + (size_t)(x % 1000));
            if (junk)
                memset(junk, 1, 3 * PAGE);
            free(b);
            b = malloc(words * 8);      /* maybe elsewhere: the rollback must undo it */
            if (b)
                memset(b, 0xEE, words * 8);
            g_counter += 1000;
            local = -1;
            rc = cr_rollback();
            die("cr_rollback returned", s, rc);
        }
        rollbacks++;
        for (size_t i = s % 8; i < words; i += 8) {
            a[i] = mix(a[i] + (uint64_t)s);
            b[i] ^= a[i];
        }
        g_counter += (uint64_t)s;
    }
    uint64_t h = hash(a, words) ^ hash(b, words) ^ g_counter;
    for (int t = 1; t < nthreads; t++) {
        if (crthread_join(tid[t], NULL) != 0) {
            fprintf(stderr, "kill_rollback: crthread_join failed\n");
            return 1;
        }
        h ^= w[t].result;
    }
    printf("kill_rollback: steps %ld, hash %016llx\n", steps, (unsigned long long)h);
    if (rollbacks < 1) {
        fprintf(stderr, "kill_rollback: no rollback happened\n");
        return 1;
    }
    free(b);
    crfree(a);
    return 0;
}
