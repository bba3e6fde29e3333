/*
 * test_context.c - unit tests of the context switch (asm/<arch>/context.S).
 *
 * Checks what the rest of the runtime relies on: cr_ctx_save returns twice
 * with the resume value; callee-saved registers, MXCSR and the x87 control
 * word come back as they were saved; cr_ctx_start enters fn and exit_fn with
 * the ABI's stack alignment; a frame whose bytes were copied away, trashed
 * and copied back resumes correctly (what a restart does); and the saved
 * stack-protector canary is written back so a restored frame built under
 * another canary returns through its check (compiled with
 * -fstack-protector-strong; a forked negative control shows the check is live).
 */
#include "cutest.h"
#include "cr_context.h"

#include <fcntl.h>
#include <fenv.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- returns twice -------------------------------------------------------- */

static void test_save_returns_zero_then_resume_value(void)
{
    struct cr_ctx c;
    volatile int passes = 0;
    int v = cr_ctx_save(&c);
    passes++;
    if (v == 0) {
        CU_ASSERT_EQUAL(passes, 1);
        cr_ctx_resume(&c, 42);
    }
    CU_ASSERT_EQUAL(v, 42);
    CU_ASSERT_EQUAL(passes, 2);
}

static void test_resume_with_zero_returns_one(void)
{
    struct cr_ctx c;
    volatile int passes = 0;
    int v = cr_ctx_save(&c);
    if (passes++ == 0)
        cr_ctx_resume(&c, 0);
    CU_ASSERT_EQUAL(v, 1);
}

static void test_resume_negative_value(void)
{
    struct cr_ctx c;
    volatile int passes = 0;
    int v = cr_ctx_save(&c);
    if (passes++ == 0)
        cr_ctx_resume(&c, -5);
    CU_ASSERT_EQUAL(v, -5);
}

/* ---- callee-saved registers ---------------------------------------------- */
/* regs_roundtrip(c, out): loads patterns into rbx, rbp, r12-r15, saves,
 * clobbers all six, resumes, and stores what the second return sees. */
void regs_roundtrip(struct cr_ctx *c, uint64_t out[6]);
__asm__(
    ".text\n"
    ".globl regs_roundtrip\n"
    ".type regs_roundtrip, @function\n"
    "regs_roundtrip:\n"
    "  pushq %rbx; pushq %rbp; pushq %r12; pushq %r13; pushq %r14; pushq %r15\n"
    "  pushq %rsi\n"                       /* out; keeps rsp 16-aligned at the call */
    "  pushq %rdi\n"
    "  movabsq $0x1111111111111111, %rbx\n"
    "  movabsq $0x2222222222222222, %rbp\n"
    "  movabsq $0x3333333333333333, %r12\n"
    "  movabsq $0x4444444444444444, %r13\n"
    "  movabsq $0x5555555555555555, %r14\n"
    "  movabsq $0x6666666666666666, %r15\n"
    "  callq cr_ctx_save\n"
    "  testl %eax, %eax\n"
    "  jnz 1f\n"
    "  xorl %ebx, %ebx; xorl %ebp, %ebp; xorl %r12d, %r12d\n"
    "  xorl %r13d, %r13d; xorl %r14d, %r14d; xorl %r15d, %r15d\n"
    "  movq (%rsp), %rdi\n"
    "  movl $7, %esi\n"
    "  callq cr_ctx_resume\n"
    "1: movq 8(%rsp), %rsi\n"
    "  movq %rbx, 0(%rsi); movq %rbp, 8(%rsi); movq %r12, 16(%rsi)\n"
    "  movq %r13, 24(%rsi); movq %r14, 32(%rsi); movq %r15, 40(%rsi)\n"
    "  addq $16, %rsp\n"
    "  popq %r15; popq %r14; popq %r13; popq %r12; popq %rbp; popq %rbx\n"
    "  ret\n"
    ".size regs_roundtrip, . - regs_roundtrip\n");

static void test_callee_saved_registers_restored(void)
{
    struct cr_ctx c;
    uint64_t out[6] = { 0 };
    regs_roundtrip(&c, out);
    for (int i = 0; i < 6; i++)
        CU_ASSERT_EQUAL(out[i], 0x1111111111111111ULL * (uint64_t)(i + 1));
    CU_ASSERT_EQUAL(c.rbx, 0x1111111111111111ULL);
    CU_ASSERT_EQUAL(c.r15, 0x6666666666666666ULL);
}

