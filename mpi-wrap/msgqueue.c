/*
 * msgqueue.c - the drain queue (see msgqueue.h): a singly linked FIFO.
 *
 * Queues are short (what was in flight at one checkpoint), so matching is a
 * linear scan from the head; the head is the oldest message, which is what
 * makes the first match the one MPI would have delivered.
 */
#include "msgqueue.h"

#include <string.h>

void mq_init(struct mq *q, void *(*alloc)(size_t), void (*free_fn)(void *))
{
    memset(q, 0, sizeof *q);
    q->alloc = alloc;
    q->free = free_fn;
}

void mq_clear(struct mq *q)
{
    struct mq_msg *m = q->head;
    while (m) {
        struct mq_msg *next = m->next;
        q->free(m);
        m = next;
    }
    q->head = q->tail = NULL;
    q->count = q->bytes = 0;
}

struct mq_msg *mq_msg_new(struct mq *q, uintptr_t comm, int source, int tag, size_t len)
{
    if (len > SIZE_MAX - sizeof(struct mq_msg))
        return NULL;
    struct mq_msg *m = q->alloc(sizeof *m + len);
    if (!m)
        return NULL;
    m->next = NULL;
    m->comm = comm;
    m->source = source;
    m->tag = tag;
    m->len = len;
    return m;
}

void mq_msg_free(struct mq *q, struct mq_msg *m)
{
    if (m)
        q->free(m);
}

void mq_push(struct mq *q, struct mq_msg *m)
{
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->count++;
    q->bytes += m->len;
}

static int matches(const struct mq_msg *m, uintptr_t comm, int source, int tag)
{
    return m->comm == comm
        && (source == MQ_ANY_SOURCE || source == m->source)
        && (tag == MQ_ANY_TAG || tag == m->tag);
}

struct mq_msg *mq_peek(const struct mq *q, uintptr_t comm, int source, int tag)
{
    for (struct mq_msg *m = q->head; m; m = m->next)
        if (matches(m, comm, source, tag))
            return m;
    return NULL;
}

struct mq_msg *mq_take(struct mq *q, uintptr_t comm, int source, int tag)
{
    struct mq_msg *prev = NULL;
    for (struct mq_msg *m = q->head; m; prev = m, m = m->next) {
        if (!matches(m, comm, source, tag))
            continue;
        if (prev)
            prev->next = m->next;
        else
            q->head = m->next;
        if (q->tail == m)
            q->tail = prev;
        m->next = NULL;
        q->count--;
        q->bytes -= m->len;
        return m;
    }
    return NULL;
}

size_t mq_count_comm(const struct mq *q, uintptr_t comm)
{
    size_t n = 0;
    for (struct mq_msg *m = q->head; m; m = m->next)
        n += m->comm == comm;
    return n;
}
