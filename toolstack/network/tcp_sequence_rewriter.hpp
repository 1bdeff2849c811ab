// The secondary's half of COLO's TCP sequence translation (QEMU's filter-rewriter): a connection
// the SVM accepted or opened since the last checkpoint has the SVM's own initial sequence number,
// while the client knows the PVM's (only the PVM's SYN went out). So the client's acknowledgements
// (and SACK blocks) are moved into the SVM's space on the way in, and after a takeover the SVM's
// sequence numbers are moved into the PVM's on the way out, for as long as those connections live.
//
// The difference is learnt without asking the primary: the SVM's SYN gives its initial sequence
// number, and the first acknowledgement of that SYN that comes in (the client's ACK, or the
// server's SYN-ACK when the guest connected) gives the PVM's. A checkpoint makes the SVM's sockets
// the PVM's: every difference is forgotten (reset). Checksums are updated, not recomputed.
//
// Not thread-safe: net_device::Secondary calls it under its own lock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>

namespace colo::network {

class TcpSequenceRewriter {
public:
    // A frame the SVM transmitted, before it goes anywhere: learns the SVM's initial sequence
    // numbers and, with `to_pvm_space`, translates the frame (after a takeover).
    void svm_sent(std::span<std::byte> frame, bool to_pvm_space);
    // A frame for the SVM, in the PVM's space: learns differences and translates the frame.
    void for_svm(std::span<std::byte> frame);
    // The SVM's state is the PVM's now.
    void reset() { connections_.clear(); }

    // Connections whose sequence numbers are translated (status, tests).
    [[nodiscard]] std::size_t translated() const;

private:
    struct Connection {
        std::uint32_t svm_isn = 0;
        std::optional<std::uint32_t> offset;  // SVM sequence numbers minus the PVM's
    };
    std::map<std::string, Connection> connections_;  // by the SVM's egress flow name
};

}  // namespace colo::network
