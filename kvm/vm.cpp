#include "kvm/vm.hpp"

#include <sys/ioctl.h>

#include "backends/error.hpp"
#include "kvm/vcpu.hpp"

namespace colo::kvm {

int Vm::check_extension(unsigned capability) const {
    return check_syscall(::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability), "KVM_CHECK_EXTENSION");
}

void Vm::enable_cap(unsigned capability, std::uint64_t arg0) {
    kvm_enable_cap cap{};
    cap.cap = capability;
    cap.args[0] = arg0;
    check_syscall(::ioctl(fd_.get(), KVM_ENABLE_CAP, &cap), "KVM_ENABLE_CAP");
}

void Vm::set_user_memory_region(const kvm_userspace_memory_region& region) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
}

void Vm::get_dirty_log(std::uint32_t slot, std::span<std::uint64_t> bitmap) {
    kvm_dirty_log log{};
    log.slot = slot;
    log.dirty_bitmap = bitmap.data();
    check_syscall(::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log), "KVM_GET_DIRTY_LOG");
}

void Vm::clear_dirty_log(std::uint32_t slot, std::uint64_t first_page, std::uint32_t pages,
                         std::span<std::uint64_t> bitmap) {
    kvm_clear_dirty_log clear{};
    clear.slot = slot;
    clear.first_page = first_page;
    clear.num_pages = pages;
    clear.dirty_bitmap = bitmap.data();
    check_syscall(::ioctl(fd_.get(), KVM_CLEAR_DIRTY_LOG, &clear), "KVM_CLEAR_DIRTY_LOG");
}

void Vm::set_tss_addr(std::uint64_t gpa) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(gpa)), "KVM_SET_TSS_ADDR");
}

void Vm::set_identity_map_addr(std::uint64_t gpa) {
    std::uint64_t address = gpa;
    check_syscall(::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &address), "KVM_SET_IDENTITY_MAP_ADDR");
}

void Vm::create_irqchip() {
    check_syscall(::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
}

void Vm::create_pit2(const kvm_pit_config& config) {
    check_syscall(::ioctl(fd_.get(), KVM_CREATE_PIT2, &config), "KVM_CREATE_PIT2");
}

kvm_irqchip Vm::get_irqchip(std::uint32_t chip_id) const {
    kvm_irqchip chip{};
    chip.chip_id = chip_id;
    check_syscall(::ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip), "KVM_GET_IRQCHIP");
    return chip;
}

void Vm::set_irqchip(const kvm_irqchip& chip) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_IRQCHIP, &chip), "KVM_SET_IRQCHIP");
}

kvm_pit_state2 Vm::get_pit2() const {
    kvm_pit_state2 state{};
    check_syscall(::ioctl(fd_.get(), KVM_GET_PIT2, &state), "KVM_GET_PIT2");
    return state;
}

void Vm::set_pit2(const kvm_pit_state2& state) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_PIT2, &state), "KVM_SET_PIT2");
}

kvm_clock_data Vm::get_clock() const {
    kvm_clock_data clock{};
    check_syscall(::ioctl(fd_.get(), KVM_GET_CLOCK, &clock), "KVM_GET_CLOCK");
    return clock;
}

void Vm::set_clock(const kvm_clock_data& clock) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_CLOCK, &clock), "KVM_SET_CLOCK");
}

void Vm::irq_line(std::uint32_t irq, bool level) {
    kvm_irq_level line{};
    line.irq = irq;
    line.level = level ? 1 : 0;
    check_syscall(::ioctl(fd_.get(), KVM_IRQ_LINE, &line), "KVM_IRQ_LINE");
}

std::uint32_t Vm::get_tsc_khz() const {
    return static_cast<std::uint32_t>(check_syscall(::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0), "KVM_GET_TSC_KHZ"));
}

Vcpu Vm::create_vcpu(unsigned index) const {
    const int fd = check_syscall(::ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(index)),
                                 "KVM_CREATE_VCPU");
    UniqueFd owned(fd);
    VcpuRunPage page(owned.get(), vcpu_mmap_size_);
    return Vcpu(std::move(owned), std::move(page), index);
}

}  // namespace colo::kvm
