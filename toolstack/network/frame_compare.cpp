#include "toolstack/network/frame_compare.hpp"

#include <utility>

namespace colo::network {

void FrameCompare::pvm_frame(std::uint64_t index, std::span<const std::byte> frame, Clock::time_point now) {
    this->frame(true, index, frame, now);
}

void FrameCompare::svm_frame(std::uint64_t index, std::span<const std::byte> frame, Clock::time_point now) {
    this->frame(false, index, frame, now);
}

void FrameCompare::frame(bool pvm, std::uint64_t index, std::span<const std::byte> frame, Clock::time_point now) {
    FrameKey key = frame_key(frame);
    if (key.tcp) {
        TcpStreamCompare& connection = connections_[key.flow];
        TcpStreamCompare::Segment segment{index, std::move(*key.tcp), std::move(key.compared), now};
        if (pvm) connection.pvm(std::move(segment));
        else connection.svm(std::move(segment));
        std::string why = connection.match(matched_.pvm, matched_.svm);
        if (!why.empty()) note_mismatch(key.flow, std::move(why));
        return;
    }
    Flow& flow = flows_[key.flow];
    (pvm ? flow.pvm : flow.svm).push_back(Waiting{index, std::move(key.compared), now});
    ++(pvm ? pvm_waiting_ : svm_waiting_);
    match(key.flow, flow);
}

void FrameCompare::note_mismatch(const std::string& name, std::string why) {
    if (mismatch_.empty()) mismatch_ = name + ": " + why;
}

void FrameCompare::match(const std::string& name, Flow& flow) {
    while (!flow.pvm.empty() && !flow.svm.empty()) {
        if (flow.pvm.front().compared != flow.svm.front().compared) {
            // Both stay: the checkpoint this asks for replaces the SVM's state (reset()).
            note_mismatch(name, "PVM frame " + std::to_string(flow.pvm.front().index) + " and SVM frame " +
                                    std::to_string(flow.svm.front().index) + " differ");
            return;
        }
        matched_.pvm.push_back(flow.pvm.front().index);
        matched_.svm.push_back(flow.svm.front().index);
        flow.pvm.pop_front();
        flow.svm.pop_front();
        --pvm_waiting_;
        --svm_waiting_;
    }
}

net_device::EgressCompare::Matched FrameCompare::take_matched() { return std::exchange(matched_, {}); }

std::string FrameCompare::needs_checkpoint(Clock::time_point now) {
    if (!mismatch_.empty()) return mismatch_;
    std::size_t pvm_waiting = pvm_waiting_, svm_waiting = svm_waiting_;
    for (const auto& [name, connection] : connections_) {
        pvm_waiting += connection.pvm_waiting();
        svm_waiting += connection.svm_waiting();
    }
    if (pvm_waiting > options_.max_queued || svm_waiting > options_.max_queued) {
        return std::to_string(pvm_waiting) + " PVM and " + std::to_string(svm_waiting) +
               " SVM frames wait to be compared (at most " + std::to_string(options_.max_queued) + ")";
    }
    const auto late = [&](const std::string& name, std::uint64_t index, Clock::time_point since) -> std::string {
        if (now - since <= options_.timeout) return {};
        return name + ": PVM frame " + std::to_string(index) + " unmatched for more than " +
               std::to_string(options_.timeout.count()) + " ms";
    };
    for (const auto& [name, flow] : flows_) {
        if (flow.pvm.empty()) continue;
        if (std::string why = late(name, flow.pvm.front().index, flow.pvm.front().since); !why.empty()) return why;
    }
    for (const auto& [name, connection] : connections_) {
        const auto* oldest = connection.oldest_pvm();
        if (!oldest) continue;
        if (std::string why = late(name, oldest->index, oldest->since); !why.empty()) return why;
    }
    return {};
}

void FrameCompare::reset() {
    flows_.clear();
    connections_.clear();
    matched_ = {};
    mismatch_.clear();
    pvm_waiting_ = svm_waiting_ = 0;
}

}  // namespace colo::network
