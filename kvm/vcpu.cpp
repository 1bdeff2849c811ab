#include "kvm/vcpu.hpp"

#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>

#include "backends/error.hpp"
#include "kvm/kvm_abi.hpp"

namespace colo::kvm {

namespace {
// kvm_msrs: {u32 nmsrs, u32 pad, kvm_msr_entry entries[]} in C layout (kvm/kvm_abi.hpp).
std::vector<std::byte> msrs_buffer(std::span<const MsrEntry> entries, bool with_data) {
    std::vector<std::byte> buffer(abi::kMsrsHeader + entries.size() * sizeof(kvm_msr_entry));
    const auto count = static_cast<std::uint32_t>(entries.size());
    std::memcpy(buffer.data(), &count, sizeof count);
    for (std::size_t i = 0; i < entries.size(); ++i) {
        kvm_msr_entry entry{};
        entry.index = entries[i].index;
        entry.data = with_data ? entries[i].data : 0;
        std::memcpy(buffer.data() + abi::kMsrsHeader + i * sizeof entry, &entry, sizeof entry);
    }
    return buffer;
}
}  // namespace

bool Vcpu::run() {
    if (::ioctl(fd_.get(), KVM_RUN, 0) == 0) return true;
    if (errno == EINTR || errno == EAGAIN) return false;
    throw SystemError("KVM_RUN", errno);
}

kvm_regs Vcpu::get_regs() const {
    kvm_regs regs{};
    check_syscall(::ioctl(fd_.get(), KVM_GET_REGS, &regs), "KVM_GET_REGS");
    return regs;
}

void Vcpu::set_regs(const kvm_regs& regs) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_REGS, &regs), "KVM_SET_REGS");
}

kvm_sregs Vcpu::get_sregs() const {
    kvm_sregs sregs{};
    check_syscall(::ioctl(fd_.get(), KVM_GET_SREGS, &sregs), "KVM_GET_SREGS");
    return sregs;
}

void Vcpu::set_sregs(const kvm_sregs& sregs) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
}

kvm_mp_state Vcpu::get_mp_state() const {
    kvm_mp_state state{};
    check_syscall(::ioctl(fd_.get(), KVM_GET_MP_STATE, &state), "KVM_GET_MP_STATE");
    return state;
}

void Vcpu::set_mp_state(const kvm_mp_state& state) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_MP_STATE, &state), "KVM_SET_MP_STATE");
}

std::vector<std::byte> Vcpu::get_xsave(std::size_t size) const {
    std::vector<std::byte> area(std::max(size, abi::kXsaveLegacyBytes));
    if (area.size() > abi::kXsaveLegacyBytes) {
        check_syscall(::ioctl(fd_.get(), abi::kGetXsave2, area.data()), "KVM_GET_XSAVE2");
    } else {
        check_syscall(::ioctl(fd_.get(), abi::kGetXsave, area.data()), "KVM_GET_XSAVE");
    }
    return area;
}

void Vcpu::set_xsave(std::span<const std::byte> area) {
    if (area.size() < abi::kXsaveLegacyBytes) throw Error("KVM_SET_XSAVE: XSAVE area too short");
    // KVM_SET_XSAVE reads as many bytes as KVM_GET_XSAVE2 wrote (the vCPU's XSAVE size); the
    // ioctl's declared size is only the legacy 4 KiB.
    check_syscall(::ioctl(fd_.get(), abi::kSetXsave, area.data()), "KVM_SET_XSAVE");
}

kvm_xcrs Vcpu::get_xcrs() const {
    kvm_xcrs xcrs{};
    check_syscall(::ioctl(fd_.get(), KVM_GET_XCRS, &xcrs), "KVM_GET_XCRS");
    return xcrs;
}

void Vcpu::set_xcrs(const kvm_xcrs& xcrs) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_XCRS, &xcrs), "KVM_SET_XCRS");
}

kvm_debugregs Vcpu::get_debugregs() const {
    kvm_debugregs regs{};
    check_syscall(::ioctl(fd_.get(), KVM_GET_DEBUGREGS, &regs), "KVM_GET_DEBUGREGS");
    return regs;
}

void Vcpu::set_debugregs(const kvm_debugregs& regs) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_DEBUGREGS, &regs), "KVM_SET_DEBUGREGS");
}

kvm_lapic_state Vcpu::get_lapic() const {
    kvm_lapic_state lapic{};
    check_syscall(::ioctl(fd_.get(), KVM_GET_LAPIC, &lapic), "KVM_GET_LAPIC");
    return lapic;
}

void Vcpu::set_lapic(const kvm_lapic_state& lapic) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_LAPIC, &lapic), "KVM_SET_LAPIC");
}

std::size_t Vcpu::get_msrs(std::span<MsrEntry> entries) const {
    auto buffer = msrs_buffer(entries, false);
    const auto done =
        static_cast<std::size_t>(check_syscall(::ioctl(fd_.get(), abi::kGetMsrs, buffer.data()), "KVM_GET_MSRS"));
    for (std::size_t i = 0; i < done && i < entries.size(); ++i) {
        kvm_msr_entry entry;
        std::memcpy(&entry, buffer.data() + abi::kMsrsHeader + i * sizeof entry, sizeof entry);
        entries[i].data = entry.data;
    }
    return done;
}

std::size_t Vcpu::set_msrs(std::span<const MsrEntry> entries) {
    auto buffer = msrs_buffer(entries, true);
    return static_cast<std::size_t>(check_syscall(::ioctl(fd_.get(), abi::kSetMsrs, buffer.data()), "KVM_SET_MSRS"));
}

kvm_vcpu_events Vcpu::get_vcpu_events() const {
    kvm_vcpu_events events{};
    check_syscall(::ioctl(fd_.get(), KVM_GET_VCPU_EVENTS, &events), "KVM_GET_VCPU_EVENTS");
    return events;
}

void Vcpu::set_vcpu_events(const kvm_vcpu_events& events) {
    check_syscall(::ioctl(fd_.get(), KVM_SET_VCPU_EVENTS, &events), "KVM_SET_VCPU_EVENTS");
}

void Vcpu::set_cpuid2(const CpuidEntries& entries) {
    std::vector<std::byte> buffer(abi::kCpuid2Header + entries.size() * sizeof(kvm_cpuid_entry2));
    const auto count = static_cast<std::uint32_t>(entries.size());
    std::memcpy(buffer.data(), &count, sizeof count);
    std::memcpy(buffer.data() + abi::kCpuid2Header, entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
    check_syscall(::ioctl(fd_.get(), abi::kSetCpuid2, buffer.data()), "KVM_SET_CPUID2");
}

std::uint32_t Vcpu::get_tsc_khz() const {
    return static_cast<std::uint32_t>(check_syscall(::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0), "KVM_GET_TSC_KHZ"));
}

}  // namespace colo::kvm
