#include "toolstack/replication/net_device.hpp"

#include <algorithm>
#include <variant>

#include "backends/error.hpp"
#include "toolstack/network/announce.hpp"
#include "toolstack/network/frame_compare.hpp"
#include "toolstack/protocol/record_types.hpp"

namespace colo::net_device {

namespace {

// A piece of a NetCheckpoint stays well below kMaxNetCheckpointBytes.
constexpr std::size_t kCheckpointPieceBytes = protocol::kMaxNetCheckpointBytes - 64 * 1024;

template <typename T>
bool is_for(const protocol::Message& message, std::uint32_t nic) {
    const auto* m = std::get_if<T>(&message);
    return m != nullptr && m->nic == nic;
}

}  // namespace

std::unique_ptr<EgressCompare> make_egress_compare(ProtectionMode mode) {
    if (mode != ProtectionMode::colo) return nullptr;
    return std::make_unique<network::FrameCompare>();
}

void ReleasedSet::add(std::uint64_t index) {
    if (index <= through) return;
    beyond.insert(index);
    // Keep the watermark as high as the set allows, so the lists on the wire stay short.
    while (!beyond.empty() && *beyond.begin() == through + 1) {
        ++through;
        beyond.erase(beyond.begin());
    }
}

void ReleasedSet::merge(std::uint64_t new_through, std::span<const std::uint64_t> new_beyond) {
    if (new_through > through) {
        through = new_through;
        std::erase_if(beyond, [&](std::uint64_t i) { return i <= through; });
    }
    for (const std::uint64_t index : new_beyond) add(index);
    add(through);  // folds the set onto a raised watermark
}

// --- primary half

Primary::Primary(GuestNic& nic, std::uint32_t index, std::unique_ptr<EgressCompare> compare,
                 std::function<void()> wake)
    : nic_(nic), index_(index), compare_(std::move(compare)), wake_(std::move(wake)) {
    nic_.set_host_receive_sink([this](std::span<const std::byte> frame) { host_frame(frame); });
    nic_.set_transmit_sink([this](std::span<const std::byte> frame) { guest_frame(frame); });
}

Primary::~Primary() {
    try {
        nic_.set_transmit_sink({});
        nic_.set_host_receive_sink({});
    } catch (...) {
        // A destructor never throws; the NIC is a wire again or going away with its backend.
    }
}

bool Primary::owns(const protocol::Message& message) const { return is_for<protocol::NetEgress>(message, index_); }

void Primary::give_to_guest_locked(std::span<const std::byte> frame) {
    if (mode_) {
        const std::uint64_t index = ingress_next_++;
        to_mirror_.push_back(protocol::NetIngress{index_, index, Frame(frame.begin(), frame.end())});
        ++stats_.ingress_frames;
        // COLO's SVM must get the frame as soon as the PVM: its answer is what releases the PVM's.
        if (wake_) wake_();
    }
    nic_.deliver_to_guest(frame);
}

void Primary::host_frame(std::span<const std::byte> frame) {
    std::lock_guard lock(mutex_);
    if (quiesced_) {
        // The PVM's state is being saved: a frame given now would be in it or not by chance.
        waiting_.emplace_back(frame.begin(), frame.end());
        return;
    }
    give_to_guest_locked(frame);
}

void Primary::flush_waiting_locked() {
    while (!waiting_.empty()) {
        give_to_guest_locked(waiting_.front());
        waiting_.pop_front();
    }
}

void Primary::guest_frame(std::span<const std::byte> frame) {
    std::lock_guard lock(mutex_);
    if (!mode_) {
        nic_.transmit_to_host(frame);
        return;
    }
    const std::uint64_t index = egress_next_++;
    held_.emplace(index, Frame(frame.begin(), frame.end()));
    ++stats_.egress_frames;
    if (*mode_ != ProtectionMode::colo) return;
    // A frame of the new epoch while a checkpoint is in flight: compared once the SVM runs from
    // the checkpoint (its frames until then belong to the state being replaced).
    if (in_flight_) {
        uncompared_.push_back(index);
    } else {
        compare_->pvm_frame(index, frame, Clock::now());
        if (wake_) wake_();  // it may have matched: releases go out on the pipeline thread
    }
}

void Primary::release_locked(std::uint64_t index) {
    const auto it = held_.find(index);
    if (it == held_.end()) return;
    nic_.transmit_to_host(it->second);
    held_.erase(it);
    released_.add(index);
    ++stats_.released_frames;
    report_due_ = true;
}

void Primary::quiesce() {
    std::lock_guard lock(mutex_);
    quiesced_ = true;
}

void Primary::setup(ProtectionMode mode, const DeviceSend& send) {
    std::lock_guard lock(mutex_);
    if (mode == ProtectionMode::colo && !compare_) throw Error(name() + ": COLO needs a frame compare engine");
    // The PVM is paused (final pause): what it was given so far is in the state the secondary
    // got. Count from here.
    mode_ = mode;
    ingress_next_ = 1;
    egress_next_ = 1;
    released_ = {};
    svm_matched_ = {};
    svm_epoch_begins_ = false;
    held_.clear();
    to_mirror_.clear();
    uncompared_.clear();
    compare_wants_ = false;
    if (compare_) compare_->reset();
    // Entering protection is checkpoint 0: it covers nothing held, and until the secondary has
    // it (and its SVM runs) the PVM's frames wait to be compared.
    capture_ = Capture{0, 1, {}};
    in_flight_ = true;
    send(protocol::NetReleased{index_, 0, {}, 0, {}});
    report_due_ = false;
}

void Primary::postsuspend() {
    std::lock_guard lock(mutex_);
    if (!mode_) return;
    quiesced_ = true;
    Capture capture{ingress_next_ - 1, egress_next_, {}};
    for (const auto& [index, frame] : held_) capture.held.push_back(protocol::HeldFrame{index, frame});
    capture_ = std::move(capture);
    in_flight_ = true;
}

std::uint32_t Primary::send_checkpoint(const DeviceSend& send) {
    std::unique_lock lock(mutex_);
    if (!capture_) throw Error(name() + " device: checkpoint sent without postsuspend");
    const Capture capture = *capture_;
    lock.unlock();
    const auto total = static_cast<std::uint32_t>(capture.held.size());
    std::uint32_t records = 0;
    std::size_t next = 0;
    do {
        protocol::NetCheckpoint piece{index_, capture.ingress_through, capture.egress_end, total, {}};
        std::size_t bytes = 0;
        while (next < capture.held.size() && bytes + capture.held[next].frame.size() + 12 <= kCheckpointPieceBytes) {
            bytes += capture.held[next].frame.size() + 12;
            piece.held.push_back(capture.held[next++]);
        }
        send(piece);
        ++records;
    } while (next < capture.held.size());
    return records;
}

void Primary::preresume() {
    std::lock_guard lock(mutex_);
    quiesced_ = false;
    flush_waiting_locked();
}

void Primary::commit() {
    std::lock_guard lock(mutex_);
    if (!mode_) return;
    if (!capture_) throw Error(name() + " device: commit without a captured checkpoint");
    // The secondary has the checkpoint: what it held may go, since a survivor would send it too.
    for (const auto& held : capture_->held) release_locked(held.index);
    capture_.reset();
    in_flight_ = false;
    if (*mode_ == ProtectionMode::colo) {
        compare_->reset();
        compare_wants_ = false;
        svm_epoch_begins_ = true;
        const auto now = Clock::now();
        for (const std::uint64_t index : uncompared_) {
            if (const auto it = held_.find(index); it != held_.end()) compare_->pvm_frame(index, it->second, now);
        }
        uncompared_.clear();
    }
}

void Primary::abort() noexcept {
    std::lock_guard lock(mutex_);
    capture_.reset();
    in_flight_ = false;
}

void Primary::receive(const protocol::Message& message) {
    const auto& egress = std::get<protocol::NetEgress>(message);
    std::lock_guard lock(mutex_);
    // Remus: the SVM does not run. While a checkpoint is in flight the SVM's frames come from the
    // state being replaced.
    if (mode_ != ProtectionMode::colo || in_flight_) return;
    if (svm_epoch_begins_) {
        // Indices below it belong to the state the checkpoint replaced: none can be sent any more,
        // so they count as settled and the report stays as short as its open frames.
        svm_epoch_begins_ = false;
        svm_matched_.merge(egress.index - 1, {});
    }
    compare_->svm_frame(egress.index, egress.frame, Clock::now());
}

void Primary::poll(const DeviceSend& send) {
    std::deque<protocol::NetIngress> mirror;
    std::optional<protocol::NetReleased> report;
    {
        std::lock_guard lock(mutex_);
        if (mode_ == ProtectionMode::colo && !in_flight_) {
            auto matched = compare_->take_matched();
            for (const std::uint64_t index : matched.pvm) release_locked(index);
            for (const std::uint64_t index : matched.svm) svm_matched_.add(index);
            if (!matched.svm.empty()) report_due_ = true;
            if (!compare_wants_) {
                if (std::string why = compare_->needs_checkpoint(Clock::now()); !why.empty()) {
                    compare_wants_ = true;
                    ++stats_.compare_checkpoints;
                    stats_.last_compare_reason = std::move(why);
                }
            }
        }
        if (report_due_) {
            report = protocol::NetReleased{index_, released_.through, {released_.beyond.begin(), released_.beyond.end()},
                                           svm_matched_.through,
                                           {svm_matched_.beyond.begin(), svm_matched_.beyond.end()}};
            report_due_ = false;
        }
        mirror.swap(to_mirror_);
    }
    // The release report first: whatever the survivor reads last, it knows what went out.
    if (report) send(*report);
    for (const auto& frame : mirror) send(frame);
}

bool Primary::wants_checkpoint() const {
    std::lock_guard lock(mutex_);
    if (!mode_ || in_flight_) return false;
    return compare_wants_ || held_.size() >= kHeldFramesForCheckpoint;
}

void Primary::teardown() noexcept {
    std::lock_guard lock(mutex_);
    // The PVM runs alone: nothing is held any more, and the NIC is a wire again.
    try {
        std::vector<std::uint64_t> indices;
        for (const auto& entry : held_) indices.push_back(entry.first);
        for (const std::uint64_t index : indices) release_locked(index);
        quiesced_ = false;
        mode_.reset();
        flush_waiting_locked();
    } catch (...) {
        // A frame that cannot reach the TAP is lost as on a wire.
    }
    held_.clear();
    waiting_.clear();
    to_mirror_.clear();
    capture_.reset();
    uncompared_.clear();
    in_flight_ = false;
    quiesced_ = false;
    mode_.reset();
}

NetStats Primary::stats() const {
    std::lock_guard lock(mutex_);
    NetStats out = stats_;
    out.held_frames = held_.size();
    return out;
}

// --- secondary half

Secondary::Secondary(GuestNic& nic, std::uint32_t index, ProtectionMode mode, std::function<void()> wake)
    : nic_(nic), index_(index), mode_(mode), wake_(std::move(wake)) {
    nic_.set_transmit_sink([this](std::span<const std::byte> frame) { svm_frame(frame); });
    nic_.set_host_receive_sink([this](std::span<const std::byte> frame) { host_frame(frame); });
}

Secondary::~Secondary() {
    try {
        nic_.set_transmit_sink({});
        nic_.set_host_receive_sink({});
    } catch (...) {
        // A destructor never throws.
    }
}

bool Secondary::owns(const protocol::Message& message) const {
    return is_for<protocol::NetIngress>(message, index_) || is_for<protocol::NetReleased>(message, index_) ||
           is_for<protocol::NetCheckpoint>(message, index_);
}

void Secondary::svm_frame(std::span<const std::byte> frame) {
    std::lock_guard lock(mutex_);
    Frame copy(frame.begin(), frame.end());
    tcp_rewriter_.svm_sent(copy, active_);
    if (active_) {
        nic_.transmit_to_host(copy);
        return;
    }
    // Remus: the SVM does not run between checkpoints; colo: its frames are compared on the
    // primary (in the SVM's own sequence space: the compare translates them itself), and the
    // survivor may have to send those nobody released.
    if (!colo_running_) return;
    const std::uint64_t index = svm_next_++;
    to_forward_.push_back(protocol::NetEgress{index_, index, copy});
    svm_unmatched_.emplace(index, std::move(copy));
    if (wake_) wake_();
}

void Secondary::deliver_locked(std::span<const std::byte> frame) {
    Frame copy(frame.begin(), frame.end());
    tcp_rewriter_.for_svm(copy);
    nic_.deliver_to_guest(copy);
}

void Secondary::host_frame(std::span<const std::byte> frame) {
    std::lock_guard lock(mutex_);
    // Only a NIC that took over has a TAP; its frames are the guest's own now.
    if (active_) deliver_locked(frame);
}

void Secondary::give_kept_locked() {
    for (const auto& frame : kept_) {
        if (frame.index <= given_through_) continue;
        deliver_locked(frame.frame);
        given_through_ = frame.index;
    }
}

void Secondary::setup() {
    std::lock_guard lock(mutex_);
    // The SVM is the PVM at its final pause: ingress from index 1 is new to it.
    colo_running_ = mode_ == ProtectionMode::colo;
    if (colo_running_) give_kept_locked();
}

void Secondary::receive(const protocol::Message& message) {
    std::lock_guard lock(mutex_);
    if (const auto* ingress = std::get_if<protocol::NetIngress>(&message)) {
        if (ingress->index <= committed_through_) return;
        if (!kept_.empty() && ingress->index <= kept_.back().index) {
            throw Error("secondary: " + name() + " ingress frame " + std::to_string(ingress->index) + " after " +
                        std::to_string(kept_.back().index) + " (out of order)");
        }
        kept_.push_back(*ingress);
        if (kept_.size() > kMaxKeptIngressFrames) kept_.pop_front();
        if (colo_running_) give_kept_locked();
        return;
    }
    if (const auto* released = std::get_if<protocol::NetReleased>(&message)) {
        primary_released_.merge(released->pvm_through, released->pvm_beyond);
        svm_matched_.merge(released->svm_through, released->svm_beyond);
        std::erase_if(svm_unmatched_, [&](const auto& entry) { return svm_matched_.contains(entry.first); });
        return;
    }
    throw Error(std::string("secondary: ") + name() + ": " + protocol::message_name(message) + " outside a checkpoint");
}

void Secondary::begin() { staged_ = Staged{}; }

void Secondary::stage(const protocol::Message& message) {
    if (!std::holds_alternative<protocol::NetCheckpoint>(message)) {
        receive(message);  // ingress and release reports are not part of the checkpoint
        return;
    }
    if (!staged_) throw Error("secondary: net-checkpoint outside a checkpoint");
    const auto& piece = std::get<protocol::NetCheckpoint>(message);
    if (!staged_->ingress_through) {
        staged_->ingress_through = piece.ingress_through;
        staged_->egress_end = piece.egress_end;
        staged_->held_total = piece.held_total;
    } else if (piece.ingress_through != *staged_->ingress_through || piece.egress_end != staged_->egress_end ||
               piece.held_total != staged_->held_total) {
        throw Error("secondary: " + name() + " net-checkpoint pieces disagree on their counts");
    }
    if (!piece.held.empty() && !staged_->held.empty() && piece.held.front().index <= staged_->held.back().index) {
        throw Error("secondary: " + name() + " net-checkpoint held frame " + std::to_string(piece.held.front().index) +
                    " does not follow " + std::to_string(staged_->held.back().index));
    }
    if (staged_->held.size() + piece.held.size() > staged_->held_total) {
        throw Error("secondary: " + name() + " net-checkpoint brings more held frames than its total " +
                    std::to_string(staged_->held_total));
    }
    staged_->held.insert(staged_->held.end(), piece.held.begin(), piece.held.end());
}

void Secondary::verify() {
    if (!staged_ || !staged_->ingress_through) {
        throw Error("secondary: checkpoint without net-checkpoint for " + name());
    }
    if (staged_->held.size() != staged_->held_total) {
        throw Error("secondary: " + name() + " net-checkpoint brought " + std::to_string(staged_->held.size()) +
                    " held frames, its pieces say " + std::to_string(staged_->held_total));
    }
    std::lock_guard lock(mutex_);
    if (*staged_->ingress_through < committed_through_) {
        throw Error("secondary: " + name() + " checkpoint covers ingress up to " +
                    std::to_string(*staged_->ingress_through) + ", the last one covered " +
                    std::to_string(committed_through_));
    }
}

void Secondary::commit() {
    verify();
    std::lock_guard lock(mutex_);
    committed_through_ = *staged_->ingress_through;
    while (!kept_.empty() && kept_.front().index <= committed_through_) kept_.pop_front();
    held_ = std::move(staged_->held);
    staged_.reset();
    // The SVM's state is the PVM's at the pause: it has had ingress up to committed_through_,
    // and what it transmitted before is the PVM's business (released, or held above).
    given_through_ = committed_through_;
    to_forward_.clear();
    svm_unmatched_.clear();
    tcp_rewriter_.reset();
    if (colo_running_) give_kept_locked();
}

void Secondary::abort() noexcept { staged_.reset(); }

void Secondary::poll(const DeviceSend& send) {
    std::deque<protocol::NetEgress> forward;
    {
        std::lock_guard lock(mutex_);
        forward.swap(to_forward_);
    }
    for (const auto& frame : forward) send(frame);
}

void Secondary::take_over() {
    nic_.attach_host();
    std::lock_guard lock(mutex_);
    staged_.reset();
    // First tell the network where the guest is now (bridges learn the MAC's new port), then send.
    for (const auto& frame : network::announce_frames(nic_.config().mac, nic_.config().ip)) {
        nic_.transmit_to_host(frame);
        ++report_.announcements;
    }
    // What the dead primary held at the last checkpoint and had not released, in its order...
    for (const auto& held : held_) {
        if (primary_released_.contains(held.index)) continue;
        nic_.transmit_to_host(held.frame);
        ++report_.held_sent;
    }
    held_.clear();
    // ...then (colo) what the SVM transmitted since that no released PVM frame stood for.
    for (auto& [index, frame] : svm_unmatched_) {
        tcp_rewriter_.svm_sent(frame, true);
        nic_.transmit_to_host(frame);
        ++report_.svm_sent;
    }
    svm_unmatched_.clear();
    to_forward_.clear();
    // The guest gets the ingress its state has not had (remus: all since the checkpoint).
    const std::uint64_t before = given_through_;
    give_kept_locked();
    report_.ingress_replayed = given_through_ - before;
    kept_.clear();
    colo_running_ = false;
    active_ = true;
    report_.tcp_translated = tcp_rewriter_.translated();
}

Secondary::TakeoverReport Secondary::takeover_report() const {
    std::lock_guard lock(mutex_);
    return report_;
}

}  // namespace colo::net_device
