/* The built-in guest's image header, ring-3 entry, and ring-0 exception stubs.
 * The VMM enters _start at CPL 3 with rsi = parameters page and rsp = top of the user stack
 * (kvm/builtin_guest/image_header.h explains the console call).
 * An exception enters a stub at CPL 0 on the TSS's RSP0 stack; the stub pushes a dummy error
 * code where the CPU pushes none, so every frame looks alike for fault_report(). */
#include "kvm/builtin_guest/image_header.h"

    .section .header, "a"
    .globl image_header
image_header:
    .long COLO_BUILTIN_IMAGE_MAGIC
    .long COLO_BUILTIN_IMAGE_VERSION
    .quad _start
    .quad exception_stubs
    .long 16
    .long 32
    .quad __image_end
    .quad console_call

    .text
    .globl _start
_start:
    mov %rsi, %rdi
    and $-16, %rsp
    call guest_main
1:  jmp 1b

/* Vectors 8, 10-14, 17, 21, 29 and 30 push an error code; the others do not. */
.macro exception_stub vector
    .balign 16
    .if (\vector == 8) || ((\vector >= 10) && (\vector <= 14)) || (\vector == 17) || (\vector == 21) || (\vector == 29) || (\vector == 30)
    .else
    push $0
    .endif
    push $\vector
    jmp exception_common
.endm

    .balign 16
exception_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    exception_stub \v
    .endr

/* The console call (int3 from ring 3, image_header.h): write rsi bytes at rdi to the console
 * port. The IDT's #BP gate points here instead of at the #BP exception stub. */
console_call:
    push %rcx
    push %rdx
    push %rsi
    mov %rsi, %rcx
    mov %rdi, %rsi
    movzwl colo_console_port(%rip), %edx
    cld
    rep outsb
    pop %rsi
    pop %rdx
    pop %rcx
    iretq

exception_common:
    mov (%rsp), %rdi      /* vector */
    mov 16(%rsp), %rsi    /* faulting rip */
    mov 8(%rsp), %rdx     /* error code */
    and $-16, %rsp
    call fault_report
2:  hlt
    jmp 2b

    .section .note.GNU-stack, "", @progbits
