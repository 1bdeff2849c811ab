// One virtual CPU (STYLE §1): made only by Vm::create_vcpu. Each method wraps exactly one ioctl
// on the vCPU fd and is named after it; failures throw colo::SystemError("KVM_...", errno).
// Move-only. Not thread-safe: one thread (the vCPU thread, kvm/vcpu_thread.hpp) drives it.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backends/unique_fd.hpp"
#include "kvm/system.hpp"
#include "kvm/vcpu_run_page.hpp"

namespace colo::kvm {

struct MsrEntry {
    std::uint32_t index = 0;
    std::uint64_t data = 0;
    bool operator==(const MsrEntry&) const = default;
};

class Vcpu {
public:
    Vcpu(Vcpu&&) noexcept = default;
    Vcpu& operator=(Vcpu&&) noexcept = default;
    Vcpu(const Vcpu&) = delete;
    Vcpu& operator=(const Vcpu&) = delete;
    ~Vcpu() = default;

    // KVM_RUN. Returns false when the run was interrupted (EINTR: a signal or immediate_exit),
    // true when kvm_run->exit_reason says why the guest stopped.
    [[nodiscard]] bool run();

    [[nodiscard]] kvm_regs get_regs() const;
    void set_regs(const kvm_regs& regs);
    [[nodiscard]] kvm_sregs get_sregs() const;
    void set_sregs(const kvm_sregs& sregs);
    [[nodiscard]] kvm_mp_state get_mp_state() const;
    void set_mp_state(const kvm_mp_state& state);
    // KVM_GET_XSAVE2 when size > sizeof(kvm_xsave) (KVM_CAP_XSAVE2), else KVM_GET_XSAVE.
    [[nodiscard]] std::vector<std::byte> get_xsave(std::size_t size) const;
    void set_xsave(std::span<const std::byte> area);
    [[nodiscard]] kvm_xcrs get_xcrs() const;
    void set_xcrs(const kvm_xcrs& xcrs);
    [[nodiscard]] kvm_debugregs get_debugregs() const;
    void set_debugregs(const kvm_debugregs& regs);
    [[nodiscard]] kvm_lapic_state get_lapic() const;
    void set_lapic(const kvm_lapic_state& lapic);
    // Reads the given MSRs; returns how many leading entries the kernel could read.
    [[nodiscard]] std::size_t get_msrs(std::span<MsrEntry> entries) const;
    // Writes the MSRs; returns how many leading entries the kernel accepted.
    [[nodiscard]] std::size_t set_msrs(std::span<const MsrEntry> entries);
    [[nodiscard]] kvm_vcpu_events get_vcpu_events() const;
    void set_vcpu_events(const kvm_vcpu_events& events);
    void set_cpuid2(const CpuidEntries& entries);
    [[nodiscard]] std::uint32_t get_tsc_khz() const;

    [[nodiscard]] VcpuRunPage& run_page() noexcept { return run_; }
    [[nodiscard]] unsigned index() const noexcept { return index_; }
    // For mappings beside kvm_run (the dirty ring in bench/kvm_bench.cpp); still owned here.
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    friend class Vm;
    Vcpu(UniqueFd fd, VcpuRunPage run, unsigned index)
        : fd_(std::move(fd)), run_(std::move(run)), index_(index) {}

    UniqueFd fd_;
    VcpuRunPage run_;
    unsigned index_ = 0;
};

}  // namespace colo::kvm
