// The COLO compare of PVM and SVM frames (net_device::EgressCompare), per flow
// (ethernet_frame.hpp): the n-th PVM frame of a flow matches the n-th SVM frame of that flow when
// their compared bytes are equal, and then the PVM frame may go out. Flows are independent: a
// quiet or differing flow holds back only its own frames.
//
// A checkpoint is asked for (never a drop) when the next frames of a flow differ, when a PVM frame
// has waited longer than `timeout` for its SVM twin, or when more than `max_queued` frames wait
// on one side.
//
// TCP is not matched frame by frame but by payload over sequence ranges, with the SVM's sequence
// numbers translated into the PVM's (tcp_stream_compare.hpp): two VMs that cut a stream into
// different segments, acknowledge it at different moments or chose different initial sequence
// numbers for a new connection still agree.
//
// Not thread-safe: net_device::Primary calls it under its own lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "toolstack/network/ethernet_frame.hpp"
#include "toolstack/network/tcp_stream_compare.hpp"
#include "toolstack/replication/net_device.hpp"

namespace colo::network {

struct CompareOptions {
    std::chrono::milliseconds timeout{300};
    std::size_t max_queued = 1024;
};

class FrameCompare final : public net_device::EgressCompare {
public:
    using Clock = net_device::Clock;
    explicit FrameCompare(CompareOptions options = {}) : options_(options) {}

    void pvm_frame(std::uint64_t index, std::span<const std::byte> frame, Clock::time_point now) override;
    void svm_frame(std::uint64_t index, std::span<const std::byte> frame, Clock::time_point now) override;
    [[nodiscard]] Matched take_matched() override;
    [[nodiscard]] std::string needs_checkpoint(Clock::time_point now) override;
    void reset() override;

private:
    struct Waiting {
        std::uint64_t index;
        std::vector<std::byte> compared;
        Clock::time_point since;
    };
    struct Flow {
        std::deque<Waiting> pvm, svm;
    };
    void match(const std::string& name, Flow& flow);
    void frame(bool pvm, std::uint64_t index, std::span<const std::byte> frame, Clock::time_point now);
    void note_mismatch(const std::string& name, std::string why);

    CompareOptions options_;
    std::map<std::string, Flow> flows_;
    std::map<std::string, TcpStreamCompare> connections_;
    Matched matched_;
    std::string mismatch_;
    std::size_t pvm_waiting_ = 0, svm_waiting_ = 0;  // in flows_
};

}  // namespace colo::network
