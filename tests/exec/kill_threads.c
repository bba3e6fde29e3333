/*
 * kill_threads.c - kill-test program: 4 persistent threads sharing data
 * under the runtime's mutex and condition variable.
 *
 *   kill_threads [ROUNDS]
 *
 * Shared state (crmalloc'd): an account table and a bounded queue. Threads
 * 1 and 2 produce transfers into the queue, threads 3 and 4 consume them and
 * apply them to the accounts; every thread calls cr_checkpoint() every few
 * items, so checkpoints catch threads waiting on a full or empty queue
 * (blocked in cr_cond_wait) and holding or waiting for the mutex. Main joins
 * all four and prints a digest of the accounts and per-thread counts. The
 * order in which consumers take items may differ between runs, so the
 * digest only depends on the set of transfers: sum-based and commutative.
 */
#include <cr.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define QCAP 8
#define NACC 64

struct shared {
    cr_mutex_t lock;
    cr_cond_t not_full, not_empty;
    long q[QCAP];
    int head, count;
    int producers_left;
    uint64_t acc[NACC];
    long consumed[2];
    long rounds;
};

static long restarts;    /* this run only: reported on stderr */

static void checkpoint(void)
{
    int rc = cr_checkpoint();
    if (rc == CR_RESTARTED)
        __atomic_add_fetch(&restarts, 1, __ATOMIC_RELAXED);
    else if (rc < 0) {
        fprintf(stderr, "kill_threads: checkpoint failed: %s\n", cr_strerror(rc));
        exit(1);
    }
}

static void *producer(void *arg)
{
    struct shared *s = arg;
    long id = crthread_self();
    for (long i = 0; i < s->rounds; i++) {
        long item = (id << 32) | i;
        if (cr_mutex_lock(&s->lock))
            abort();
        while (s->count == QCAP)
            cr_cond_wait(&s->not_full, &s->lock);
        s->q[(s->head + s->count) % QCAP] = item;
        s->count++;
        cr_cond_signal(&s->not_empty);
        cr_mutex_unlock(&s->lock);
        if (i % 5 == 0)
            checkpoint();
    }
    cr_mutex_lock(&s->lock);
    s->producers_left--;
    cr_cond_broadcast(&s->not_empty);
    cr_mutex_unlock(&s->lock);
    return (void *)id;
}

static void *consumer(void *arg)
{
    struct shared *s = arg;
    int me = (int)crthread_self() - 3;
    long n = 0;
    for (;;) {
        cr_mutex_lock(&s->lock);
        while (s->count == 0 && s->producers_left > 0)
            cr_cond_wait(&s->not_empty, &s->lock);
        if (s->count == 0) {
            cr_mutex_unlock(&s->lock);
            break;
        }
        long item = s->q[s->head];
        s->head = (s->head + 1) % QCAP;
        s->count--;
        uint64_t v = (uint64_t)item * 0x9e3779b97f4a7c15ULL;
        s->acc[v % NACC] += v >> 20;
        s->consumed[me]++;
        cr_cond_signal(&s->not_full);
        cr_mutex_unlock(&s->lock);
        if (++n % 7 == 0)
            checkpoint();
    }
    return (void *)n;
}

int main(int argc, char **argv)
{
    struct shared *s = crcalloc(1, sizeof *s);
    if (!s)
        return 1;
    s->rounds = argc > 1 ? atol(argv[1]) : 3000;
    s->producers_left = 2;
    crthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (crthread_create(&t[i], i < 2 ? producer : consumer, s)) {
            fprintf(stderr, "kill_threads: crthread_create failed\n");
            return 1;
        }
    void *r[4];
    for (int i = 0; i < 4; i++)
        if (crthread_join(t[i], &r[i])) {
            fprintf(stderr, "kill_threads: crthread_join failed\n");
            return 1;
        }
    uint64_t sum = 0, x = 0;
    for (int i = 0; i < NACC; i++) {
        sum += s->acc[i];
        x ^= s->acc[i];
    }
    long consumed = s->consumed[0] + s->consumed[1];
    printf("items %ld consumed %ld producers %ld %ld sum %016llx xor %016llx\n",
           2 * s->rounds, consumed, (long)(intptr_t)r[0], (long)(intptr_t)r[1],
           (unsigned long long)sum, (unsigned long long)x);
    fprintf(stderr, "kill_threads: %ld restarts\n", restarts);
    return consumed == 2 * s->rounds ? 0 : 1;
}
