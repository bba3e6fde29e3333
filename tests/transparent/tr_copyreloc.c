/*
 * tr_copyreloc.c - globals of the executable across a restart, next to
 * library variables that copy relocations placed in the executable.
 *
 * Built without PIE so that environ, optarg, optind and stdout are copy
 * relocations (checked by copyreloc.py with readelf). Driven in two
 * processes by copyreloc.py:
 *   TR_PHASE=1 tr_copyreloc -p 1 -t first OUT RAW
 *       sets globals (.data, .bss, a malloc'd list), writes lines 0..9 to
 *       OUT (fopen) and RAW (open), checkpoints, writes lines 10..12 more
 *       (flushed to disk), then SIGKILLs itself;
 *   TR_PHASE=2 tr_copyreloc x y z (more arguments: envp moves)
 *       resumes after the checkpoint and checks: the globals have the
 *       values of the first process; environ, optarg, optind and stdout are
 *       this process's own (its getopt never ran: optarg NULL, optind 1;
 *       TR_PHASE reads 2); then writes lines 10..19 and exits 0.
 * OUT and RAW must then hold lines 0..19 exactly once.
 */
#include <cr.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

long counter = 5;                    /* .data */
static double big[50000];            /* .bss, 400 KB */
struct node { struct node *next; int v; };
static struct node *list;            /* a global pointing into malloc'd memory */
static FILE *out;                    /* a global FILE* */
static int raw = -1;

static int fail(const char *what)
{
    printf("FAIL %s\n", what);
    fflush(stdout);
    return 1;
}

static void lines(int from, int to)
{
    for (int i = from; i < to; i++) {
        fprintf(out, "line %d of the stream\n", i);
        char b[64];
        int n = snprintf(b, sizeof b, "line %d of the descriptor\n", i);
        if (write(raw, b, (size_t)n) != n)
            abort();
    }
}

int main(int argc, char **argv)
{
    int opt;
    const char *tag = "none";
    while ((opt = getopt(argc, argv, "p:t:")) != -1)
        if (opt == 't')
            tag = optarg;
    if (argc - optind < 2)
        return fail("usage");
    out = fopen(argv[optind], "w");
    raw = open(argv[optind + 1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!out || raw < 0)
        return fail("open");
    counter = 42;
    for (int i = 0; i < 50000; i++)
        big[i] = i * 0.5;
    for (int i = 0; i < 100; i++) {
        struct node *n = malloc(sizeof *n);
        n->v = i;
        n->next = list;
        list = n;
    }
    lines(0, 10);
    int rc = cr_checkpoint();
    const char *phase = getenv("TR_PHASE");
    if (rc == CR_CHECKPOINTED && phase && !strcmp(phase, "1")) {
        lines(10, 13);                   /* lost work: must not survive */
        fflush(out);
        raise(SIGKILL);
    }
    if (rc != CR_RESTARTED)
        return fail("not restarted");
    if (counter != 42)
        return fail("counter (.data)");
    for (int i = 0; i < 50000; i++)
        if (big[i] != i * 0.5)
            return fail("big (.bss)");
    int expect = 0;
    for (struct node *n = list; n; n = n->next, expect++)
        if (n->v != 99 - expect)
            return fail("list");
    if (expect != 100)
        return fail("list length");
    int seen = 0;
    for (char **e = environ; *e; e++)
        seen |= !strcmp(*e, "TR_PHASE=2");
    if (!seen)
        return fail("environ (copy relocation) overwritten");
    if (optarg != NULL || optind != 1)
        return fail("optarg/optind (copy relocations) overwritten");
    if (strcmp(tag, "first"))
        return fail("tag (persistent stack)");
    lines(10, 20);
    if (fclose(out) || close(raw))
        return fail("close");
    printf("OK globals restored, library objects intact\n");
    return 0;
}
