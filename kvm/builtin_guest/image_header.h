/* The header at the start of the built-in guest's flat image (entry.S emits it), read by the
 * VMM to find the entry point and the ring-0 code it points the IDT at: the exception stubs and
 * the console call.
 *
 * The console call exists because port I/O is not possible from ring 3 everywhere: nested
 * (PVM) KVM runs guest user mode in real ring 3 and ignores IOPL, so `out` there raises #GP.
 * So ring 3 hands a whole line (rdi = bytes, rsi = length) to a ring-0 stub that does
 * `rep outsb` to the UART and returns: a handful of ring-0 instructions per line instead of
 * per byte. The call is `int3` (the #BP vector, its gate DPL 3), because that same KVM turns
 * `int n` from ring 3 into #UD (measured: `int $0x80` and `int $0x81` both fault), while #BP
 * is delivered through the guest's IDT like any exception. The built-in guest has no other
 * use for #BP. */
#ifndef COLO_KVM_BUILTIN_GUEST_IMAGE_HEADER_H
#define COLO_KVM_BUILTIN_GUEST_IMAGE_HEADER_H

#define COLO_BUILTIN_IMAGE_MAGIC 0x47425443u /* "CTBG" */
#define COLO_BUILTIN_IMAGE_VERSION 1u
#define COLO_BUILTIN_CONSOLE_VECTOR 3 /* #BP: the guest executes int3 */

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
    uint64_t console_call;           /* ring-0 entry of the console call (int3) */
};
#endif

#endif
