// Host network interfaces as ip(8) and brctl(8) handle them, through ioctls on a socket: up,
// bridges made and removed, ports added and released, a port's bridge looked up in sysfs. Each
// failure is a colo::SystemError naming the ioctl and the interfaces ("SIOCBRADDIF vif5.0 to
// bridge xenbr0: No such device").
#pragma once

#include <optional>
#include <string>

namespace colo::net_link {

[[nodiscard]] bool exists(const std::string& name);
void set_up(const std::string& name);
// Made, then up (IPv6 off first: a bridge of our own must not chatter into the guest's network).
void create_bridge(const std::string& bridge);
// /proc/sys/net/ipv6/conf/NAME/disable_ipv6 = 1; nothing when IPv6 is absent. Never throws.
void disable_ipv6(const std::string& name) noexcept;
// Down, then deleted. Never throws: it runs in destructors (a failure is written to stderr).
void delete_bridge(const std::string& bridge) noexcept;
void add_to_bridge(const std::string& bridge, const std::string& port);
void remove_from_bridge(const std::string& bridge, const std::string& port);
// The bridge `port` is enslaved to, if any (/sys/class/net/PORT/master).
[[nodiscard]] std::optional<std::string> bridge_of(const std::string& port);

}  // namespace colo::net_link
