// The frames a survivor sends when it takes a guest over, so that switches and neighbours learn
// at once where the guest's MAC (and address) now is, as QEMU's announce_self and Xen's
// libxl do after a migration: a gratuitous ARP request for the guest's IPv4 address when the vif
// names one, an unsolicited IPv6 neighbour advertisement (RFC 4861 7.2.6: to all nodes, Override
// set) for the link-local address a guest forms from its MAC (EUI-64, RFC 4291), which IPv6
// neighbours that cache it update, and a RARP announce (QEMU's format) in any case, which every
// bridge learns from.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <vector>

#include "backends/guest_config.hpp"

namespace colo::network {

[[nodiscard]] std::vector<std::vector<std::byte>> announce_frames(const MacAddress& mac, const std::optional<Ipv4Cidr>& ip);

}  // namespace colo::network