/* ---- FP control ------------------------------------------------------------ */

static uint16_t get_fpucw(void)
{
    uint16_t cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return cw;
}

static uint32_t get_mxcsr(void)
{
    uint32_t v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}

static void set_fpucw(uint16_t cw)
{
    __asm__ volatile("fldcw %0" : : "m"(cw));
}

static void test_mxcsr_and_x87_cw_restored(void)
{
    struct cr_ctx c;
    volatile int passes = 0;
    uint16_t cw0 = get_fpucw();
    fesetround(FE_DOWNWARD);                           /* both MXCSR and x87 */
    set_fpucw((uint16_t)(get_fpucw() & ~0x0300u));     /* x87 precision: single */
    uint16_t saved_cw = get_fpucw();
    uint32_t saved_mxcsr = get_mxcsr();
    int v = cr_ctx_save(&c);
    if (passes++ == 0) {
        fesetround(FE_UPWARD);
        set_fpucw(cw0);
        cr_ctx_resume(&c, 1);
    }
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_EQUAL(fegetround(), FE_DOWNWARD);
    CU_ASSERT_EQUAL(get_fpucw(), saved_cw);
    CU_ASSERT_EQUAL(get_mxcsr(), saved_mxcsr);
    CU_ASSERT_EQUAL(get_mxcsr() & 0x6000u, 0x2000u);   /* MXCSR rounding: down */
    fesetround(FE_TONEAREST);
    set_fpucw(cw0);
}

/* ---- cr_ctx_start ---------------------------------------------------------- */

/* referenced from the assembly probes below, hence not static */
struct cr_ctx home;
uintptr_t fn_entry_misalign, exit_entry_misalign;
void *exit_result;

/* fn and exit_fn probes in assembly: record (rsp + 8) % 16 at entry. */
void *probe_fn(void *arg);
void probe_exit(void *result);
__asm__(
    ".text\n"
    ".globl probe_fn\n"
    ".type probe_fn, @function\n"
    "probe_fn:\n"
    "  leaq 8(%rsp), %rax\n"
    "  andq $15, %rax\n"
    "  movq %rax, fn_entry_misalign(%rip)\n"
    "  leaq 1(%rdi), %rax\n"             /* result = arg + 1 */
    "  ret\n"
    ".size probe_fn, . - probe_fn\n"
    ".globl probe_exit\n"
    ".type probe_exit, @function\n"
    "probe_exit:\n"
    "  leaq 8(%rsp), %rax\n"
    "  andq $15, %rax\n"
    "  movq %rax, exit_entry_misalign(%rip)\n"
    "  movq %rdi, exit_result(%rip)\n"
    "  leaq home(%rip), %rdi\n"
    "  movl $3, %esi\n"
    "  andq $-16, %rsp\n"
    "  callq cr_ctx_resume\n"
    ".size probe_exit, . - probe_exit\n");

