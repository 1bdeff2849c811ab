// Puts the built-in test guest (kvm/builtin_guest/) into a new VM: long-mode tables with its
// exception stubs and console call in the IDT, its image at layout::kBuiltinImage, and its
// parameters page (kvm/builtin_guest/params.h) computed from the GuestConfig.
#pragma once

#include <cstdint>

#include "backends/guest_config.hpp"
#include "kvm/builtin_guest/params.h"
#include "kvm/entry_state.hpp"

namespace colo::kvm {

class GuestRam;

// The parameters for `config` on a guest with `ram_bytes` of RAM and a TSC of `tsc_khz`.
// Throws colo::Error when the working set and its generation table do not fit in low RAM.
// idle_on_timer: the vCPU has a TSC-deadline LAPIC timer, so the guest halts between intervals
// instead of spinning.
[[nodiscard]] colo_builtin_params builtin_guest_params(const GuestConfig& config, std::uint64_t ram_bytes,
                                                       std::uint32_t tsc_khz, bool idle_on_timer = true);

// Writes tables, image and parameters; returns where the boot vCPU starts (ring 3).
[[nodiscard]] EntryState load_builtin_guest(const GuestConfig& config, GuestRam& ram, std::uint32_t tsc_khz,
                                            bool idle_on_timer);

}  // namespace colo::kvm
