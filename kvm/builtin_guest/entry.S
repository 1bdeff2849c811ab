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
    .quad guest_call
    .quad timer_interrupt
    .quad spurious_interrupt
    .quad nic_interrupt

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

/* The guest call (int3 from ring 3, image_header.h): rax says which. An interrupt gate, so
 * interrupts are off on entry. */
guest_call:
    cmp $COLO_BUILTIN_CALL_WAIT, %rax
    je wait_call
    cmp $COLO_BUILTIN_CALL_WAIT_EVENT, %rax
    je wait_event_call
    cmp $COLO_BUILTIN_CALL_TIMER_SETUP, %rax
    je timer_setup_call
    /* CONSOLE: write rsi bytes at rdi to the console port. */
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

/* WAIT: sleep until the TSC reaches rdi. Arms the TSC-deadline timer and halts with interrupts
 * on (sti's one-instruction shadow means the timer cannot fire between sti and hlt unnoticed);
 * a deadline already past fires at once. Loops on early wake-ups.
 * WAIT_EVENT: the same, but back to ring 3 after the first interrupt (timer or NIC): ring 3
 * looks at the NIC's rings and the clock itself. Two instructions more than the halt, since
 * nested KVM emulates every ring-0 instruction (about 2 us each). */
wait_call:
wait_event_call:
    push %rax
    push %rcx
    push %rdx
1:  mov %rdi, %rax
    mov %rdi, %rdx
    shr $32, %rdx
    mov $0x6e0, %ecx            /* IA32_TSC_DEADLINE */
    wrmsr
    sti
    hlt
    cli
    cmpq $COLO_BUILTIN_CALL_WAIT_EVENT, 16(%rsp)   /* the caller's rax */
    je 2f
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    cmp %rdi, %rax
    jb 1b
2:  pop %rdx
    pop %rcx
    pop %rax
    iretq

/* TIMER_SETUP: x2APIC on, software-enable the LAPIC, timer in TSC-deadline mode. */
timer_setup_call:
    push %rax
    push %rcx
    push %rdx
    mov $0x1b, %ecx             /* IA32_APIC_BASE: global enable + x2APIC */
    rdmsr
    or $0xc00, %eax
    wrmsr
    mov $0x80f, %ecx            /* x2APIC SVR: enabled, spurious vector */
    mov $(0x100 | COLO_BUILTIN_SPURIOUS_VECTOR), %eax
    xor %edx, %edx
    wrmsr
    mov $0x832, %ecx            /* x2APIC LVT timer: TSC-deadline mode (bits 18:17 = 2) */
    mov $(COLO_BUILTIN_TIMER_VECTOR | (2 << 17)), %eax
    wrmsr
    pop %rdx
    pop %rcx
    pop %rax
    iretq

/* The LAPIC timer or the NIC (edge-triggered through the IOAPIC) interrupted: acknowledge it
 * (x2APIC EOI) and return into the halted wait. The NIC's own interrupt status is ring 3's
 * business (net.c acknowledges it before it looks at the rings). */
timer_interrupt:
nic_interrupt:
    push %rax
    push %rcx
    push %rdx
    mov $0x80b, %ecx
    xor %eax, %eax
    xor %edx, %edx
    wrmsr
    pop %rdx
    pop %rcx
    pop %rax
    iretq

/* A spurious LAPIC interrupt needs no EOI. */
spurious_interrupt:
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
