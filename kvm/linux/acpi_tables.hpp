// The ACPI tables a Linux guest is booted with: an RSDP (revision 2) pointing to an XSDT that
// lists a FADT and a MADT; the FADT points to a DSDT. Debian's kernels are built without
// CONFIG_X86_MPPARSE, so the MP table alone leaves them with one CPU in virtual-wire mode; the
// MADT is what they read. Debian's cloud kernel is also built without
// CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so the DSDT is the only place it can learn of a virtio-mmio
// device (virtio_mmio.ko binds _HID "LNRO0005", as under Firecracker).
//
// MADT: the local APIC address (kLocalApic), PCAT_COMPAT (there is a pair of 8259s, KVM's
// in-kernel PIC), one enabled Processor Local APIC per vCPU (ACPI processor id = APIC id = vCPU
// index) and one I/O APIC (id = vcpus, at kIoApic, GSI base 0). There are no interrupt source
// overrides: KVM's default routing sends ISA IRQ n to I/O APIC pin n, so identity is right.
//
// FADT (revision 6): the DSDT's address in X_DSDT and the HW_REDUCED_ACPI flag, nothing else but
// IAPC_BOOT_ARCH's "no VGA", "no MSI", "no CMOS RTC" (all true here; no 8042 either, so that bit is
// clear). Hardware-reduced because we have no PM1 event/control blocks, PM timer, SCI or SMI
// command port: without the flag ACPICA insists on them (it fails to enable ACPI mode or its fixed
// events, and Linux then turns the interpreter off and never reads the DSDT). With it, Linux x86
// installs no SCI handler, looks for no PM timer (none in the FADT: it keeps kvm-clock), skips the
// PIT as its timer (the local APIC timer ticks, calibrated against the TSC that kvm-clock reports)
// and replaces the 8259 with its null PIC, so ISA IRQs are no longer pre-mapped: each device's
// interrupt must come from the DSDT. The MADT is still read as before (CPUs, I/O APIC).
//
// DSDT (revision 2), in \_SB:
//   COM1   _HID PNP0501, I/O 0x3f8-0x3ff, IRQNoFlags {4}: the 8250 (kvm/devices/uart_8250.hpp).
//          Under the null PIC, ISA IRQ 4 is no longer mapped, so the 8250 driver's built-in
//          ttyS0 (IRQ 4) would run without interrupts; 8250_pnp re-registers it from this entry
//          with GSI 4 mapped through the I/O APIC, as on any PC.
//   Vnnn   one per virtio-mmio device: _HID "LNRO0005", _UID n, _CRS Memory32Fixed(ReadWrite,
//          base, size) + Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) {gsi}.
//
// Each table's checksum makes its bytes sum to zero; the RSDP has two (first 20 bytes, all 36).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace colo::kvm {

namespace acpi {
inline constexpr std::size_t kRsdpSize = 36;
inline constexpr std::size_t kHeaderSize = 36;
inline constexpr std::size_t kFadtSize = 276;  // revision 6
inline constexpr std::size_t kMadtLocalApicSize = 8;
inline constexpr std::size_t kMadtIoApicSize = 12;
inline constexpr unsigned kMaxVcpus = 254;         // xAPIC ids 0..253; the I/O APIC takes the next
inline constexpr unsigned kMaxMmioDevices = 1000;  // device names V000..V999
}  // namespace acpi

// A virtio-mmio device as the DSDT describes it: its register window and its interrupt.
struct AcpiMmioDevice {
    std::uint32_t base = 0;
    std::uint32_t size = 0;
    std::uint32_t gsi = 0;
};

// The DSDT alone (header and AML), checksummed.
[[nodiscard]] std::vector<std::byte> build_dsdt(std::span<const AcpiMmioDevice> devices);

// The FADT alone, pointing to a DSDT at guest-physical `dsdt_gpa`, checksummed.
[[nodiscard]] std::vector<std::byte> build_fadt(std::uint64_t dsdt_gpa);

// RSDP, XSDT, FADT, DSDT and MADT back to back (each 16-byte aligned within the block), for
// placing at guest-physical `gpa`; the RSDP is first, so `gpa` is what boot_params.acpi_rsdp_addr
// gets and where Linux's scan of 0xe0000..0xfffff finds "RSD PTR ". Throws colo::Error for vcpus
// outside 1..kMaxVcpus, more than kMaxMmioDevices devices, or a block that would not lie below 4 GiB.
[[nodiscard]] std::vector<std::byte> build_acpi_tables(unsigned vcpus, std::span<const AcpiMmioDevice> devices,
                                                       std::uint64_t gpa);

}  // namespace colo::kvm
