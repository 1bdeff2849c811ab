#include "xen/peer_domain_policy.hpp"

#include <vector>

namespace colo::xen {

namespace {

void count(std::vector<std::string>& named, int n, const char* one, const char* many) {
    if (n > 0) named.push_back(std::to_string(n) + " " + (n == 1 ? one : many));
}

}  // namespace

std::string refuse_peer_domain(const PeerDomainShape& shape) {
    std::vector<std::string> named;
    count(named, shape.disks, "disk", "disks");
    count(named, shape.nics, "NIC", "NICs");
    count(named, shape.pci, "PCI device", "PCI devices");
    count(named, shape.usb, "USB device or controller", "USB devices or controllers");
    count(named, shape.vtpms, "vTPM", "vTPMs");
    count(named, shape.p9s, "9p share", "9p shares");
    count(named, shape.channels, "channel", "channels");
    count(named, shape.displays, "display or input device", "display or input devices");
    count(named, shape.other, "other host resource", "other host resources");
    if (shape.bootloader) named.emplace_back("a bootloader");
    if (shape.device_model) named.emplace_back("a device model binary");
    if (named.empty()) return {};
    std::string list;
    for (std::size_t i = 0; i < named.size(); ++i) list += (i == 0 ? "" : i + 1 == named.size() ? " and " : ", ") + named[i];
    return "the primary's domain configuration names " + list +
           "; a receiver attaches nothing of this host that a peer names (colo-replicate(7), Trust)";
}

}  // namespace colo::xen
