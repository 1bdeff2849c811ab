// The CPUID a vCPU gets: what KVM supports (KVM_GET_SUPPORTED_CPUID), with the APIC ID fields
// set to the vCPU's index so every vCPU identifies itself (leaf 1 EBX[31:24], leaves 0xB and
// 0x1F EDX), and the hypervisor bit (leaf 1 ECX bit 31) set.
#pragma once

#include "kvm/system.hpp"

namespace colo::kvm {

[[nodiscard]] CpuidEntries vcpu_cpuid(const CpuidEntries& supported, unsigned index);

}  // namespace colo::kvm
