// An uncompressed Linux kernel (vmlinux) as an ELF64 x86-64 executable. Its PT_LOAD segments are
// loaded at their physical addresses (p_paddr; the virtual ones are the kernel's high mapping),
// and e_entry is the physical address of startup_64, the 64-bit boot entry. Booting vmlinux skips
// the bzImage decompressor, which matters where guest code is slow (nested, emulated paging).
//
// The image is untrusted: every offset, size and address is checked for overflow and against the
// file and the guest's memory before a byte is copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace colo::kvm {

struct ElfSegment {
    std::uint64_t file_offset = 0;
    std::uint64_t file_size = 0;
    std::uint64_t paddr = 0;     // guest-physical load address
    std::uint64_t mem_size = 0;  // >= file_size; the rest is zero-filled
};

struct ElfVmlinux {
    std::uint64_t entry = 0;  // guest-physical 64-bit entry point
    std::vector<ElfSegment> segments;  // PT_LOAD only, sorted by paddr, non-overlapping
    [[nodiscard]] std::uint64_t lowest_address() const;
    [[nodiscard]] std::uint64_t end_address() const;  // one past the highest loaded byte
};

// True when the image starts with the ELF magic.
[[nodiscard]] bool looks_like_elf(std::span<const std::byte> image);

// Parses and validates; errors start with `origin` ("/x/vmlinux: not an x86-64 ELF file ...").
[[nodiscard]] ElfVmlinux parse_elf_vmlinux(std::span<const std::byte> image, const std::string& origin);

// Copies every segment into `ram` (guest-physical address 0 = ram[0]) and zero-fills each
// segment's tail. Throws colo::Error naming `origin` when a segment does not fit in `ram`.
void load_elf_segments(const ElfVmlinux& elf, std::span<const std::byte> image, std::span<std::byte> ram,
                       const std::string& origin);

}  // namespace colo::kvm
