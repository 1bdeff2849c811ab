#include "toolstack/network/tcp_sequence_rewriter.hpp"

#include <algorithm>

#include "toolstack/network/ethernet_frame.hpp"

namespace colo::network {

namespace {

constexpr std::size_t kSeqField = 4, kAckField = 8, kChecksumField = 16, kFixedHeader = 20;
constexpr unsigned kOptionEnd = 0, kOptionNop = 1, kOptionSack = 5;

// SACK blocks (RFC 2018) name the receiver's view of our sequence numbers, like the ack field.
void shift_sack_blocks(std::span<std::byte> frame, const TcpSegment& tcp, std::uint32_t offset) {
    const std::size_t checksum = tcp.header + kChecksumField;
    std::size_t at = tcp.header + kFixedHeader;
    const std::size_t end = tcp.header + tcp.header_size;
    while (at < end) {
        const unsigned kind = std::to_integer<unsigned>(frame[at]);
        if (kind == kOptionEnd) return;
        if (kind == kOptionNop) {
            ++at;
            continue;
        }
        if (at + 1 >= end) return;
        const std::size_t length = std::to_integer<std::size_t>(frame[at + 1]);
        if (length < 2 || at + length > end) return;  // a malformed option list: leave the rest
        if (kind == kOptionSack) {
            for (std::size_t block = at + 2; block + 4 <= at + length; block += 4) {
                rewrite_be32(frame, block, read_be32(frame, block) + offset, checksum);
            }
        }
        at += length;
    }
}

}  // namespace

void TcpSequenceRewriter::svm_sent(std::span<std::byte> frame, bool to_pvm_space) {
    const FrameKey key = frame_key(frame);
    if (!key.tcp) return;
    const TcpSegment& tcp = *key.tcp;
    if (tcp.flags & tcp_flag::syn) {
        auto& connection = connections_[key.flow];
        if (connection.svm_isn != tcp.seq) connection = Connection{tcp.seq, std::nullopt};
    }
    if (!to_pvm_space) return;
    const auto it = connections_.find(key.flow);
    if (it == connections_.end() || !it->second.offset) return;
    rewrite_be32(frame, tcp.header + kSeqField, tcp.seq - *it->second.offset, tcp.header + kChecksumField);
}

void TcpSequenceRewriter::for_svm(std::span<std::byte> frame) {
    const FrameKey key = frame_key(frame);
    if (!key.tcp) return;
    const TcpSegment& tcp = *key.tcp;
    const auto it = connections_.find(tcp.reverse_flow);
    if (it == connections_.end()) return;
    if ((tcp.flags & tcp_flag::syn) && !(tcp.flags & tcp_flag::ack)) {
        connections_.erase(it);  // the peer starts a new connection on these ports
        return;
    }
    if (!(tcp.flags & tcp_flag::ack)) return;
    Connection& connection = it->second;
    // The first acknowledgement after the SVM's SYN acknowledges the PVM's SYN: PVM ISN + 1.
    if (!connection.offset) connection.offset = connection.svm_isn + 1 - tcp.ack;
    const std::uint32_t offset = *connection.offset;
    if (offset == 0) return;
    rewrite_be32(frame, tcp.header + kAckField, tcp.ack + offset, tcp.header + kChecksumField);
    shift_sack_blocks(frame, tcp, offset);
}

std::size_t TcpSequenceRewriter::translated() const {
    return static_cast<std::size_t>(std::count_if(connections_.begin(), connections_.end(), [](const auto& entry) {
        return entry.second.offset && *entry.second.offset != 0;
    }));
}

}  // namespace colo::network