static void run_on_stack(size_t misalign)
{
    size_t size = 64 << 10;
    char *stack = malloc(size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(stack);
    fn_entry_misalign = exit_entry_misalign = 99;
    int v = cr_ctx_save(&home);
    if (v == 0)
        cr_ctx_start(stack + size - misalign, probe_fn, (void *)0x1000, probe_exit);
    CU_ASSERT_EQUAL(v, 3);
    CU_ASSERT_EQUAL(fn_entry_misalign, 0);
    CU_ASSERT_EQUAL(exit_entry_misalign, 0);
    CU_ASSERT_EQUAL((uintptr_t)exit_result, 0x1001);
    free(stack);
}

static void test_start_aligns_stack_at_entry(void)
{
    run_on_stack(0);
}

static void test_start_aligns_odd_stack_top(void)
{
    run_on_stack(3);
    run_on_stack(8);
    run_on_stack(13);
}

/* ---- a frame copied away, trashed and copied back (what a restart does) ---- */

static struct cr_ctx worker_ctx, main_ctx;
static char *wstack;
static size_t wsize = 64 << 10;

static long deep(int n, long acc)
{
    volatile long local[4] = { acc, acc * 3, acc ^ 0x5a, n };
    if (n > 0)
        return deep(n - 1, acc * 7 + n) + local[1] - local[1];
    int v = cr_ctx_save(&worker_ctx);
    if (v == 0)
        cr_ctx_resume(&main_ctx, 1);     /* back to the test: "checkpoint taken" */
    return local[0] + local[2] + local[3] + v;
}

static long deep_result;

static void *worker(void *arg)
{
    deep_result = deep(20, 1);
    return NULL;
}

static void worker_exit(void *r)
{
    cr_ctx_resume(&main_ctx, 2);
}

static long deep_expected(void)
{
    long acc = 1;
    for (int n = 20; n > 0; n--)
        acc = acc * 7 + n;
    return acc + (acc ^ 0x5a) + 0 + 9;     /* v = 9 on the second return */
}

static void test_resume_after_stack_restored_from_copy(void)
{
    wstack = malloc(wsize);
    char *copy = malloc(wsize);
    CU_ASSERT_PTR_NOT_NULL_FATAL(wstack);
    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
    volatile int phase = 0;
    int v = cr_ctx_save(&main_ctx);
    if (phase == 0) {
        phase = 1;
        cr_ctx_start(wstack + wsize, worker, NULL, worker_exit);
    }
    if (phase == 1) {
        CU_ASSERT_EQUAL(v, 1);
        /* save only what is above the captured stack pointer, as the
         * checkpoint does, then destroy the whole stack */
        size_t used = (size_t)(wstack + wsize - (char *)cr_ctx_sp(&worker_ctx));
        CU_ASSERT(used > 20 * 32 && used < wsize);
        memcpy(copy, cr_ctx_sp(&worker_ctx), used);
        memset(wstack, 0xa5, wsize);
        memcpy(cr_ctx_sp(&worker_ctx), copy, used);
        phase = 2;
        cr_ctx_resume(&worker_ctx, 9);
    }
    CU_ASSERT_EQUAL(v, 2);
    CU_ASSERT_EQUAL(deep_result, deep_expected());
    free(copy);
    free(wstack);
}

/* ---- stack-protector canary ------------------------------------------------ */

static uint64_t get_canary(void)
{
    uint64_t v;
    __asm__ volatile("movq %%fs:0x28, %0" : "=r"(v));
    return v;
}

static void set_canary(uint64_t v)
{
    __asm__ volatile("movq %0, %%fs:0x28" : : "r"(v) : "memory");
}

static struct cr_ctx canary_ctx;

/* A frame with a protected array. It saves, then "the process changes":
 * the TCB gets another canary, and the frame is resumed. The epilogue's
 * check passes only if the resume wrote the saved canary back. */
__attribute__((noinline)) static int protected_frame(const char *msg, int restore)
{
    char buf[64];
    strncpy(buf, msg, sizeof buf - 1);
    buf[sizeof buf - 1] = 0;
    volatile int passes = 0;
    int v = cr_ctx_save(&canary_ctx);
    if (passes++ == 0) {
        set_canary(get_canary() ^ 0x0123456789abcdefULL);
        if (restore)
            cr_ctx_resume(&canary_ctx, 5);
        return buf[0];       /* returns through the check with the wrong canary */
    }
    return buf[0] + v;
}

static void test_canary_written_back_on_resume(void)
{
    uint64_t before = get_canary();
    int r = protected_frame("hello", 1);
    CU_ASSERT_EQUAL(r, 'h' + 5);
    CU_ASSERT_EQUAL(get_canary(), before);
    CU_ASSERT_EQUAL(canary_ctx.canary, before);
}

static void test_canary_mismatch_is_detected_without_restore(void)
{
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        /* silence the "stack smashing detected" message */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        protected_frame("hello", 0);
        _exit(0);
    }
    int st;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

static CU_TestInfo context_tests[] = {
    CUTEST(test_save_returns_zero_then_resume_value),
    CUTEST(test_resume_with_zero_returns_one),
    CUTEST(test_resume_negative_value),
    CUTEST(test_callee_saved_registers_restored),
    CUTEST(test_mxcsr_and_x87_cw_restored),
    CUTEST(test_start_aligns_stack_at_entry),
    CUTEST(test_start_aligns_odd_stack_top),
    CUTEST(test_resume_after_stack_restored_from_copy),
    CUTEST(test_canary_written_back_on_resume),
    CUTEST(test_canary_mismatch_is_detected_without_restore),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    { "context", NULL, NULL, NULL, NULL, context_tests },
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return cutest_main(argc, argv, suites);
}
