/* The header at the start of the built-in guest's flat image (entry.S emits it), read by the
 * VMM to find the entry point and the ring-0 code it points the IDT at: the exception stubs,
 * the guest call, and the LAPIC timer, NIC and spurious interrupt handlers.
 *
 * The guest call is how ring 3 asks ring 0 for the few things it cannot do itself
 * (rax = COLO_BUILTIN_CALL_*):
 *   CONSOLE      rdi = bytes, rsi = length: `rep outsb` to the UART, a whole line per call.
 *                Port I/O is not possible from ring 3 everywhere: nested (PVM) KVM runs guest
 *                user mode in real ring 3 and ignores IOPL, so `out` there raises #GP.
 *   TIMER_SETUP  once at start: LAPIC in x2APIC mode, timer in TSC-deadline mode on
 *                COLO_BUILTIN_TIMER_VECTOR.
 *   WAIT         rdi = TSC deadline: arm the timer, `sti; hlt` until it fires. The guest idles
 *                instead of spinning between intervals (cheap on a shared machine), and the
 *                pending timer is real LAPIC state that save/restore must carry.
 *   WAIT_EVENT   rdi = TSC deadline: as WAIT, but returns after the first interrupt, whichever
 *                (the timer or the NIC's, COLO_BUILTIN_NIC_VECTOR): the network service wakes
 *                on a frame at once instead of at the end of the print interval.
 * The call is `int3` (the #BP vector, its gate DPL 3), because that same KVM turns `int n` from
 * ring 3 into #UD (measured: `int $0x80` and `int $0x81` both fault), while #BP is delivered
 * through the guest's IDT like any exception. The guest has no other use for #BP. */
#ifndef COLO_KVM_BUILTIN_GUEST_IMAGE_HEADER_H
#define COLO_KVM_BUILTIN_GUEST_IMAGE_HEADER_H

#define COLO_BUILTIN_IMAGE_MAGIC 0x47425443u /* "CTBG" */
#define COLO_BUILTIN_IMAGE_VERSION 3u
#define COLO_BUILTIN_CALL_VECTOR 3 /* #BP: the guest executes int3 */
#define COLO_BUILTIN_TIMER_VECTOR 0x40
#define COLO_BUILTIN_NIC_VECTOR 0x41    /* the guest routes its NIC's IOAPIC pin here */
#define COLO_BUILTIN_SPURIOUS_VECTOR 0xff

#define COLO_BUILTIN_CALL_CONSOLE 0
#define COLO_BUILTIN_CALL_WAIT 1
#define COLO_BUILTIN_CALL_TIMER_SETUP 2
#define COLO_BUILTIN_CALL_WAIT_EVENT 3

#ifndef __ASSEMBLER__
#include <stdint.h>

struct colo_builtin_image_header {
    uint32_t magic;
    uint32_t version;
    uint64_t entry;                  /* guest-physical = virtual (identity map) */
    uint64_t exception_stubs;        /* stub for vector v at exception_stubs + v * stride */
    uint32_t exception_stub_stride;
    uint32_t exception_vectors;
    uint64_t image_end;              /* end of .bss: the VMM zeroes [end of file, image_end) */
    uint64_t guest_call;             /* ring-0 entry of the guest call (int3) */
    uint64_t timer_interrupt;        /* ring-0 handler of COLO_BUILTIN_TIMER_VECTOR */
    uint64_t spurious_interrupt;     /* ring-0 handler of COLO_BUILTIN_SPURIOUS_VECTOR */
    uint64_t nic_interrupt;          /* ring-0 handler of COLO_BUILTIN_NIC_VECTOR */
};
#endif

#endif
