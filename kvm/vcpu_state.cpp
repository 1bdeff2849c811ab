#include "kvm/vcpu_state.hpp"

#include <cstdio>
#include <cstring>
#include <string>

#include "backends/error.hpp"
#include "kvm/state_record_bytes.hpp"
#include "kvm/state_tags.hpp"
#include "kvm/vcpu.hpp"

namespace colo::kvm {

namespace {

using state_tags::VcpuPart;

constexpr std::size_t kMsrHeader = 8;
constexpr std::size_t kMsrEntry = 16;
constexpr std::uint32_t kMaxMsrs = 4096;

std::uint32_t tag(const Vcpu& vcpu, VcpuPart part) { return state_tags::vcpu_tag(vcpu.index(), part); }

StateRecord msr_record(const Vcpu& vcpu, std::span<const MsrEntry> entries) {
    StateRecord record{tag(vcpu, VcpuPart::msrs), state_tags::kVersion,
                       std::vector<std::byte>(kMsrHeader + entries.size() * kMsrEntry)};
    const auto count = static_cast<std::uint32_t>(entries.size());
    std::memcpy(record.data.data(), &count, 4);
    for (std::size_t i = 0; i < entries.size(); ++i) {
        std::byte* at = record.data.data() + kMsrHeader + i * kMsrEntry;
        std::memcpy(at, &entries[i].index, 4);
        std::memcpy(at + 8, &entries[i].data, 8);
    }
    return record;
}

std::vector<MsrEntry> msrs_of(const StateRecord& record) {
    std::uint32_t count = 0;
    std::memcpy(&count, record.data.data(), 4);
    std::vector<MsrEntry> entries(count);
    for (std::size_t i = 0; i < count; ++i) {
        const std::byte* at = record.data.data() + kMsrHeader + i * kMsrEntry;
        std::memcpy(&entries[i].index, at, 4);
        std::memcpy(&entries[i].data, at + 8, 8);
    }
    return entries;
}

std::string hex(std::uint32_t value) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%x", value);
    return text;
}

}  // namespace

std::vector<std::uint32_t> saveable_msrs(const Vcpu& vcpu, std::span<const std::uint32_t> listed) {
    std::vector<std::uint32_t> out;
    for (const std::uint32_t index : listed) {
        MsrEntry entry{index, 0};
        if (vcpu.get_msrs(std::span(&entry, 1)) == 1) out.push_back(index);
    }
    return out;
}

std::vector<StateRecord> save_vcpu_state(const Vcpu& vcpu, const VcpuStateShape& shape) {
    std::vector<StateRecord> records;
    records.push_back(record_of(tag(vcpu, VcpuPart::mp_state), vcpu.get_mp_state()));
    records.push_back(record_of(tag(vcpu, VcpuPart::regs), vcpu.get_regs()));
    records.push_back(record_of(tag(vcpu, VcpuPart::sregs), vcpu.get_sregs()));
    records.push_back(StateRecord{tag(vcpu, VcpuPart::xsave), state_tags::kVersion, vcpu.get_xsave(shape.xsave_bytes)});
    records.push_back(record_of(tag(vcpu, VcpuPart::xcrs), vcpu.get_xcrs()));
    records.push_back(record_of(tag(vcpu, VcpuPart::debugregs), vcpu.get_debugregs()));
    records.push_back(record_of(tag(vcpu, VcpuPart::lapic), vcpu.get_lapic()));
    std::vector<MsrEntry> msrs;
    for (const auto index : shape.msrs) msrs.push_back(MsrEntry{index, 0});
    const std::size_t read = vcpu.get_msrs(msrs);
    if (read != msrs.size()) {
        throw Error("vcpu" + std::to_string(vcpu.index()) + ": KVM_GET_MSRS stopped at MSR " + hex(msrs[read].index));
    }
    records.push_back(msr_record(vcpu, msrs));
    records.push_back(record_of(tag(vcpu, VcpuPart::events), vcpu.get_vcpu_events()));
    return records;
}

void check_vcpu_record(const StateRecord& record, std::uint32_t part, const VcpuStateShape& shape) {
    switch (static_cast<VcpuPart>(part)) {
        case VcpuPart::mp_state: check_record_shape(record, sizeof(kvm_mp_state)); return;
        case VcpuPart::regs: check_record_shape(record, sizeof(kvm_regs)); return;
        case VcpuPart::sregs: check_record_shape(record, sizeof(kvm_sregs)); return;
        case VcpuPart::xsave: check_record_shape(record, shape.xsave_bytes); return;
        case VcpuPart::xcrs: check_record_shape(record, sizeof(kvm_xcrs)); return;
        case VcpuPart::debugregs: check_record_shape(record, sizeof(kvm_debugregs)); return;
        case VcpuPart::lapic: check_record_shape(record, sizeof(kvm_lapic_state)); return;
        case VcpuPart::events: check_record_shape(record, sizeof(kvm_vcpu_events)); return;
        case VcpuPart::msrs: {
            if (record.data.size() < kMsrHeader) check_record_shape(record, kMsrHeader);
            std::uint32_t count = 0;
            std::memcpy(&count, record.data.data(), 4);
            if (count > kMaxMsrs) {
                throw Error("KVM state: " + state_tags::describe(record.tag) + " claims " + std::to_string(count) + " MSRs");
            }
            check_record_shape(record, kMsrHeader + std::size_t{count} * kMsrEntry);
            return;
        }
    }
    throw Error("KVM state: " + state_tags::describe(record.tag) + " is not a vCPU record");
}

void restore_vcpu_state(Vcpu& vcpu, std::span<const StateRecord* const> parts) {
    if (parts.size() != state_tags::kVcpuPartCount) throw Error("restore_vcpu_state: wrong number of parts");
    const auto part = [&](VcpuPart p) -> const StateRecord& { return *parts[static_cast<std::size_t>(p) - 1]; };
    vcpu.set_mp_state(body_as<kvm_mp_state>(part(VcpuPart::mp_state)));
    vcpu.set_regs(body_as<kvm_regs>(part(VcpuPart::regs)));
    vcpu.set_sregs(body_as<kvm_sregs>(part(VcpuPart::sregs)));
    vcpu.set_xsave(part(VcpuPart::xsave).data);
    vcpu.set_xcrs(body_as<kvm_xcrs>(part(VcpuPart::xcrs)));
    vcpu.set_debugregs(body_as<kvm_debugregs>(part(VcpuPart::debugregs)));
    vcpu.set_lapic(body_as<kvm_lapic_state>(part(VcpuPart::lapic)));
    const auto msrs = msrs_of(part(VcpuPart::msrs));
    const std::size_t written = vcpu.set_msrs(msrs);
    if (written != msrs.size()) {
        throw Error("vcpu" + std::to_string(vcpu.index()) + ": KVM_SET_MSRS refused MSR " + hex(msrs[written].index));
    }
    vcpu.set_vcpu_events(body_as<kvm_vcpu_events>(part(VcpuPart::events)));
}

}  // namespace colo::kvm
