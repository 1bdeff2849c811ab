#include "kvm/platform_state.hpp"

#include "backends/error.hpp"
#include "kvm/state_record_bytes.hpp"
#include "kvm/state_tags.hpp"
#include "kvm/vm.hpp"

namespace colo::kvm {

namespace {
constexpr std::uint32_t kPicMasterChip = KVM_IRQCHIP_PIC_MASTER;
constexpr std::uint32_t kPicSlaveChip = KVM_IRQCHIP_PIC_SLAVE;
constexpr std::uint32_t kIoapicChip = KVM_IRQCHIP_IOAPIC;
}  // namespace

std::vector<StateRecord> save_platform_state(const Vm& vm) {
    std::vector<StateRecord> records;
    records.push_back(record_of(state_tags::kPicMaster, vm.get_irqchip(kPicMasterChip)));
    records.push_back(record_of(state_tags::kPicSlave, vm.get_irqchip(kPicSlaveChip)));
    records.push_back(record_of(state_tags::kIoapic, vm.get_irqchip(kIoapicChip)));
    records.push_back(record_of(state_tags::kPit, vm.get_pit2()));
    records.push_back(record_of(state_tags::kClock, vm.get_clock()));
    return records;
}

void check_platform_record(const StateRecord& record) {
    switch (record.tag) {
        case state_tags::kPicMaster:
        case state_tags::kPicSlave:
        case state_tags::kIoapic: {
            const auto chip = body_as<kvm_irqchip>(record);
            const std::uint32_t expected = record.tag == state_tags::kPicMaster  ? kPicMasterChip
                                           : record.tag == state_tags::kPicSlave ? kPicSlaveChip
                                                                                 : kIoapicChip;
            if (chip.chip_id != expected) {
                throw Error("KVM state: " + state_tags::describe(record.tag) + " holds irqchip " +
                            std::to_string(chip.chip_id));
            }
            return;
        }
        case state_tags::kPit: check_record_shape(record, sizeof(kvm_pit_state2)); return;
        case state_tags::kClock: check_record_shape(record, sizeof(kvm_clock_data)); return;
        default: throw Error("KVM state: " + state_tags::describe(record.tag) + " is not a platform record");
    }
}

void restore_platform_state(Vm& vm, std::span<const StateRecord* const> records) {
    for (const StateRecord* record : records) {
        switch (record->tag) {
            case state_tags::kPicMaster:
            case state_tags::kPicSlave:
            case state_tags::kIoapic: vm.set_irqchip(body_as<kvm_irqchip>(*record)); break;
            case state_tags::kPit: vm.set_pit2(body_as<kvm_pit_state2>(*record)); break;
            case state_tags::kClock: {
                // Only the clock value: with KVM_CLOCK_REALTIME set KVM would advance it by the
                // wall time since the save, a jump the guest would see.
                auto clock = body_as<kvm_clock_data>(*record);
                clock.flags = 0;
                vm.set_clock(clock);
                break;
            }
            default: throw Error("KVM state: " + state_tags::describe(record->tag) + " is not a platform record");
        }
    }
}

}  // namespace colo::kvm
