// The VM-wide part of the state: in-kernel PIC (master, slave), IOAPIC, PIT and KVM clock, as
// StateRecords in the order kvm/state_tags.hpp documents.
#pragma once

#include <span>
#include <vector>

#include "backends/backend.hpp"

namespace colo::kvm {

class Vm;

[[nodiscard]] std::vector<StateRecord> save_platform_state(const Vm& vm);
// Throws colo::Error unless `record` is a well-formed platform record.
void check_platform_record(const StateRecord& record);
// Applies checked records (each tag at most once).
void restore_platform_state(Vm& vm, std::span<const StateRecord* const> records);

}  // namespace colo::kvm
