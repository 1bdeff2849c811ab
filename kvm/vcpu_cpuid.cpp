#include "kvm/vcpu_cpuid.hpp"

namespace colo::kvm {

CpuidEntries vcpu_cpuid(const CpuidEntries& supported, unsigned index, bool tsc_deadline_timer) {
    CpuidEntries entries = supported;
    for (auto& e : entries) {
        if (e.function == 1) {
            e.ebx = (e.ebx & 0x00ffffff) | (index << 24);
            e.ecx |= 1u << 31;  // hypervisor present: Linux then looks for KVM's paravirtual clock
            e.ecx |= 1u << 21;  // x2APIC: the in-kernel LAPIC emulates it
            if (tsc_deadline_timer) e.ecx |= 1u << 24;
        }
        if (e.function == 0xb || e.function == 0x1f) e.edx = index;
    }
    return entries;
}

}  // namespace colo::kvm
