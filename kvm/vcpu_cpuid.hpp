// The CPUID a vCPU gets: what KVM supports (KVM_GET_SUPPORTED_CPUID), with the APIC ID fields
// set to the vCPU's index so every vCPU identifies itself (leaf 1 EBX[31:24], leaves 0xB and
// 0x1F EDX), the hypervisor bit (leaf 1 ECX bit 31) set, and the features the in-kernel LAPIC
// emulates whatever the host has (leaf 1 ECX: x2APIC bit 21; TSC-deadline timer bit 24 when
// KVM_CAP_TSC_DEADLINE_TIMER). KVM_GET_SUPPORTED_CPUID leaves the TSC-deadline bit out on
// kvm_amd (it is "emulated" CPUID there), and without it KVM silently turns a guest's
// TSC-deadline LVT timer into a one-shot timer that never fires.
#pragma once

#include "kvm/system.hpp"

namespace colo::kvm {

[[nodiscard]] CpuidEntries vcpu_cpuid(const CpuidEntries& supported, unsigned index, bool tsc_deadline_timer);

}  // namespace colo::kvm
