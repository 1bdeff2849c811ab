// The COLO compare of one TCP connection's egress (one direction: from the guest), by payload over
// sequence ranges, as QEMU's colo-compare does, so two VMs that cut the same byte stream into
// different segments, or acknowledge it at different moments, still agree.
//
// Sequence numbers: the SVM chose its own initial sequence number for a connection it opened or
// accepted since the last checkpoint, so its segments are first translated into the PVM's space
// by the difference of the two SYNs' sequence numbers (the secondary's TcpSequenceRewriter does
// the same for the SVM's traffic, and after a takeover). Before the SYNs, and after a checkpoint
// (the SVM's sockets are the PVM's then), the difference is 0.
//
// A PVM segment may go out, in order, once the SVM stands behind all of it:
//   payload   the SVM sent the same bytes over the same (translated) range, or the range was
//             released already (a retransmission);
//   SYN       the SVM sent a SYN with the same SYN/ACK flags (and, with ACK, the same ack number);
//   FIN       the SVM sent its FIN at the same position;
//   RST       the SVM sent an RST;
//   ACK       the SVM acknowledged at least as much (the client's bytes it acks are in the
//             survivor too: acks are in the client's space, which both VMs share).
// The window, options (timestamps, SACK) and checksums are not compared. Different bytes over
// an overlapping range, a SYN or FIN that disagrees, are a mismatch: a checkpoint. An SVM segment
// counts as released (the survivor need not send it) once released PVM segments cover its range
// and its ack.
//
// Not thread-safe; FrameCompare owns one per flow.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "toolstack/network/ethernet_frame.hpp"

namespace colo::network {

class TcpStreamCompare {
public:
    using Clock = std::chrono::steady_clock;
    struct Segment {
        std::uint64_t index = 0;
        TcpSegment tcp;
        std::vector<std::byte> payload;
        Clock::time_point since{};
    };

    void pvm(Segment segment);
    void svm(Segment segment);
    // Moves what may go now into `pvm_released` / `svm_covered` (frame indices, in order).
    // Returns why the two VMs disagree, or "".
    [[nodiscard]] std::string match(std::vector<std::uint64_t>& pvm_released, std::vector<std::uint64_t>& svm_covered);

    [[nodiscard]] std::size_t pvm_waiting() const { return pvm_.size(); }
    [[nodiscard]] std::size_t svm_waiting() const { return svm_.size(); }
    [[nodiscard]] const Segment* oldest_pvm() const { return pvm_.empty() ? nullptr : &pvm_.front(); }
    // The SVM's sequence numbers minus the PVM's for this connection (0 if not known yet).
    [[nodiscard]] std::uint32_t svm_offset() const;

private:
    // Byte ranges of the SVM's stream by position (sequence numbers unwrapped around the first one
    // seen), kept merged; what was released is dropped.
    class Ranges {
    public:
        enum class Cover { all, part, differ };
        void insert(std::int64_t at, std::span<const std::byte> bytes);
        [[nodiscard]] Cover compare(std::int64_t at, std::span<const std::byte> bytes) const;
        [[nodiscard]] std::optional<std::int64_t> end() const;
        void drop_below(std::int64_t at);

    private:
        std::map<std::int64_t, std::vector<std::byte>> ranges_;
    };
    [[nodiscard]] std::int64_t position(std::uint32_t seq);
    [[nodiscard]] bool translatable() const;
    void absorb_svm();
    // "" with `ready` false: wait; "" with true: go; else a mismatch.
    [[nodiscard]] std::string check_pvm(const Segment& p, bool& ready);
    [[nodiscard]] bool covered(const Segment& s);

    std::deque<Segment> pvm_, svm_;
    std::size_t svm_absorbed_ = 0;          // svm_[0, svm_absorbed_) are in the state below
    std::optional<std::uint32_t> anchor_;   // position 0
    std::optional<std::uint32_t> pvm_isn_, svm_isn_;
    std::uint8_t svm_syn_flags_ = 0;
    std::uint32_t svm_syn_ack_ = 0;
    Ranges svm_bytes_;
    std::optional<std::int64_t> svm_fin_;
    bool svm_rst_ = false;
    std::optional<std::uint32_t> svm_max_ack_;
    std::optional<std::int64_t> released_end_;
    std::optional<std::uint32_t> released_ack_;
    bool released_rst_ = false;
};

}  // namespace colo::network
