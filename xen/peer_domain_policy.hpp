// What a receiver takes from the primary's libxl domain configuration when it builds the SVM's
// domain (incoming_domain.hpp). The primary is authenticated (TLS) but is still another host: its
// configuration may not make this host attach anything of its own to the guest. A disk names a
// file or device of this dom0, PCI and USB pass host hardware through, a bootloader runs a program
// here on a disk the peer named, and a device model override picks a binary. So a configuration
// with any of them is refused; what stays is the domain's shape (type, memory, vCPUs, the kernel
// and ramdisk at the paths named, which the receiver reads as `xl migrate`'s receiving side does,
// and the command line). NICs stay with their guest side only (the caller drops the peer's
// hotplug script, bridge and the like, so this host's own defaults apply); one served by another
// driver domain is counted in `nics` and refused.
#pragma once

#include <string>

namespace colo::xen {

struct PeerDomainShape {
    int disks = 0, pci = 0, usb = 0, vtpms = 0, p9s = 0, channels = 0;
    int nics = 0;      // NICs whose backend is another driver domain
    int displays = 0;  // vfb, vkb, vdispl, vsnd
    int other = 0;     // reserved memory regions, device tree nodes, PV calls
    bool bootloader = false;
    bool device_model = false;  // a device model binary named
};

// Empty when the receiver may build the domain; otherwise one line: what the configuration names
// and that a receiver attaches none of it.
[[nodiscard]] std::string refuse_peer_domain(const PeerDomainShape& shape);

}  // namespace colo::xen
