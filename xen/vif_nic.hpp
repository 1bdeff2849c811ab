// A Xen domain's vif as a GuestNic (backends/guest_nic.hpp), so the pipeline's network device
// (toolstack/replication/net_device.hpp) holds a Xen guest's output exactly as a KVM guest's:
// in Remus mode each frame the guest sends waits until the checkpoint that produced it is
// acknowledged (the "Remus network buffering" xl remus does with a plug qdisc, which Debian's xl
// is built without).
//
// Netback's dom0 interface for the domain's vif N, vifD.N, is taken out of the bridge its hotplug
// script put it in and joined, in a bridge of its own (cvD.N), to an inner TAP that this NIC
// reads and writes. The kernel therefore hands over whole Ethernet frames: netfront offloads
// checksums and segmentation, and the bridge completes both on the way into the TAP, which offers
// neither (a packet socket on the vif would see half-made frames). The host side is an outer TAP
// (the config's vifname, or one the kernel names) in the guest's bridge: the config's bridge=, or
// else the one the vif was found in. Unprotected the two TAPs are a wire.
//
// An incoming guest's NIC starts detached (its outer TAP not open), so a secondary never answers
// for the guest; attach_host at takeover. On destruction the vif goes back into the bridge it
// came from, so a guest that colo-replicate lets go of is wired as xl made it.
//
// Threading: as GuestNic. The sinks run on the TAP ports' reader threads.
#pragma once

#include <mutex>
#include <string>

#include "backends/guest_nic.hpp"
#include "backends/tap_port.hpp"

namespace colo::xen {

class XenVifNic final : public GuestNic {
public:
    // Throws colo::Error when the domain has no such vif, colo::SystemError when the bridge or a
    // TAP cannot be made (then everything it changed is undone).
    XenVifNic(std::uint32_t domain, unsigned index, VifConfig config, bool attach);
    ~XenVifNic() override;
    XenVifNic(const XenVifNic&) = delete;
    XenVifNic& operator=(const XenVifNic&) = delete;

    [[nodiscard]] const VifConfig& config() const override { return config_; }
    [[nodiscard]] std::string host_name() const override { return outer_.name(); }
    void set_transmit_sink(FrameSink sink) override;
    void set_host_receive_sink(FrameSink sink) override;
    void deliver_to_guest(std::span<const std::byte> frame) override { inner_.write(frame); }
    void transmit_to_host(std::span<const std::byte> frame) override { outer_.write(frame); }
    [[nodiscard]] bool attached() const override { return outer_.attached(); }
    void attach_host() override { outer_.attach(config_.vifname, bridge_); }
    void detach_host() override { outer_.detach(); }

    [[nodiscard]] const std::string& vif() const noexcept { return vif_; }
    [[nodiscard]] const std::string& private_bridge() const noexcept { return private_bridge_; }

private:
    void from_guest(std::span<const std::byte> frame);
    void from_host(std::span<const std::byte> frame);
    void restore_vif() noexcept;

    VifConfig config_;
    std::string vif_;             // netback's interface, vifD.N
    std::string private_bridge_;  // cvD.N: the vif and the inner TAP
    std::string found_in_;        // the bridge the vif was in when we took it ("" when none)
    std::string bridge_;          // the outer TAP's bridge
    std::mutex sink_mutex_;       // held while a sink runs: replacing one waits for it
    FrameSink transmit_sink_;
    FrameSink receive_sink_;
    TapPort inner_;  // after the sinks: its reader calls them
    TapPort outer_;
};

}  // namespace colo::xen
