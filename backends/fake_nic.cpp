#include "backends/fake_nic.hpp"

#include "backends/error.hpp"

namespace colo {

std::string FakeNic::host_name() const {
    std::lock_guard lock(mutex_);
    return attached_ ? "faketap" : "";
}

void FakeNic::set_transmit_sink(FrameSink sink) {
    std::lock_guard lock(sink_mutex_);
    transmit_sink_ = std::move(sink);
}

void FakeNic::set_host_receive_sink(FrameSink sink) {
    std::lock_guard lock(sink_mutex_);
    receive_sink_ = std::move(sink);
}

void FakeNic::deliver_to_guest(std::span<const std::byte> frame) {
    std::lock_guard lock(mutex_);
    received_.emplace_back(frame.begin(), frame.end());
}

void FakeNic::transmit_to_host(std::span<const std::byte> frame) {
    std::lock_guard lock(mutex_);
    if (attached_) to_host_.emplace_back(frame.begin(), frame.end());
}

bool FakeNic::attached() const {
    std::lock_guard lock(mutex_);
    return attached_;
}

void FakeNic::attach_host() {
    std::lock_guard lock(mutex_);
    attached_ = true;
    ++attaches_;
}

void FakeNic::detach_host() {
    std::lock_guard lock(mutex_);
    attached_ = false;
}

void FakeNic::guest_transmit(std::span<const std::byte> frame) {
    std::lock_guard lock(sink_mutex_);
    if (transmit_sink_) transmit_sink_(frame);
    else transmit_to_host(frame);
}

void FakeNic::host_receive(std::span<const std::byte> frame) {
    std::lock_guard lock(sink_mutex_);
    if (!attached()) throw Error("fake nic: a detached NIC has no host network");
    if (receive_sink_) receive_sink_(frame);
    else deliver_to_guest(frame);
}

std::vector<FakeNic::Frame> FakeNic::received() const {
    std::lock_guard lock(mutex_);
    return received_;
}

std::vector<FakeNic::Frame> FakeNic::sent_to_host() const {
    std::lock_guard lock(mutex_);
    return to_host_;
}

void FakeNic::set_received(std::vector<Frame> frames) {
    std::lock_guard lock(mutex_);
    received_ = std::move(frames);
}

unsigned FakeNic::attaches() const {
    std::lock_guard lock(mutex_);
    return attaches_;
}

}  // namespace colo
