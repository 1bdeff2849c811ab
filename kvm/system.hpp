// /dev/kvm (STYLE §1): the one object that can make VMs. Each method wraps exactly one ioctl on
// the system fd and is named after it; a failure throws colo::SystemError("KVM_...", errno).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "backends/unique_fd.hpp"

namespace colo::kvm {

class Vm;

// The CPUID leaves KVM can expose, as KVM_GET_SUPPORTED_CPUID returns them.
using CpuidEntries = std::vector<kvm_cpuid_entry2>;

class System {
public:
    // Opens /dev/kvm (O_CLOEXEC) and checks KVM_GET_API_VERSION == 12.
    System();

    [[nodiscard]] int get_api_version() const;
    // KVM_CHECK_EXTENSION: 0 when absent, else a capability-specific positive value.
    [[nodiscard]] int check_extension(unsigned capability) const;
    // Throws colo::Error("KVM lacks <name>") unless check_extension(capability) > 0.
    void require_extension(unsigned capability, const char* name) const;
    [[nodiscard]] CpuidEntries get_supported_cpuid() const;
    [[nodiscard]] std::vector<std::uint32_t> get_msr_index_list() const;
    [[nodiscard]] std::size_t get_vcpu_mmap_size() const;
    [[nodiscard]] Vm create_vm() const;

private:
    UniqueFd fd_;
};

}  // namespace colo::kvm
