// The StateRecords KvmBackend::save_state produces (colo::StateRecord, backends/backend.hpp):
// every tag, its version and its body, in the order they are written.
//
//   tag          what                       body (version 1 unless said)
//   0x00000001   machine                    {u32 vcpus, u32 tsc_khz, u64 ram_bytes}
//   per vCPU i, tag 0x01000000 | i << 8 | part, parts in this order (Firecracker's order,
//   arch/x86_64/vcpu.rs: MP state first, since setting it resets pending events; LAPIC before
//   MSRs, since the TSC-deadline MSR needs the LAPIC mode; events last, since setting the other
//   state may clear them):
//     part 1     MP state                   struct kvm_mp_state
//     part 2     regs                       struct kvm_regs
//     part 3     sregs                      struct kvm_sregs
//     part 4     XSAVE                      KVM_GET_XSAVE2 area (the vCPU's XSAVE size)
//     part 5     XCRs                       struct kvm_xcrs
//     part 6     debug registers            struct kvm_debugregs
//     part 7     LAPIC                      struct kvm_lapic_state
//     part 8     MSRs                       {u32 count, u32 0, count x {u32 index, u32 0, u64 value}}
//     part 9     vCPU events                struct kvm_vcpu_events
//   0x02000001   PIC master                 struct kvm_irqchip (chip_id 0)
//   0x02000002   PIC slave                  struct kvm_irqchip (chip_id 1)
//   0x02000003   IOAPIC                     struct kvm_irqchip (chip_id 2)
//   0x02000004   PIT                        struct kvm_pit_state2
//   0x02000005   KVM clock                  struct kvm_clock_data (restored with flags 0: the
//                                           guest's clock continues from the saved value, no jump)
//   0x03000001   UART (COM1)                Uart8250::save_state, version Uart8250::kStateVersion
//   0x04000000+N virtio-net NIC N (vif N)   VirtioNet::save_state, version VirtioNet::kStateVersion:
//                                           {u64 driver features, u32 device/driver features
//                                           select, queue select, status, interrupt status,
//                                           config generation; per queue (rx, tx) {u16 size,
//                                           next avail, next used, ready; u64 desc, driver,
//                                           device}; u32 n; n x {u32 length, frame}} (the
//                                           frames waiting for a receive buffer)
//   0x05000000+N virtio-blk disk N (disk N)   VirtioBlk::save_state, version VirtioBlk::kStateVersion:
//                                           {u64 driver features, u32 device/driver features
//                                           select, queue select, status, interrupt status,
//                                           config generation; the request queue {u16 size,
//                                           next avail, next used, ready; u64 desc, driver,
//                                           device}} (requests are served whole, so none is in
//                                           flight; the image itself is not in the state)
//
// KVM structs are stored as the kernel lays them out (x86-64 ABI, which the stream header's
// backend/arch fields pin). A restore rejects unknown or duplicate tags, other versions, wrong
// sizes and missing records before it touches the VM.
#pragma once

#include <cstdint>
#include <string>

namespace colo::kvm::state_tags {

inline constexpr std::uint32_t kMachine = 0x00000001;

enum class VcpuPart : std::uint32_t {
    mp_state = 1,
    regs = 2,
    sregs = 3,
    xsave = 4,
    xcrs = 5,
    debugregs = 6,
    lapic = 7,
    msrs = 8,
    events = 9,
};
inline constexpr std::uint32_t kVcpuPartCount = 9;
inline constexpr std::uint32_t kVcpuBase = 0x01000000;
[[nodiscard]] constexpr std::uint32_t vcpu_tag(unsigned index, VcpuPart part) {
    return kVcpuBase | (std::uint32_t{index} << 8) | static_cast<std::uint32_t>(part);
}

inline constexpr std::uint32_t kPicMaster = 0x02000001;
inline constexpr std::uint32_t kPicSlave = 0x02000002;
inline constexpr std::uint32_t kIoapic = 0x02000003;
inline constexpr std::uint32_t kPit = 0x02000004;
inline constexpr std::uint32_t kClock = 0x02000005;
inline constexpr std::uint32_t kUart = 0x03000001;
inline constexpr std::uint32_t kVirtioNetBase = 0x04000000;
[[nodiscard]] constexpr std::uint32_t virtio_net_tag(unsigned index) { return kVirtioNetBase + index; }
inline constexpr std::uint32_t kVirtioBlkBase = 0x05000000;
[[nodiscard]] constexpr std::uint32_t virtio_blk_tag(unsigned index) { return kVirtioBlkBase + index; }

inline constexpr std::uint32_t kVersion = 1;

// "vcpu0 sregs (tag 0x01000003)", "PIT (tag 0x02000004)", "unknown (tag 0x...)".
[[nodiscard]] std::string describe(std::uint32_t tag);

}  // namespace colo::kvm::state_tags
