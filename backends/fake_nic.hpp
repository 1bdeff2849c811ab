// A NIC with no device model behind it, for unit tests of the network device (FakeBackend owns
// them). "The guest" is the test: guest_transmit sends as the guest would, received() is what
// the guest got, in order. "The host network" is the test too: host_receive is a frame from the
// TAP, sent_to_host() what went out of it.
//
// As a real NIC's receive backlog is device state, what the guest received is state here:
// FakeBackend::save_state carries received() and restore_state puts it back.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "backends/guest_nic.hpp"

namespace colo {

class FakeNic final : public GuestNic {
public:
    using Frame = std::vector<std::byte>;
    FakeNic(VifConfig config, bool attached) : config_(std::move(config)), attached_(attached) {}

    [[nodiscard]] const VifConfig& config() const override { return config_; }
    [[nodiscard]] std::string host_name() const override;
    void set_transmit_sink(FrameSink sink) override;
    void set_host_receive_sink(FrameSink sink) override;
    void deliver_to_guest(std::span<const std::byte> frame) override;
    void transmit_to_host(std::span<const std::byte> frame) override;
    [[nodiscard]] bool attached() const override;
    void attach_host() override;
    void detach_host() override;

    // --- the test, as guest and as host network
    void guest_transmit(std::span<const std::byte> frame);
    void host_receive(std::span<const std::byte> frame);
    [[nodiscard]] std::vector<Frame> received() const;
    [[nodiscard]] std::vector<Frame> sent_to_host() const;
    // What the guest had received, as a restore_state of the backend puts it back.
    void set_received(std::vector<Frame> frames);
    [[nodiscard]] unsigned attaches() const;

private:
    VifConfig config_;
    mutable std::mutex mutex_;  // the frames and the attached flag
    std::mutex sink_mutex_;     // held while a sink runs, so that replacing one waits for it
    FrameSink transmit_sink_;
    FrameSink receive_sink_;
    bool attached_;
    unsigned attaches_ = 0;
    std::vector<Frame> received_;
    std::vector<Frame> to_host_;
};

}  // namespace colo
