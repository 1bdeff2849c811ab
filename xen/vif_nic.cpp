#include "xen/vif_nic.hpp"

#include <cstdio>

#include "backends/error.hpp"
#include "backends/net_link.hpp"

namespace colo::xen {

XenVifNic::XenVifNic(std::uint32_t domain, unsigned index, VifConfig config, bool attach)
    : config_(std::move(config)),
      vif_("vif" + std::to_string(domain) + "." + std::to_string(index)),
      private_bridge_("cv" + std::to_string(domain) + "." + std::to_string(index)),
      inner_([this](std::span<const std::byte> frame) { from_guest(frame); }),
      outer_([this](std::span<const std::byte> frame) { from_host(frame); }) {
    if (!net_link::exists(vif_)) {
        throw Error("xen domain " + std::to_string(domain) + " has no vif " + std::to_string(index) + " (no interface " +
                    vif_ + " in dom0): its xl config must list as many vifs as its colo-replicate config");
    }
    found_in_ = net_link::bridge_of(vif_).value_or("");
    bridge_ = config_.bridge.empty() ? found_in_ : config_.bridge;
    try {
        if (!found_in_.empty()) net_link::remove_from_bridge(found_in_, vif_);
        // A bridge of this name left by a process that died holds nothing of ours: start afresh.
        if (net_link::exists(private_bridge_)) net_link::delete_bridge(private_bridge_);
        net_link::create_bridge(private_bridge_);
        inner_.attach("", private_bridge_);
        net_link::disable_ipv6(inner_.name());
        net_link::add_to_bridge(private_bridge_, vif_);
        net_link::set_up(vif_);
        if (attach) attach_host();
    } catch (...) {
        inner_.detach();
        restore_vif();
        throw;
    }
}

XenVifNic::~XenVifNic() {
    outer_.detach();
    inner_.detach();
    restore_vif();
}

void XenVifNic::restore_vif() noexcept {
    net_link::delete_bridge(private_bridge_);  // releases the vif
    if (found_in_.empty() || !net_link::exists(vif_)) return;  // the domain is gone: nothing to give back
    try {
        net_link::add_to_bridge(found_in_, vif_);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "colo-replicate: %s\n", e.what());
    }
}

void XenVifNic::set_transmit_sink(FrameSink sink) {
    std::lock_guard lock(sink_mutex_);
    transmit_sink_ = std::move(sink);
}

void XenVifNic::set_host_receive_sink(FrameSink sink) {
    std::lock_guard lock(sink_mutex_);
    receive_sink_ = std::move(sink);
}

void XenVifNic::from_guest(std::span<const std::byte> frame) {
    std::lock_guard lock(sink_mutex_);
    if (transmit_sink_) transmit_sink_(frame);
    else outer_.write(frame);
}

void XenVifNic::from_host(std::span<const std::byte> frame) {
    std::lock_guard lock(sink_mutex_);
    if (receive_sink_) receive_sink_(frame);
    else inner_.write(frame);
}

}  // namespace colo::xen
