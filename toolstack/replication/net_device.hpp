// A guest NIC as a checkpoint device (checkpoint_device.hpp): one per vif, on both sides.
//
// Primary half (net_device::Primary) sits between the PVM's NIC and its TAP (GuestNic sinks):
//   ingress  every frame from the host network gets the next ingress index when it is given to
//            the PVM, and goes to the secondary in order (NetIngress). While the PVM is paused
//            for a checkpoint (quiesce .. preresume) arriving frames wait here, so the index a
//            checkpoint records is exactly what the PVM had been given.
//   egress   every frame the PVM transmits gets the next egress index and is held:
//              remus  until the checkpoint that covers it is acknowledged (commit);
//              colo   until the SVM transmitted the same (EgressCompare: per connection,
//                     payload over sequence ranges for TCP), or a checkpoint covering it commits;
//                     a mismatch, a timeout or a full queue asks for a checkpoint, never a drop.
//            Every release is reported at once (NetReleased), before any other message.
//   checkpoint  NetCheckpoint{ingress through, egress end, the frames held at the pause}: a
//            survivor sends exactly the held frames the primary had not released.
// Secondary half (net_device::Secondary) owns the SVM's NIC, detached (no TAP) until takeover:
//   keeps every ingress frame the last committed checkpoint does not cover, gives them to the
//   SVM (colo: as they come, and again after each checkpoint replaced its state; remus: at
//   takeover); colo: forwards the SVM's frames (NetEgress) and keeps those not yet matched.
//   take_over: attach the TAP, announce the guest's MAC, send the held frames the primary had
//   not released (and, colo, the SVM's own frames nobody released), then act as a plain NIC.
//   colo: TCP connections the SVM opened or accepted since the last checkpoint have its own
//   sequence numbers; ingress is translated into them, and after take_over its egress out of
//   them (network::TcpSequenceRewriter), for as long as those connections live.
//
// Threading: the NIC's sinks (a vCPU thread, the TAP reader) and the pipeline thread's hooks meet
// under one mutex per half. Frames are handed to the NIC (deliver_to_guest, transmit_to_host)
// with that mutex held, so indices and order agree; a NIC never calls a sink from inside those.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backends/guest_nic.hpp"
#include "toolstack/network/tcp_sequence_rewriter.hpp"
#include "toolstack/replication/checkpoint_device.hpp"

namespace colo::net_device {

using Frame = std::vector<std::byte>;
using Clock = std::chrono::steady_clock;

// Past this many held PVM frames the primary asks for a checkpoint (it never drops one).
inline constexpr std::size_t kHeldFramesForCheckpoint = 2048;
// The secondary keeps at most this many ingress frames a checkpoint does not cover yet; past it
// the oldest go (as a full NIC ring would drop them: the sender retransmits).
inline constexpr std::size_t kMaxKeptIngressFrames = 65536;

// COLO: which PVM frames the SVM's output vouches for (toolstack/network/frame_compare.hpp).
class EgressCompare {
public:
    virtual ~EgressCompare() = default;
    virtual void pvm_frame(std::uint64_t index, std::span<const std::byte> frame, Clock::time_point now) = 0;
    virtual void svm_frame(std::uint64_t index, std::span<const std::byte> frame, Clock::time_point now) = 0;
    struct Matched {
        std::vector<std::uint64_t> pvm;  // may go now
        std::vector<std::uint64_t> svm;  // SVM frames those stand for
    };
    [[nodiscard]] virtual Matched take_matched() = 0;
    // Why a checkpoint is needed now (a mismatch, a frame unmatched too long, a full queue), or "".
    [[nodiscard]] virtual std::string needs_checkpoint(Clock::time_point now) = 0;
    // The SVM runs from the PVM's state: forget both sides' frames and connection offsets.
    virtual void reset() = 0;
};

// The COLO engine for a protection mode (nullptr for remus, whose SVM does not run).
[[nodiscard]] std::unique_ptr<EgressCompare> make_egress_compare(ProtectionMode mode);

// Released frame indices: everything up to `through`, and `beyond`.
struct ReleasedSet {
    std::uint64_t through = 0;
    std::set<std::uint64_t> beyond;
    void add(std::uint64_t index);
    [[nodiscard]] bool contains(std::uint64_t index) const { return index <= through || beyond.contains(index); }
    void merge(std::uint64_t through, std::span<const std::uint64_t> beyond);
    bool operator==(const ReleasedSet&) const = default;
};

struct NetStats {
    std::uint64_t ingress_frames = 0;   // primary: given to the PVM while protected
    std::uint64_t egress_frames = 0;    // primary: transmitted by the PVM while protected
    std::uint64_t released_frames = 0;  // primary: of those, released
    std::uint64_t held_frames = 0;      // primary: held now
    std::uint64_t compare_checkpoints = 0;  // colo: checkpoints the compare asked for
    std::string last_compare_reason;
};

class Primary final : public PrimaryDevice {
public:
    // `compare`: the COLO engine (not used in remus). Installs the NIC's sinks; until setup the
    // NIC works as a wire through them.
    // `wake`: called (from the NIC's threads) when the pipeline thread has a frame to mirror or a
    // comparison that may release frames: Channel::wake.
    Primary(GuestNic& nic, std::uint32_t index, std::unique_ptr<EgressCompare> compare,
            std::function<void()> wake = {});
    ~Primary() override;
    Primary(const Primary&) = delete;
    Primary& operator=(const Primary&) = delete;

