/*
 * rollback_app.c - cr_rollback() across restarts, driven by test_rollback.c.
 *
 *   rollback_app PAGES     (CRMPI_DIR set by the caller; run it until it exits)
 *
 * Run 1: fills a crmalloc'd array and a malloc'd one (pattern 1), takes
 *        checkpoint A, commits it and SIGKILLs itself.
 * Run 2: restarted at A (CR_RESTARTED): checks pattern 1, scribbles, rolls
 *        back - the same call returns CR_ROLLEDBACK - checks pattern 1
 *        again, writes pattern 2 over some pages and takes checkpoint B
 *        (incremental on A after the rollback), scribbles, rolls back to B,
 *        checks pattern 2, SIGKILLs itself.
 * Run 3: restarted at B: checks pattern 2, prints "rollback_app: ok".
 * Any mismatch exits with a status naming the check (2..9).
 */
#include <cr.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096

static size_t words;

static uint64_t val(size_t i, int pattern)
{
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ULL + (uint64_t)pattern;
    return x ^ (x >> 29);
}

/* pattern 2 differs from pattern 1 on every 3rd page only */
static int check(const uint64_t *a, const uint64_t *b, int pattern)
{
    for (size_t i = 0; i < words; i++) {
        int p = pattern == 2 && (i / (PAGE / 8)) % 3 == 0 ? 2 : 1;
        if (a[i] != val(i, p) || b[i] != ~val(i, p))
            return 0;
    }
    return 1;
}

static void scribble(uint64_t *a, uint64_t *b)
{
    for (size_t i = 0; i < words; i += 1000)
        a[i] = b[i] = 42;
    void *x = malloc(5 * PAGE);
    if (x)
        memset(x, 7, 5 * PAGE);
}

static void die(int code, const char *what)
{
    fprintf(stderr, "rollback_app: %s\n", what);
    exit(code);
}

int main(int argc, char **argv)
{
    size_t pages = argc > 1 ? (size_t)atol(argv[1]) : 64;
    words = pages * PAGE / 8;
    uint64_t *a = crmalloc(words * 8), *b = malloc(words * 8);
    if (!a || !b)
        die(9, "allocation failed");
    for (size_t i = 0; i < words; i++) {
        a[i] = val(i, 1);
        b[i] = ~val(i, 1);
    }
    int rc = cr_checkpoint();                 /* A */
    if (rc == CR_CHECKPOINTED) {
        if (cr_checkpoint_wait() != 0)
            die(9, "cr_checkpoint_wait failed");
        raise(SIGKILL);
    }
    if (!check(a, b, 1))
        die(2, "pattern 1 wrong after the restart or rollback to A");
    if (rc == CR_RESTARTED) {
        scribble(a, b);
        rc = cr_rollback();
        fprintf(stderr, "rollback_app: cr_rollback: %s\n", cr_strerror(rc));
        die(3, "cr_rollback returned");
    }
    if (rc != CR_ROLLEDBACK)
        die(4, "checkpoint A returned an unexpected status");
    for (size_t i = 0; i < words; i++)
        if ((i / (PAGE / 8)) % 3 == 0) {
            a[i] = val(i, 2);
            b[i] = ~val(i, 2);
        }
    rc = cr_checkpoint();                     /* B */
    if (rc < 0)
        die(5, "checkpoint B failed");
    if (!check(a, b, 2))
        die(6, "pattern 2 wrong at B");
    if (rc == CR_CHECKPOINTED) {
        scribble(a, b);
        rc = cr_rollback();
        fprintf(stderr, "rollback_app: cr_rollback: %s\n", cr_strerror(rc));
        die(7, "cr_rollback to B returned");
    }
    if (rc == CR_ROLLEDBACK)
        raise(SIGKILL);
    if (rc != CR_RESTARTED)
        die(8, "checkpoint B returned an unexpected status");
    printf("rollback_app: ok\n");
    return 0;
}
