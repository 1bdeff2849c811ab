#include "toolstack/network/frame_compare.hpp"

#include <utility>

namespace colo::network {

void FrameCompare::pvm_frame(std::uint64_t index, std::span<const std::byte> frame, Clock::time_point now) {
    FrameKey key = frame_key(frame);
    Flow& flow = flows_[key.flow];
    flow.pvm.push_back(Waiting{index, std::move(key.compared), now});
    ++pvm_waiting_;
    match(key.flow, flow);
}

void FrameCompare::svm_frame(std::uint64_t index, std::span<const std::byte> frame, Clock::time_point now) {
    FrameKey key = frame_key(frame);
    Flow& flow = flows_[key.flow];
    flow.svm.push_back(Waiting{index, std::move(key.compared), now});
    ++svm_waiting_;
    match(key.flow, flow);
}

void FrameCompare::match(const std::string& name, Flow& flow) {
    while (!flow.pvm.empty() && !flow.svm.empty()) {
        if (flow.pvm.front().compared != flow.svm.front().compared) {
            // Both stay: the checkpoint this asks for replaces the SVM's state (reset()).
            if (mismatch_.empty()) {
                mismatch_ = name + ": PVM frame " + std::to_string(flow.pvm.front().index) + " and SVM frame " +
                            std::to_string(flow.svm.front().index) + " differ";
            }
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
    if (pvm_waiting_ > options_.max_queued || svm_waiting_ > options_.max_queued) {
        return std::to_string(pvm_waiting_) + " PVM and " + std::to_string(svm_waiting_) +
               " SVM frames wait to be compared (at most " + std::to_string(options_.max_queued) + ")";
    }
    for (const auto& [name, flow] : flows_) {
        if (!flow.pvm.empty() && now - flow.pvm.front().since > options_.timeout) {
            return name + ": PVM frame " + std::to_string(flow.pvm.front().index) + " unmatched for more than " +
                   std::to_string(options_.timeout.count()) + " ms";
        }
    }
    return {};
}

void FrameCompare::reset() {
    flows_.clear();
    matched_ = {};
    mismatch_.clear();
    pvm_waiting_ = svm_waiting_ = 0;
}

}  // namespace colo::network