    [[nodiscard]] std::string name() const override { return "nic" + std::to_string(index_); }
    [[nodiscard]] bool owns(const protocol::Message& message) const override;
    void quiesce() override;
    void setup(ProtectionMode mode, const DeviceSend& send) override;
    void postsuspend() override;
    std::uint32_t send_checkpoint(const DeviceSend& send) override;
    void preresume() override;
    void commit() override;
    void abort() noexcept override;
    void receive(const protocol::Message& message) override;
    void poll(const DeviceSend& send) override;
    [[nodiscard]] bool wants_checkpoint() const override;
    void teardown() noexcept override;

    [[nodiscard]] NetStats stats() const;

private:
    struct Capture {
        std::uint64_t ingress_through = 0;
        std::uint64_t egress_end = 0;
        std::vector<protocol::HeldFrame> held;
    };
    void host_frame(std::span<const std::byte> frame);
    void guest_frame(std::span<const std::byte> frame);
    void give_to_guest_locked(std::span<const std::byte> frame);
    void release_locked(std::uint64_t index);
    void flush_waiting_locked();

    GuestNic& nic_;
    const std::uint32_t index_;
    std::unique_ptr<EgressCompare> compare_;
    const std::function<void()> wake_;

    mutable std::mutex mutex_;
    std::optional<ProtectionMode> mode_;  // empty: a wire (before setup, after teardown)
    bool quiesced_ = false;
    std::deque<Frame> waiting_;             // host frames that came while quiesced
    std::uint64_t ingress_next_ = 1;
    std::deque<protocol::NetIngress> to_mirror_;
    std::uint64_t egress_next_ = 1;
    std::map<std::uint64_t, Frame> held_;   // transmitted, not released
    ReleasedSet released_;
    ReleasedSet svm_matched_;
    // colo: the first SVM frame after a commit; those before it the secondary dropped at its commit
    // (the ones in flight were never compared), so they leave no holes in svm_matched_.
    bool svm_epoch_begins_ = false;
    bool report_due_ = false;
    std::optional<Capture> capture_;         // from postsuspend to commit/abort
    bool in_flight_ = false;                 // colo: SVM frames are of the epoch being replaced
    std::vector<std::uint64_t> uncompared_;  // colo: PVM frames of the new epoch, fed after commit
    bool compare_wants_ = false;
    NetStats stats_;
};

class Secondary final : public SecondaryDevice {
public:
    // Installs the SVM NIC's sinks. The NIC is detached until take_over.
    // `wake`: called when an SVM frame waits to be forwarded (Channel::wake).
    Secondary(GuestNic& nic, std::uint32_t index, ProtectionMode mode, std::function<void()> wake = {});
    ~Secondary() override;
    Secondary(const Secondary&) = delete;
    Secondary& operator=(const Secondary&) = delete;

    [[nodiscard]] std::string name() const override { return "nic" + std::to_string(index_); }
    [[nodiscard]] bool owns(const protocol::Message& message) const override;
    void setup() override;
    void receive(const protocol::Message& message) override;
    void begin() override;
    void stage(const protocol::Message& message) override;
    void verify() override;
    void commit() override;
    void abort() noexcept override;
    void poll(const DeviceSend& send) override;
    void take_over() override;

    // What take_over sent for the dead primary (tests, logs).
    struct TakeoverReport {
        std::uint64_t held_sent = 0;  // PVM frames of the last checkpoint the primary had not released
        std::uint64_t svm_sent = 0;   // colo: SVM frames nobody released
        std::uint64_t ingress_replayed = 0;
        std::uint64_t announcements = 0;
        std::uint64_t tcp_translated = 0;  // colo: connections whose sequence numbers the survivor translates
    };
    [[nodiscard]] TakeoverReport takeover_report() const;

private:
    struct Staged {
        std::optional<std::uint64_t> ingress_through;
        std::uint64_t egress_end = 0;
        std::uint32_t held_total = 0;
        std::vector<protocol::HeldFrame> held;
    };
    void svm_frame(std::span<const std::byte> frame);
    void host_frame(std::span<const std::byte> frame);
    void deliver_locked(std::span<const std::byte> frame);  // to the SVM, translated
    void give_kept_locked();

    GuestNic& nic_;
    const std::uint32_t index_;
    const ProtectionMode mode_;
    const std::function<void()> wake_;

    mutable std::mutex mutex_;
    bool colo_running_ = false;  // the SVM runs and gets ingress as it comes (colo, setup .. take_over)
    bool active_ = false;        // took over: a plain NIC
    std::deque<protocol::NetIngress> kept_;  // ingress above committed_through_
    std::uint64_t committed_through_ = 0;    // ingress the SVM's checkpoint state has had
    std::uint64_t given_through_ = 0;        // ingress given to the SVM as it runs now
    std::vector<protocol::HeldFrame> held_;  // PVM frames the last checkpoint held
    ReleasedSet primary_released_;
    ReleasedSet svm_matched_;
    std::uint64_t svm_next_ = 1;
    std::deque<protocol::NetEgress> to_forward_;
    std::map<std::uint64_t, Frame> svm_unmatched_;  // colo: forwarded, not known matched
    network::TcpSequenceRewriter tcp_rewriter_;     // colo: the SVM's own TCP sequence numbers
    std::optional<Staged> staged_;
    TakeoverReport report_;
};

}  // namespace colo::net_device
