// COLO's TCP compare (toolstack/network/tcp_stream_compare.hpp, through FrameCompare) and the
// secondary's sequence translation (tcp_sequence_rewriter.hpp) on recorded-style segment traces:
// different segmentation, different ISNs, retransmits, reordering, acknowledgements, FIN and RST,
// IPv6, and checksums that stay right when a segment is rewritten.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/unit/tcp_frames.hpp"
#include "toolstack/network/frame_compare.hpp"
#include "toolstack/network/tcp_sequence_rewriter.hpp"

using colo::network::FrameCompare;
using colo::network::TcpSequenceRewriter;
using Bytes = std::vector<std::byte>;

namespace {

using namespace colo::test::tcp_frames;
const auto t0 = FrameCompare::Clock::time_point{};

using Indices = std::vector<std::uint64_t>;

}  // namespace

TEST_CASE("tcp compare: the same bytes in different segments match; ranges are released in order") {
    FrameCompare compare;
    compare.pvm_frame(1, segment(1000, 50, ACK | PSH, "hello "), t0);
    compare.pvm_frame(2, segment(1006, 50, ACK | PSH, "world"), t0);
    CHECK(compare.take_matched().pvm.empty());
    compare.svm_frame(7, segment(1000, 50, ACK | PSH, "hello wor"), t0);
    auto matched = compare.take_matched();
    CHECK(matched.pvm == Indices{1});  // "world" is not all there yet
    CHECK(matched.svm.empty());        // the SVM's 9 bytes are not all released
    compare.svm_frame(8, segment(1009, 50, ACK | PSH, "ld"), t0);
    matched = compare.take_matched();
    CHECK(matched.pvm == Indices{2});
    CHECK(matched.svm == Indices{7, 8});
    CHECK(compare.needs_checkpoint(t0).empty());
}

TEST_CASE("tcp compare: different bytes over the same range are a mismatch") {
    FrameCompare compare;
    compare.svm_frame(1, segment(1000, 50, ACK, "count=7"), t0);
    compare.pvm_frame(1, segment(1000, 50, ACK, "count=8"), t0);
    CHECK(compare.take_matched().pvm.empty());
    CHECK(compare.needs_checkpoint(t0) ==
          "tcp 10.0.0.2:7000>10.0.0.1:41000: PVM frame 1: the SVM sent other bytes at sequence 1000");
    compare.reset();
    CHECK(compare.needs_checkpoint(t0).empty());
}

TEST_CASE("tcp compare: a new connection's different ISNs are translated, also for what follows") {
    FrameCompare compare;
    // The client's SYN (seq 300) reached both; each VM answers with its own ISN.
    compare.pvm_frame(1, segment(10000, 301, SYN | ACK, ""), t0);
    compare.svm_frame(1, segment(77000, 301, SYN | ACK, ""), t0);
    auto matched = compare.take_matched();
    CHECK(matched.pvm == Indices{1});
    CHECK(matched.svm == Indices{1});
    // Data, segmented differently, in each VM's own space.
    compare.svm_frame(2, segment(77001, 321, ACK, "abcdef"), t0);
    compare.pvm_frame(2, segment(10001, 321, ACK, "abc"), t0);
    compare.pvm_frame(3, segment(10004, 321, ACK, "def"), t0);
    matched = compare.take_matched();
    CHECK(matched.pvm == Indices{2, 3});
    CHECK(matched.svm == Indices{2});
    // A FIN at the same translated position matches; elsewhere it would not.
    compare.pvm_frame(4, segment(10007, 321, ACK | FIN, ""), t0);
    compare.svm_frame(3, segment(77007, 321, ACK | FIN, ""), t0);
    CHECK(compare.take_matched().pvm == Indices{4});
    CHECK(compare.needs_checkpoint(t0).empty());

    SUBCASE("a SYN-ACK that acknowledges something else is a mismatch") {
        FrameCompare other;
        other.pvm_frame(1, segment(10000, 301, SYN | ACK, "", {1, 1}), t0);
        other.svm_frame(1, segment(77000, 302, SYN | ACK, "", {1, 1}), t0);
        CHECK(other.needs_checkpoint(t0).find("the SVM's SYN acknowledges 302, the PVM's 301") != std::string::npos);
    }
}

TEST_CASE("tcp compare: acknowledgements go once the SVM acknowledged as much") {
    FrameCompare compare;
    compare.pvm_frame(1, segment(1000, 500, ACK, ""), t0);  // a pure ACK of the client's bytes to 500
    compare.svm_frame(1, segment(1000, 400, ACK, ""), t0);
    CHECK(compare.take_matched().pvm.empty());               // the SVM has had only 400 of them
    compare.svm_frame(2, segment(1000, 600, ACK, ""), t0);   // delayed, and more at once
    auto matched = compare.take_matched();
    CHECK(matched.pvm == Indices{1});
    CHECK(matched.svm == Indices{1});  // ack 400 is covered by the released 500; 600 is not
    CHECK(compare.needs_checkpoint(t0 + std::chrono::milliseconds(299)).empty());
    // The window differs in a window update: not compared.
    compare.pvm_frame(2, segment(1000, 600, ACK, "", {}, {}, 9000), t0);
    matched = compare.take_matched();
    CHECK(matched.pvm == Indices{2});
    CHECK(matched.svm == Indices{2});
}

