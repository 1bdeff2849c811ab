// The receiver's policy on the primary's libxl domain configuration: a domain's shape is taken,
// anything of this host it would attach (disks, NICs, passthrough, a bootloader) is refused.
#include <doctest/doctest.h>

#include "xen/peer_domain_policy.hpp"

using colo::xen::PeerDomainShape;
using colo::xen::refuse_peer_domain;

TEST_CASE("xen peer domain policy: a bare domain is built; every device class a peer names is refused by name") {
    CHECK(refuse_peer_domain(PeerDomainShape{}).empty());
    PeerDomainShape disk;
    disk.disks = 1;
    CHECK(refuse_peer_domain(disk) ==
          "the primary's domain configuration names 1 disk; a receiver attaches nothing of this host that a peer "
          "names (colo-replicate(7), Trust)");
    PeerDomainShape many;
    many.disks = 2;
    many.nics = 1;
    many.bootloader = true;
    CHECK(refuse_peer_domain(many).rfind("the primary's domain configuration names 2 disks, 1 NIC and a bootloader;", 0) == 0);
    const auto refused = [](auto set) {
        PeerDomainShape s;
        set(s);
        return !refuse_peer_domain(s).empty();
    };
    CHECK(refused([](PeerDomainShape& s) { s.pci = 1; }));
    CHECK(refused([](PeerDomainShape& s) { s.usb = 1; }));
    CHECK(refused([](PeerDomainShape& s) { s.vtpms = 1; }));
    CHECK(refused([](PeerDomainShape& s) { s.p9s = 1; }));
    CHECK(refused([](PeerDomainShape& s) { s.channels = 1; }));
    CHECK(refused([](PeerDomainShape& s) { s.displays = 1; }));
    CHECK(refused([](PeerDomainShape& s) { s.other = 1; }));
    CHECK(refused([](PeerDomainShape& s) { s.device_model = true; }));
}
