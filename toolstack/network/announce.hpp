// The frames a survivor sends when it takes a guest over, so that switches and neighbours learn
// at once where the guest's MAC (and address) now is, as QEMU's announce_self and Xen's
// libxl do after a migration: a gratuitous ARP request for the guest's IPv4 address when the vif
// names one, and a RARP announce (QEMU's format) in any case, which every bridge learns from.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <vector>

#include "backends/guest_config.hpp"

namespace colo::network {

[[nodiscard]] std::vector<std::vector<std::byte>> announce_frames(const MacAddress& mac, const std::optional<Ipv4Cidr>& ip);

}  // namespace colo::network
