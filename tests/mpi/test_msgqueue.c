/*
 * test_msgqueue.c - matching rules of the drain queue, without MPI traffic:
 * oldest match first, wildcards, communicator isolation, non-overtaking per
 * (comm, source), removal from the middle/tail, accounting.
 */
#include "cutest.h"
#include "msgqueue.h"

#include <stdlib.h>
#include <string.h>

static struct mq q;

static int setup(void) { mq_init(&q, malloc, free); return 0; }
static int teardown(void) { mq_clear(&q); return 0; }

static struct mq_msg *push(uintptr_t comm, int src, int tag, const char *payload)
{
    size_t n = strlen(payload);
    struct mq_msg *m = mq_msg_new(&q, comm, src, tag, n);
    memcpy(m->data, payload, n);
    mq_push(&q, m);
    return m;
}

static int take_is(uintptr_t comm, int src, int tag, const char *payload)
{
    struct mq_msg *m = mq_take(&q, comm, src, tag);
    if (!m)
        return payload == NULL;
    int ok = payload && m->len == strlen(payload) && !memcmp(m->data, payload, m->len);
    mq_msg_free(&q, m);
    return ok;
}

static void test_empty_queue_matches_nothing(void)
{
    CU_ASSERT_TRUE(mq_empty(&q));
    CU_ASSERT_PTR_NULL(mq_peek(&q, 1, MQ_ANY_SOURCE, MQ_ANY_TAG));
    CU_ASSERT_PTR_NULL(mq_take(&q, 1, 0, 0));
}

static void test_exact_match_takes_oldest_of_same_envelope(void)
{
    push(1, 0, 5, "first");
    push(1, 0, 5, "second");
    CU_ASSERT_TRUE(take_is(1, 0, 5, "first"));
    CU_ASSERT_TRUE(take_is(1, 0, 5, "second"));
    CU_ASSERT_TRUE(mq_empty(&q));
}

static void test_other_communicator_never_matches(void)
{
    push(1, 0, 5, "a");
    CU_ASSERT_TRUE(take_is(2, 0, 5, NULL));
    CU_ASSERT_TRUE(take_is(2, MQ_ANY_SOURCE, MQ_ANY_TAG, NULL));
    CU_ASSERT_EQUAL(mq_count_comm(&q, 1), 1);
    CU_ASSERT_EQUAL(mq_count_comm(&q, 2), 0);
    mq_clear(&q);
}

static void test_any_source_takes_oldest_across_sources(void)
{
    push(1, 3, 7, "from3");
    push(1, 1, 7, "from1");
    CU_ASSERT_TRUE(take_is(1, MQ_ANY_SOURCE, 7, "from3"));
    CU_ASSERT_TRUE(take_is(1, MQ_ANY_SOURCE, 7, "from1"));
}

static void test_any_tag_keeps_order_of_one_source(void)
{
    push(1, 2, 10, "t10");
    push(1, 2, 11, "t11");
    push(1, 2, 10, "t10b");
    CU_ASSERT_TRUE(take_is(1, 2, MQ_ANY_TAG, "t10"));
    CU_ASSERT_TRUE(take_is(1, 2, MQ_ANY_TAG, "t11"));
    CU_ASSERT_TRUE(take_is(1, 2, MQ_ANY_TAG, "t10b"));
}

static void test_specific_tag_skips_older_other_tags(void)
{
    /* MPI: a receive for tag 11 may take the tag-11 message even though a
     * tag-10 message from the same source is older; the tag-10 one stays. */
    push(1, 2, 10, "t10");
    push(1, 2, 11, "t11");
    CU_ASSERT_TRUE(take_is(1, 2, 11, "t11"));
    CU_ASSERT_EQUAL(q.count, 1);
    CU_ASSERT_TRUE(take_is(1, 2, 10, "t10"));
}

static void test_wrong_source_or_tag_does_not_match(void)
{
    push(1, 2, 10, "x");
    CU_ASSERT_TRUE(take_is(1, 3, 10, NULL));
    CU_ASSERT_TRUE(take_is(1, 2, 9, NULL));
    CU_ASSERT_TRUE(take_is(1, 3, MQ_ANY_TAG, NULL));
    CU_ASSERT_TRUE(take_is(1, MQ_ANY_SOURCE, 9, NULL));
    CU_ASSERT_TRUE(take_is(1, 2, 10, "x"));
}

