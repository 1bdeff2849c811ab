// A guest's network interface as the pipeline sees it: frames in, frames out, whatever the
// hypervisor's device model is (KVM: our virtio-net, kvm/devices/virtio_net.hpp). The host side is
// a TAP device (backends/tap_device.hpp) that the NIC owns.
//
// Unprotected, a NIC is a wire: frames the guest transmits go out its TAP, frames read from the
// TAP go to the guest. A checkpoint device (toolstack/replication/net_device.hpp) puts itself in
// between by installing sinks: then the guest's frames go to the transmit sink (to be held or
// compared) and the TAP's frames to the host-receive sink (to be numbered and mirrored), and it
// moves frames on itself with deliver_to_guest and transmit_to_host.
//
// Frames are Ethernet frames without FCS or virtio-net header, at most kMaxFrameBytes.
//
// Threading: the sinks are called from threads the backend owns (a vCPU thread for transmit, the
// NIC's TAP reader for host receive) and must not block long. A sink may call deliver_to_guest and
// transmit_to_host (the NIC must not hold a lock those take while it calls a sink), and replacing
// a sink waits until no call of the old one runs (so its owner may go away after). deliver_to_guest and
// transmit_to_host may be called from any thread. A NIC never writes guest memory while its
// backend is paused: a frame delivered then waits in the NIC's receive backlog, which save_state
// carries with the rest of the device's state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "backends/guest_config.hpp"

namespace colo {

inline constexpr std::size_t kMaxFrameBytes = 1514;  // MTU 1500 + Ethernet header, no VLAN tag

using FrameSink = std::function<void(std::span<const std::byte> frame)>;

class GuestNic {
public:
    virtual ~GuestNic() = default;

    [[nodiscard]] virtual const VifConfig& config() const = 0;
    // The host interface's name (the TAP), or "" while detached.
    [[nodiscard]] virtual std::string host_name() const = 0;

    // Frames the guest transmits go to `sink` instead of the TAP; an empty sink restores the wire.
    virtual void set_transmit_sink(FrameSink sink) = 0;
    // Frames read from the TAP go to `sink` instead of the guest; an empty sink restores the wire.
    virtual void set_host_receive_sink(FrameSink sink) = 0;

    // Gives the guest one frame (it waits in the receive backlog while the guest is paused or has
    // posted no buffer; a full backlog drops the oldest frame, as a full NIC ring would).
    virtual void deliver_to_guest(std::span<const std::byte> frame) = 0;
    // Sends one frame out of the TAP. Dropped while detached.
    virtual void transmit_to_host(std::span<const std::byte> frame) = 0;

    // An incoming guest's NIC starts detached (no TAP: the PVM's NIC owns the network), so that a
    // secondary never answers for the guest. attach_host opens the TAP (and joins the bridge):
    // at takeover, or when a migration commits. Throws colo::SystemError when the TAP cannot be
    // made; it retries for a moment while the name is still taken (a dead primary's TAP on the
    // same host goes away as the kernel closes its files).
    [[nodiscard]] virtual bool attached() const = 0;
    virtual void attach_host() = 0;
    // Closes the TAP (frames from the guest are dropped, none come from the host): a migration
    // source gives the network up once its guest has paused for the last time, so that the
    // destination, maybe on the same host, can make the TAP of the same name. Idempotent.
    virtual void detach_host() = 0;
};

}  // namespace colo
