// One vCPU's complete state as StateRecords, in the order kvm/state_tags.hpp documents (and
// explains). Called on the vCPU's own thread while it is paused (VcpuThread::run_paused).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backends/backend.hpp"

namespace colo::kvm {

class Vcpu;

struct VcpuStateShape {
    std::size_t xsave_bytes = 0;           // KVM_CAP_XSAVE2's size (at least 4096)
    std::vector<std::uint32_t> msrs;       // the MSRs saved, in order (saveable_msrs())
};

// The MSRs of KVM_GET_MSR_INDEX_LIST this vCPU can read back, tried one by one (KVM lists
// some it then refuses for this CPU model, which would make KVM_GET_MSRS stop early).
[[nodiscard]] std::vector<std::uint32_t> saveable_msrs(const Vcpu& vcpu, std::span<const std::uint32_t> listed);

[[nodiscard]] std::vector<StateRecord> save_vcpu_state(const Vcpu& vcpu, const VcpuStateShape& shape);

// Throws colo::Error unless `record` is a well-formed `part` of this vCPU's state.
void check_vcpu_record(const StateRecord& record, std::uint32_t part, const VcpuStateShape& shape);

// parts[p - 1] is part p (all present and checked). Applies them in the documented order.
void restore_vcpu_state(Vcpu& vcpu, std::span<const StateRecord* const> parts);

}  // namespace colo::kvm
