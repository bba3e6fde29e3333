/*
 * x86_64/context.h - layout of struct cr_ctx on x86_64 (System V ABI).
 *
 * Offsets are shared with context.S through the CR_CTX_* macros; the
 * _Static_assert below keeps the two in step.
 */
#ifndef CR_X86_64_CONTEXT_H
#define CR_X86_64_CONTEXT_H

#define CR_CTX_RBX     0
#define CR_CTX_RBP     8
#define CR_CTX_R12    16
#define CR_CTX_R13    24
#define CR_CTX_R14    32
#define CR_CTX_R15    40
#define CR_CTX_RSP    48   /* stack pointer after cr_ctx_save returns      */
#define CR_CTX_RIP    56   /* return address of the cr_ctx_save call       */
#define CR_CTX_MXCSR  64   /* 32 bits                                      */
#define CR_CTX_FPUCW  68   /* 16 bits                                      */
#define CR_CTX_CANARY 72   /* %fs:0x28 of the thread that saved            */
#define CR_CTX_SIZE   80

/* glibc keeps the stack-protector canary in the TCB at %fs:0x28. */
#define CR_TCB_CANARY 0x28

#ifndef __ASSEMBLER__
#include <stddef.h>
#include <stdint.h>

struct cr_ctx {
    uint64_t rbx, rbp, r12, r13, r14, r15;
    uint64_t rsp;
    uint64_t rip;
    uint32_t mxcsr;
    uint16_t fpucw;
    uint16_t pad_;
    uint64_t canary;
};
#define CR_CTX_SP_FIELD rsp

_Static_assert(offsetof(struct cr_ctx, rsp) == CR_CTX_RSP, "cr_ctx layout");
_Static_assert(offsetof(struct cr_ctx, rip) == CR_CTX_RIP, "cr_ctx layout");
_Static_assert(offsetof(struct cr_ctx, mxcsr) == CR_CTX_MXCSR, "cr_ctx layout");
_Static_assert(offsetof(struct cr_ctx, fpucw) == CR_CTX_FPUCW, "cr_ctx layout");
_Static_assert(offsetof(struct cr_ctx, canary) == CR_CTX_CANARY, "cr_ctx layout");
_Static_assert(sizeof(struct cr_ctx) == CR_CTX_SIZE, "cr_ctx layout");
#endif

#endif