static void test_take_from_middle_and_tail_keeps_links(void)
{
    push(1, 0, 0, "a");
    push(1, 1, 0, "b");
    push(1, 2, 0, "c");
    CU_ASSERT_TRUE(take_is(1, 1, 0, "b"));   /* middle */
    CU_ASSERT_TRUE(take_is(1, 2, 0, "c"));   /* tail */
    push(1, 3, 0, "d");                      /* tail pointer must be right */
    CU_ASSERT_TRUE(take_is(1, MQ_ANY_SOURCE, MQ_ANY_TAG, "a"));
    CU_ASSERT_TRUE(take_is(1, MQ_ANY_SOURCE, MQ_ANY_TAG, "d"));
    CU_ASSERT_TRUE(mq_empty(&q));
    CU_ASSERT_PTR_NULL(q.tail);
}

static void test_peek_does_not_remove(void)
{
    push(1, 4, 4, "p");
    struct mq_msg *m = mq_peek(&q, 1, MQ_ANY_SOURCE, MQ_ANY_TAG);
    CU_ASSERT_PTR_NOT_NULL(m);
    CU_ASSERT_EQUAL(q.count, 1);
    CU_ASSERT_PTR_EQUAL(mq_peek(&q, 1, 4, 4), m);
    CU_ASSERT_TRUE(take_is(1, 4, 4, "p"));
}

static void test_zero_length_message_has_envelope(void)
{
    push(9, 1, 77, "");
    struct mq_msg *m = mq_take(&q, 9, MQ_ANY_SOURCE, MQ_ANY_TAG);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(m->len, 0);
    CU_ASSERT_EQUAL(m->source, 1);
    CU_ASSERT_EQUAL(m->tag, 77);
    mq_msg_free(&q, m);
}

static void test_counts_and_bytes_follow_push_and_take(void)
{
    push(1, 0, 0, "12345");
    push(2, 0, 0, "123");
    CU_ASSERT_EQUAL(q.count, 2);
    CU_ASSERT_EQUAL(q.bytes, 8);
    CU_ASSERT_TRUE(take_is(2, 0, 0, "123"));
    CU_ASSERT_EQUAL(q.count, 1);
    CU_ASSERT_EQUAL(q.bytes, 5);
    mq_clear(&q);
    CU_ASSERT_EQUAL(q.count, 0);
    CU_ASSERT_EQUAL(q.bytes, 0);
}

static void test_random_interleaving_preserves_per_pair_order(void)
{
    /* Many messages from 4 sources with 3 tags: taking with random
     * (source|ANY, tag|ANY) must always yield each (source, tag) pair's
     * messages in sequence order. */
    int next_seq[4][3] = { { 0 } }, pushed[4][3] = { { 0 } };
    for (int i = 0; i < 400; i++) {
        int s = (int)(cutest_rand() % 4), t = (int)(cutest_rand() % 3);
        struct mq_msg *m = mq_msg_new(&q, 5, s, t, sizeof(int));
        memcpy(m->data, &pushed[s][t], sizeof(int));
        pushed[s][t]++;
        mq_push(&q, m);
    }
    int ok = 1;
    while (!mq_empty(&q)) {
        int s = cutest_rand() % 2 ? MQ_ANY_SOURCE : (int)(cutest_rand() % 4);
        int t = cutest_rand() % 2 ? MQ_ANY_TAG : (int)(cutest_rand() % 3);
        struct mq_msg *m = mq_take(&q, 5, s, t);
        if (!m)
            continue;
        int seq;
        memcpy(&seq, m->data, sizeof seq);
        ok &= seq == next_seq[m->source][m->tag]++;
        ok &= (s == MQ_ANY_SOURCE || s == m->source) && (t == MQ_ANY_TAG || t == m->tag);
        mq_msg_free(&q, m);
    }
    CU_ASSERT_TRUE(ok);
    for (int s = 0; s < 4; s++)
        for (int t = 0; t < 3; t++)
            CU_ASSERT_EQUAL(next_seq[s][t], pushed[s][t]);
}

static CU_TestInfo tests[] = {
    CUTEST(test_empty_queue_matches_nothing),
    CUTEST(test_exact_match_takes_oldest_of_same_envelope),
    CUTEST(test_other_communicator_never_matches),
    CUTEST(test_any_source_takes_oldest_across_sources),
    CUTEST(test_any_tag_keeps_order_of_one_source),
    CUTEST(test_specific_tag_skips_older_other_tags),
    CUTEST(test_wrong_source_or_tag_does_not_match),
    CUTEST(test_take_from_middle_and_tail_keeps_links),
    CUTEST(test_peek_does_not_remove),
    CUTEST(test_zero_length_message_has_envelope),
    CUTEST(test_counts_and_bytes_follow_push_and_take),
    CUTEST(test_random_interleaving_preserves_per_pair_order),
    CU_TEST_INFO_NULL
};
static CU_SuiteInfo suites[] = {
    { "msgqueue", setup, teardown, NULL, NULL, tests },
    CU_SUITE_INFO_NULL
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
