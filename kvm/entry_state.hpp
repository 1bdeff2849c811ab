// Where the boot vCPU starts, as a guest loader leaves it: the contract between the loaders
// (built-in test guest, Linux 64-bit boot protocol) and the VMM that programs the vCPU.
//
// Every entry is 64-bit long mode: the VMM itself builds the GDT and identity-mapped page tables
// (kvm/layout.hpp says where) and sets CR0/CR4/EFER directly, so no 16- or 32-bit code of ours
// ever runs.
#pragma once

#include <cstdint>

namespace colo::kvm {

struct EntryState {
    std::uint64_t rip = 0;
    std::uint64_t rsp = 0;
    std::uint64_t rsi = 0;     // Linux: guest-physical address of boot_params (the zero page)
    std::uint64_t rflags = 0x2;
    bool user_mode = false;    // true: start at CPL 3 (built-in guest), with IOPL 3
    std::uint64_t identity_map_bytes = std::uint64_t{4} << 30;  // how much the page tables map
};

}  // namespace colo::kvm
