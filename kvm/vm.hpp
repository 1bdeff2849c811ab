// A KVM virtual machine (STYLE §1): made only by System::create_vm, makes the Vcpus. Each method
// wraps exactly one ioctl on the VM fd and is named after it; failures throw
// colo::SystemError("KVM_...", errno). Move-only.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "backends/unique_fd.hpp"

namespace colo::kvm {

class Vcpu;

class Vm {
public:
    Vm(Vm&&) noexcept = default;
    Vm& operator=(Vm&&) noexcept = default;
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;
    ~Vm() = default;

    [[nodiscard]] int check_extension(unsigned capability) const;
    void enable_cap(unsigned capability, std::uint64_t arg0);

    void set_user_memory_region(const kvm_userspace_memory_region& region);
    // Copies slot `slot`'s dirty bitmap into `bitmap` (one bit per page of the slot).
    void get_dirty_log(std::uint32_t slot, std::span<std::uint64_t> bitmap);
    // Clears (and write-protects again) the pages whose bits are set in `bitmap`, which covers
    // pages [first_page, first_page + pages) of the slot.
    void clear_dirty_log(std::uint32_t slot, std::uint64_t first_page, std::uint32_t pages,
                         std::span<std::uint64_t> bitmap);

    void set_tss_addr(std::uint64_t gpa);
    void set_identity_map_addr(std::uint64_t gpa);
    void create_irqchip();
    void create_pit2(const kvm_pit_config& config);
    [[nodiscard]] kvm_irqchip get_irqchip(std::uint32_t chip_id) const;
    void set_irqchip(const kvm_irqchip& chip);
    [[nodiscard]] kvm_pit_state2 get_pit2() const;
    void set_pit2(const kvm_pit_state2& state);
    [[nodiscard]] kvm_clock_data get_clock() const;
    void set_clock(const kvm_clock_data& clock);
    void irq_line(std::uint32_t irq, bool level);
    [[nodiscard]] std::uint32_t get_tsc_khz() const;

    [[nodiscard]] Vcpu create_vcpu(unsigned index) const;

    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    friend class System;
    Vm(UniqueFd fd, std::size_t vcpu_mmap_size) : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}

    UniqueFd fd_;
    std::size_t vcpu_mmap_size_ = 0;
};

}  // namespace colo::kvm
