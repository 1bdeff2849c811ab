#include "kvm/state_tags.hpp"

#include <cstdio>

namespace colo::kvm::state_tags {

std::string describe(std::uint32_t tag) {
    static const char* const kParts[] = {"?", "MP state", "regs", "sregs", "XSAVE", "XCRs",
                                         "debug registers", "LAPIC", "MSRs", "vCPU events"};
    std::string name;
    const std::uint32_t part = tag & 0xff;
    if ((tag & 0xffffff00) == kVirtioNetBase) {
        name = "virtio-net " + std::to_string(tag & 0xff);
    } else if ((tag & 0xffffff00) == kVirtioBlkBase) {
        name = "virtio-blk " + std::to_string(tag & 0xff);
    } else if ((tag & 0xff000000) == kVcpuBase && (tag & 0x00ff0000) == 0 && part >= 1 && part <= kVcpuPartCount) {
        name = "vcpu" + std::to_string((tag >> 8) & 0xff) + " " + kParts[part];
    } else {
        switch (tag) {
            case kMachine: name = "machine"; break;
            case kPicMaster: name = "PIC master"; break;
            case kPicSlave: name = "PIC slave"; break;
            case kIoapic: name = "IOAPIC"; break;
            case kPit: name = "PIT"; break;
            case kClock: name = "KVM clock"; break;
            case kUart: name = "UART"; break;
            default: name = "unknown record"; break;
        }
    }
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08x", tag);
    return name + " (tag 0x" + hex + ")";
}

}  // namespace colo::kvm::state_tags
