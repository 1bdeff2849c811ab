// Puts the boot vCPU straight into 64-bit long mode (kvm/entry_state.hpp): the VMM writes the
// GDT, the TSS, identity-mapping page tables and (optionally) an IDT into guest RAM at the
// addresses in kvm/layout.hpp, then programs sregs/regs. No 16- or 32-bit code ever runs.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "backends/guest_address.hpp"
#include "kvm/entry_state.hpp"

namespace colo::kvm {

class GuestRam;
class Vcpu;

// Ring-0 entry points the IDT points at: the 32 CPU exception vectors (vector v enters at
// exception_stubs + v * exception_stride), then further gates, which may replace an exception
// stub's (dpl 3: ring 3 may raise it itself).
struct InterruptGate {
    std::uint8_t vector = 0;
    Gpa target;
    unsigned dpl = 0;
};
struct InterruptGates {
    Gpa exception_stubs;
    std::uint32_t exception_stride = 0;
    std::vector<InterruptGate> more;
};

inline constexpr unsigned kExceptionVectors = 32;

// Writes GDT, TSS, page tables and IDT. Page tables map [0, entry.identity_map_bytes) with
// 2 MiB pages (at most layout::kMaxIdentityMapBytes), user-accessible when entry.user_mode.
// Without gates every IDT gate is not present (any exception then ends in a triple fault,
// which the VMM reports as a shutdown). Throws colo::Error for an impossible entry state.
void write_long_mode_tables(GuestRam& ram, const EntryState& entry,
                            std::optional<InterruptGates> gates);

// Sets the vCPU's segment, control and general registers for `entry` (long mode, paging on,
// CPL 3 with IOPL 3 when entry.user_mode, else CPL 0).
void enter_long_mode(Vcpu& vcpu, const EntryState& entry);

}  // namespace colo::kvm
