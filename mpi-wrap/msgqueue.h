/*
 * msgqueue.h - the drain queue: messages received by the checkpoint protocol
 * on behalf of the application, served back to it in MPI's matching order.
 *
 * At a checkpoint every message still in flight is received as raw bytes and
 * appended here with its envelope (communicator, source, tag). The queue and
 * its messages live in the persistent heap, so they are saved with the
 * checkpoint and exist again after a restart. Receive, probe and the
 * request-completion wrappers look here before asking MPI.
 *
 * Matching follows MPI: a receive (comm, source, tag), where source may be
 * MQ_ANY_SOURCE and tag MQ_ANY_TAG, takes the *oldest* queued message of the
 * same communicator whose source and tag match. Messages of one (comm,
 * source) pair were appended in the order MPI delivered them, so MPI's
 * non-overtaking rule holds. This module knows nothing about MPI: the
 * communicator is an opaque key, and memory comes from the allocator given
 * to mq_init (the persistent heap in libcrmpi, malloc in unit tests).
 */
#ifndef CRMPI_MSGQUEUE_H
#define CRMPI_MSGQUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <limits.h>

#define MQ_ANY_SOURCE INT_MIN
#define MQ_ANY_TAG    INT_MIN

struct mq_msg {
    struct mq_msg *next;
    uintptr_t comm;       /* the application's handle of the communicator */
    int source;           /* rank in comm */
    int tag;
    size_t len;           /* bytes in data */
    unsigned char data[];
};

struct mq {
    struct mq_msg *head, *tail;
    size_t count;         /* messages queued */
    size_t bytes;         /* payload bytes queued */
    void *(*alloc)(size_t);
    void (*free)(void *);
};

void mq_init(struct mq *q, void *(*alloc)(size_t), void (*free_fn)(void *));
/* Free every queued message. */
void mq_clear(struct mq *q);
static inline int mq_empty(const struct mq *q) { return q->head == NULL; }

/* A new, unqueued message with room for len bytes (NULL: out of memory). */
struct mq_msg *mq_msg_new(struct mq *q, uintptr_t comm, int source, int tag, size_t len);
void mq_msg_free(struct mq *q, struct mq_msg *m);
/* Append m at the tail (it becomes the youngest message). */
void mq_push(struct mq *q, struct mq_msg *m);

/* The oldest message matching (comm, source, tag), or NULL. Not removed. */
struct mq_msg *mq_peek(const struct mq *q, uintptr_t comm, int source, int tag);
/* Remove and return the oldest matching message, or NULL. */
struct mq_msg *mq_take(struct mq *q, uintptr_t comm, int source, int tag);
/* Number of queued messages of comm (any source, any tag). */
size_t mq_count_comm(const struct mq *q, uintptr_t comm);

#endif