TEST_CASE("tcp compare: retransmits, reordering and the timeout") {
    FrameCompare compare({std::chrono::milliseconds(300), 1024});
    compare.svm_frame(1, segment(1004, 9, ACK, "5678"), t0);  // the SVM's second segment first
    compare.pvm_frame(1, segment(1000, 9, ACK, "1234"), t0);
    CHECK(compare.take_matched().pvm.empty());
    compare.svm_frame(2, segment(1000, 9, ACK, "1234"), t0);
    compare.pvm_frame(2, segment(1004, 9, ACK, "5678"), t0);
    CHECK(compare.take_matched().pvm == Indices{1, 2});
    // The PVM retransmits released bytes: they were compared, they go.
    compare.pvm_frame(3, segment(1000, 9, ACK, "12345678"), t0);
    CHECK(compare.take_matched().pvm == Indices{3});
    // New bytes the SVM never sends: the checkpoint comes after the timeout, not before.
    compare.pvm_frame(4, segment(1008, 9, ACK, "9"), t0);
    CHECK(compare.needs_checkpoint(t0 + std::chrono::milliseconds(300)).empty());
    CHECK(compare.needs_checkpoint(t0 + std::chrono::milliseconds(301)) ==
          "tcp 10.0.0.2:7000>10.0.0.1:41000: PVM frame 4 unmatched for more than 300 ms");
}

TEST_CASE("tcp compare: FIN and RST must be the SVM's too") {
    SUBCASE("FIN elsewhere") {
        FrameCompare compare;
        compare.svm_frame(1, segment(1000, 9, ACK | FIN, "ab"), t0);
        compare.pvm_frame(1, segment(1000, 9, ACK | FIN, "a"), t0);
        CHECK(compare.needs_checkpoint(t0).find("the SVM's FIN is elsewhere") != std::string::npos);
    }
    SUBCASE("bytes past the FIN") {
        FrameCompare compare;
        compare.svm_frame(1, segment(1000, 9, ACK, "abc"), t0);
        compare.pvm_frame(1, segment(1000, 9, ACK | FIN, "ab"), t0);
        CHECK(compare.needs_checkpoint(t0).find("the SVM sent bytes past the PVM's FIN") != std::string::npos);
    }
    SUBCASE("RST waits for the SVM's") {
        FrameCompare compare;
        compare.pvm_frame(1, segment(1000, 0, RST, ""), t0);
        CHECK(compare.take_matched().pvm.empty());
        compare.svm_frame(1, segment(1000, 0, RST, ""), t0);
        CHECK(compare.take_matched().pvm == Indices{1});
    }
}

TEST_CASE("tcp compare: IPv6 connections and connections apart") {
    Endpoints v6;
    v6.src = std::vector<unsigned>(16, 0xfd);
    v6.dst = std::vector<unsigned>(16, 0xfe);
    Endpoints other{7001, 41001};
    FrameCompare compare;
    compare.pvm_frame(1, segment(5, 9, ACK, "six", v6), t0);
    compare.pvm_frame(2, segment(5, 9, ACK, "four", other), t0);
    compare.svm_frame(1, segment(5, 9, ACK, "four", other), t0);
    CHECK(compare.take_matched().pvm == Indices{2});
    compare.svm_frame(2, segment(5, 9, ACK, "six", v6), t0);
    CHECK(compare.take_matched().pvm == Indices{1});
}

TEST_CASE("tcp rewriter: the client's acks and SACK blocks into the SVM's space, its sequence numbers out") {
    TcpSequenceRewriter rewriter;
    const Endpoints client = Endpoints{}.reversed();
    // The SVM answers the client's SYN with its own ISN 77000 (the PVM's was 10000).
    Bytes syn_ack = segment(77000, 301, SYN | ACK, "");
    rewriter.svm_sent(syn_ack, false);
    CHECK(get32(syn_ack, 38) == 77000);  // not translated while the primary lives
    // The client acknowledges the PVM's SYN: 10001. The SVM must see 77001.
    Bytes ack = segment(301, 10001, ACK, "", client);
    rewriter.for_svm(ack);
    CHECK(get32(ack, 42) == 77001);
    CHECK(tcp_checksum_error(ack) == 0);
    CHECK(rewriter.translated() == 1);
    // SACK blocks (with NOPs before them) move too.
    const Bytes sack{std::byte{1}, std::byte{1}, std::byte{5}, std::byte{10}, std::byte{0}, std::byte{0},
                     std::byte(10100 >> 8), std::byte(10100 & 0xff), std::byte{0}, std::byte{0},
                     std::byte(10200 >> 8), std::byte(10200 & 0xff)};
    Bytes with_sack = segment(301, 10050, ACK, "data", client, sack);
    rewriter.for_svm(with_sack);
    CHECK(get32(with_sack, 42) == 77050);
    CHECK(get32(with_sack, 58) == 77100);
    CHECK(get32(with_sack, 62) == 77200);
    CHECK(tcp_checksum_error(with_sack) == 0);
    // After a takeover the SVM's segments leave in the PVM's space.
    Bytes out = segment(77001, 305, ACK | PSH, "reply");
    rewriter.svm_sent(out, true);
    CHECK(get32(out, 38) == 10001);
    CHECK(tcp_checksum_error(out) == 0);
    // Other connections are left alone.
    Bytes unrelated = segment(4000, 9, ACK, "x", Endpoints{7001, 41001});
    const Bytes before = unrelated;
    rewriter.svm_sent(unrelated, true);
    CHECK(unrelated == before);
    // A checkpoint makes the SVM's sockets the PVM's: nothing is translated any more.
    rewriter.reset();
    Bytes later = segment(301, 10060, ACK, "", client);
    rewriter.for_svm(later);
    CHECK(get32(later, 42) == 10060);
    CHECK(rewriter.translated() == 0);
}
