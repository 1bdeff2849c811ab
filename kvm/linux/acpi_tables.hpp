// The smallest set of ACPI tables that tells Linux its CPUs and interrupt controllers: an RSDP
// (revision 2) pointing to an XSDT that lists one MADT. Debian's kernels are built without
// CONFIG_X86_MPPARSE, so the MP table alone leaves them with one CPU in virtual-wire mode; the
// MADT is what they read.
//
// MADT contents: the local APIC address (kLocalApic), PCAT_COMPAT (there is a pair of 8259s,
// KVM's in-kernel PIC), one enabled Processor Local APIC per vCPU (ACPI processor id = APIC id =
// vCPU index) and one I/O APIC (id = vcpus, at kIoApic, GSI base 0). There are no interrupt
// source overrides: KVM's default routing sends ISA IRQ n to I/O APIC pin n, so identity is right.
// No FADT or DSDT: Linux parses the MADT early from the XSDT alone and then runs without the ACPI
// interpreter (it says so once in the boot log), which is all a console-only guest needs.
//
// Each table's checksum makes its bytes sum to zero; the RSDP has two (first 20 bytes, all 36).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace colo::kvm {

namespace acpi {
inline constexpr std::size_t kRsdpSize = 36;
inline constexpr std::size_t kHeaderSize = 36;
inline constexpr std::size_t kMadtLocalApicSize = 8;
inline constexpr std::size_t kMadtIoApicSize = 12;
inline constexpr unsigned kMaxVcpus = 254;  // xAPIC ids 0..253; the I/O APIC takes the next
}  // namespace acpi

// RSDP, XSDT and MADT back to back (each 16-byte aligned within the block), for placing at
// guest-physical `gpa`; the RSDP is first, so `gpa` is what boot_params.acpi_rsdp_addr gets and
// where Linux's scan of 0xe0000..0xfffff finds "RSD PTR ". Throws colo::Error for vcpus outside
// 1..kMaxVcpus or a block that would not lie below 4 GiB.
[[nodiscard]] std::vector<std::byte> build_acpi_tables(unsigned vcpus, std::uint64_t gpa);

}  // namespace colo::kvm
