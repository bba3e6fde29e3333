/*
 * x86_64/context.S - context capture, resume and first entry (System V ABI).
 *
 * Register contract. cr_ctx_save is an ordinary call: rax, rcx, rdx, rsi,
 * rdi, r8-r11 and the vector registers are caller-saved and therefore not
 * recorded. It records rbx, rbp, r12-r15, the stack pointer as it will be
 * after the call returns (rsp + 8), the return address, MXCSR (rounding and
 * exception masks), the x87 control word and the stack-protector canary at
 * %fs:0x28. cr_ctx_resume loads all of that, writes the canary back into
 * the *running* thread's TCB (a restarted process has a fresh random canary,
 * but restored frames were built with the old one), and jumps to the return
 * address with eax = val (0 becomes 1, as with longjmp).
 *
 * Stack alignment and first-entry frame of cr_ctx_start(top, fn, arg,
 * exit_fn): rsp = top rounded down to 16, rbp = 0 (ends frame-pointer
 * walks), then `call *fn`, so fn starts with rsp = 16n - 8 exactly as after
 * any call. When fn returns, rsp is 16-aligned again and exit_fn(result) is
 * called the same way; exit_fn must not return (ud2 traps if it does).
 * exit_fn is kept in r12, which fn preserves for us as callee-saved.
 * The CFI of cr_ctx_start marks the return address undefined so debuggers
 * and unwinders stop at the bottom of the new stack.
 */
#include "context.h"

#define ENTRY(name)                     \
        .globl name;                    \
        .hidden name;                   \
        .type name, @function;          \
        .p2align 4;                     \
name:

#define END(name) .size name, . - name

        .text

/* int cr_ctx_save(struct cr_ctx *c)   (rdi = c) */
ENTRY(cr_ctx_save)
        .cfi_startproc
        movq    %rbx, CR_CTX_RBX(%rdi)
        movq    %rbp, CR_CTX_RBP(%rdi)
        movq    %r12, CR_CTX_R12(%rdi)
        movq    %r13, CR_CTX_R13(%rdi)
        movq    %r14, CR_CTX_R14(%rdi)
        movq    %r15, CR_CTX_R15(%rdi)
        leaq    8(%rsp), %rdx           /* caller's rsp after our ret */
        movq    %rdx, CR_CTX_RSP(%rdi)
        movq    (%rsp), %rdx            /* return address */
        movq    %rdx, CR_CTX_RIP(%rdi)
        stmxcsr CR_CTX_MXCSR(%rdi)
        fnstcw  CR_CTX_FPUCW(%rdi)
        movw    $0, CR_CTX_FPUCW+2(%rdi)
        movq    %fs:CR_TCB_CANARY, %rdx
        movq    %rdx, CR_CTX_CANARY(%rdi)
        xorl    %eax, %eax
        ret
        .cfi_endproc
END(cr_ctx_save)

/* void cr_ctx_resume(const struct cr_ctx *c, int val)   (rdi = c, esi = val) */
ENTRY(cr_ctx_resume)
        .cfi_startproc
        movl    %esi, %eax
        testl   %eax, %eax
        jnz     1f
        movl    $1, %eax
1:      movq    CR_CTX_CANARY(%rdi), %rdx
        movq    %rdx, %fs:CR_TCB_CANARY
        ldmxcsr CR_CTX_MXCSR(%rdi)
        fldcw   CR_CTX_FPUCW(%rdi)
        movq    CR_CTX_RBX(%rdi), %rbx
        movq    CR_CTX_RBP(%rdi), %rbp
        movq    CR_CTX_R12(%rdi), %r12
        movq    CR_CTX_R13(%rdi), %r13
        movq    CR_CTX_R14(%rdi), %r14
        movq    CR_CTX_R15(%rdi), %r15
        movq    CR_CTX_RSP(%rdi), %rsp
        jmpq    *CR_CTX_RIP(%rdi)
        .cfi_endproc
END(cr_ctx_resume)

/* void cr_ctx_start(void *top, void *(*fn)(void *), void *arg, void (*exit_fn)(void *))
 * (rdi = top, rsi = fn, rdx = arg, rcx = exit_fn) */
ENTRY(cr_ctx_start)
        .cfi_startproc
        .cfi_undefined rip
        andq    $-16, %rdi
        movq    %rdi, %rsp
        xorl    %ebp, %ebp
        movq    %rcx, %r12
        movq    %rdx, %rdi
        callq   *%rsi
        movq    %rax, %rdi
        callq   *%r12
        ud2
        .cfi_endproc
END(cr_ctx_start)

        .section .note.GNU-stack, "", @progbits
