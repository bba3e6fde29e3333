/*
 * cr_context.h - capture, resume and start execution contexts.
 *
 * A context is what a thread needs to continue at a given instruction: the
 * callee-saved registers, the stack pointer, the return address, the FP
 * control state (MXCSR, x87 control word) and the stack-protector canary of
 * the thread that captured it. Caller-saved registers are not part of it:
 * cr_ctx_save is a function call, so the compiler already assumes they are
 * clobbered. The layout is architecture specific (asm/<arch>/context.h) and
 * is stored opaquely in checkpoints (it must fit in CR_CTX_BLOB bytes).
 *
 *   cr_ctx_save(c)        returns 0 after recording the context; later, when
 *                         someone calls cr_ctx_resume(c, v), it returns a
 *                         second time with v (like setjmp; v == 0 becomes 1).
 *   cr_ctx_resume(c, v)   loads c (including the canary, which it writes into
 *                         the running thread's TCB) and returns v from the
 *                         cr_ctx_save that recorded it. Never returns.
 *   cr_ctx_start(top, fn, arg, exit_fn)
 *                         switches to the stack ending at top, calls fn(arg)
 *                         there and then exit_fn(result) (which must not
 *                         return). Never returns to its caller.
 *
 * The frames that cr_ctx_save's caller owns must still hold the same bytes
 * when the context is resumed: that is the checkpoint's job (it saves the
 * stack) or the caller's (it does not return from the function that saved).
 */
#ifndef CR_CONTEXT_H
#define CR_CONTEXT_H

#if defined(__x86_64__)
#include "x86_64/context.h"
#else
#error "crmpi: no context switch for this architecture (see asm/CMakeLists.txt)"
#endif

#ifndef __ASSEMBLER__
struct cr_ctx;

__attribute__((returns_twice, visibility("hidden")))
int cr_ctx_save(struct cr_ctx *c);

__attribute__((noreturn, visibility("hidden")))
void cr_ctx_resume(const struct cr_ctx *c, int val);

__attribute__((noreturn, visibility("hidden")))
void cr_ctx_start(void *stack_top, void *(*fn)(void *), void *arg,
                  void (*exit_fn)(void *));

/* Stack pointer recorded in a context (for stack bounds and home stacks). */
static inline void *cr_ctx_sp(const struct cr_ctx *c) { return (void *)c->CR_CTX_SP_FIELD; }
#endif

#endif
