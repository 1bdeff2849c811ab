// The network checkpoint device (toolstack/replication/net_device.hpp) over FakeNics: output held
// until the checkpoint covering it is acknowledged (remus), ingress numbered and mirrored so a
// survivor gets each frame exactly once, held frames riding in the checkpoint so a survivor sends
// exactly what the dead primary had not, and the checks a secondary makes on net-checkpoint.
#include <doctest/doctest.h>

#include <deque>
#include <map>
#include <string>
#include <utility>

#include "tests/unit/error_of.hpp"
#include "tests/unit/pipeline_test_support.hpp"
#include "tests/unit/tcp_frames.hpp"

using namespace pipeline_test;

namespace {

using Frame = FakeNic::Frame;

Frame frame_of(const std::string& text) { return bytes_of(text); }

std::vector<std::string> texts(const std::vector<Frame>& frames) {
    std::vector<std::string> out;
    for (const auto& f : frames) out.emplace_back(reinterpret_cast<const char*>(f.data()), f.size());
    return out;
}

using Texts = std::vector<std::string>;

// What a survivor sent besides its takeover announcements (broadcast ARP/RARP frames and the
// neighbour advertisement to IPv6's all-nodes MAC 33:33:00:00:00:01).
std::vector<Frame> without_announcements(const std::vector<Frame>& frames) {
    std::vector<Frame> out;
    for (const auto& f : frames) {
        const bool broadcast = f.size() == 60 && f[0] == std::byte{0xff} && f[5] == std::byte{0xff};
        const bool all_nodes = f.size() > 6 && f[0] == std::byte{0x33} && f[1] == std::byte{0x33} && f[5] == std::byte{1};
        if (!broadcast && !all_nodes) out.push_back(f);
    }
    return out;
}

// The primary's host dies: the secondary reads what had arrived, then takes over.
void kill_primary(Pair& pair) {
    pair.to_secondary->close();
    CHECK(pair.secondary->process(Secondary::Clock::now() + Millis{50}) == Secondary::Outcome::failed_over);
}

}  // namespace

TEST_CASE("pipeline network: unprotected the NIC is a wire; remus holds egress until the checkpoint is acknowledged") {
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 1);
    FakeNic& pvm = pair.pvm.nic(0);
    pvm.guest_transmit(frame_of("before"));
    pvm.host_receive(frame_of("in-before"));
    CHECK(texts(pvm.sent_to_host()) == Texts{"before"});
    CHECK(texts(pvm.received()) == Texts{"in-before"});

    pair.protect();
    pvm.guest_transmit(frame_of("a"));
    pvm.guest_transmit(frame_of("b"));
    pair.primary->poll(Primary::Clock::now());
    CHECK(texts(pvm.sent_to_host()) == Texts{"before"});  // held: no checkpoint covers them

    // Sent, applied by the secondary, but not yet acknowledged: still held.
    pair.primary->send_checkpoint();
    pair.settle();
    CHECK(texts(pvm.sent_to_host()) == Texts{"before"});
    REQUIRE(pair.primary->await_checkpoint());
    CHECK(texts(pvm.sent_to_host()) == Texts{"before", "a", "b"});
    // A frame after the checkpoint's pause waits for the next one.
    pvm.guest_transmit(frame_of("c"));
    pair.primary->poll(Primary::Clock::now());
    CHECK(texts(pvm.sent_to_host()).size() == 3);
    REQUIRE(pair.checkpoint());
    CHECK(texts(pvm.sent_to_host()) == Texts{"before", "a", "b", "c"});
    // The secondary never sends anything while the primary lives.
    CHECK(pair.svm.nic(0).sent_to_host().empty());
    CHECK_FALSE(pair.svm.nic(0).attached());
}

TEST_CASE("pipeline network: remus takeover sends exactly the held frames the primary had not released") {
    SUBCASE("the primary died before the acknowledgement arrived: the survivor sends them") {
        Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 1);
        pair.protect();
        FakeNic& pvm = pair.pvm.nic(0);
        pvm.guest_transmit(frame_of("a"));
        pvm.guest_transmit(frame_of("b"));
        pair.primary->send_checkpoint();
        pair.settle();  // applied and acknowledged; the primary never reads the acknowledgement
        kill_primary(pair);
        CHECK(pvm.sent_to_host().empty());
        CHECK(pair.svm.nic(0).attached());
        CHECK(texts(without_announcements(pair.svm.nic(0).sent_to_host())) == Texts{"a", "b"});
    }
    SUBCASE("the primary released them and said so: the survivor sends nothing again") {
        Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 1);
        pair.protect();
        FakeNic& pvm = pair.pvm.nic(0);
        pvm.guest_transmit(frame_of("a"));
        REQUIRE(pair.checkpoint());
        pair.primary->poll(Primary::Clock::now());  // net-released goes out
        pvm.guest_transmit(frame_of("b"));          // after the checkpoint: never released
        pair.primary->poll(Primary::Clock::now());
        kill_primary(pair);
        CHECK(texts(pvm.sent_to_host()) == Texts{"a"});
        CHECK(without_announcements(pair.svm.nic(0).sent_to_host()).empty());
    }
    SUBCASE("a checkpoint that did not arrive whole covers nothing") {
        Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 1);
        pair.protect();
        FakeNic& pvm = pair.pvm.nic(0);
        pvm.guest_transmit(frame_of("a"));
        REQUIRE(pair.checkpoint());
        pair.primary->poll(Primary::Clock::now());  // "a" released and reported
        pvm.guest_transmit(frame_of("b"));
        pair.to_secondary->drop_after(2);  // checkpoint 2: begin and one record, then the link dies
        pair.primary->send_checkpoint();
        kill_primary(pair);
        // The survivor runs from checkpoint 1, whose held "a" the primary released; "b" was never
        // released (its checkpoint never committed), and the guest's own state will send it again
        // if it must (TCP retransmits). (The primary here lost only its link: it runs on alone
        // and sends "b" itself; the partition case is the witness's, not this device's.)
        CHECK(texts(pvm.sent_to_host()) == Texts{"a", "b"});
        CHECK(without_announcements(pair.svm.nic(0).sent_to_host()).empty());
    }
}

TEST_CASE("pipeline network: ingress reaches the survivor exactly once around checkpoints (remus)") {
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 1);
    FakeNic& pvm = pair.pvm.nic(0);
    pvm.host_receive(frame_of("0"));  // before protection: part of the migrated state
    pair.protect();
    pvm.host_receive(frame_of("1"));
    pvm.host_receive(frame_of("2"));
    pair.primary->poll(Primary::Clock::now());  // mirrored
    REQUIRE(pair.checkpoint());                  // covers 1 and 2
    pvm.host_receive(frame_of("3"));
    pvm.host_receive(frame_of("4"));
    pair.primary->poll(Primary::Clock::now());
    CHECK(texts(pvm.received()) == Texts{"0", "1", "2", "3", "4"});
    // The SVM is paused in remus: it has the checkpoint's state and nothing else yet.
    CHECK(texts(pair.svm.nic(0).received()) == Texts{"0", "1", "2"});
    kill_primary(pair);
    // The survivor's guest resumes from the checkpoint and gets what came after it, once.
    CHECK(texts(pair.svm.nic(0).received()) == Texts{"0", "1", "2", "3", "4"});
    // After the takeover its NIC is its own: the host network reaches it directly.
    pair.svm.nic(0).host_receive(frame_of("5"));
    pair.svm.nic(0).guest_transmit(frame_of("out"));
    CHECK(texts(pair.svm.nic(0).received()).back() == "5");
    CHECK(texts(without_announcements(pair.svm.nic(0).sent_to_host())) == Texts{"out"});
}

TEST_CASE("pipeline network: when the secondary is lost the primary releases what it held and is a wire again") {
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 1);
    pair.protect();
    FakeNic& pvm = pair.pvm.nic(0);
    pvm.guest_transmit(frame_of("a"));
    pair.to_primary->close();
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary->role() == Role::unprotected);
    CHECK(texts(pvm.sent_to_host()) == Texts{"a"});
    pvm.guest_transmit(frame_of("b"));
    pvm.host_receive(frame_of("in"));
    CHECK(texts(pvm.sent_to_host()) == Texts{"a", "b"});
    CHECK(texts(pvm.received()) == Texts{"in"});
}

TEST_CASE("pipeline network: a secondary refuses a checkpoint whose net-checkpoint is missing or incomplete") {
    struct Case {
        const char* name;
        std::function<void(protocol::Message&)> alter;
        const char* error;
    };
    // The checkpoint's records: begin, device-state (vCPU, NIC), console output, net-checkpoint, end.
    const std::vector<Case> cases{
        {"held total larger than what came", [](protocol::Message& m) { std::get<protocol::NetCheckpoint>(m).held_total = 2; },
         "secondary: nic0 net-checkpoint brought 1 held frames, its pieces say 2"},
        {"net-checkpoint for another NIC", [](protocol::Message& m) { std::get<protocol::NetCheckpoint>(m).nic = 5; },
         "secondary: no checkpoint device takes net-checkpoint"},
        {"net-checkpoint replaced", [](protocol::Message& m) { m = protocol::Heartbeat{1, 1}; },
         "secondary: checkpoint-end for epoch 1 claims 0 pages, 2 state and 2 device records; epoch 1 brought 0, 2 "
         "and 1"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 1);
        pair.protect();
        pair.pvm.nic(0).guest_transmit(frame_of("a"));
        pair.to_secondary->alter_message(4, [&](protocol::Message& m) {
            REQUIRE(std::holds_alternative<protocol::NetCheckpoint>(m));
            c.alter(m);
        });
        pair.primary->send_checkpoint();
        CHECK_THROWS_WITH_AS(pair.settle(), c.error, Error);
        CHECK(pair.secondary->role() == Role::stopped);
        CHECK(pair.svm.nic(0).sent_to_host().empty());
        CHECK_FALSE(pair.svm.nic(0).attached());
    }
}

namespace {

// A stand-in for the COLO frame compare: PVM and SVM frames match 1:1, in order, when their bytes
// are equal, per "flow" (a frame's first byte), so flows release independently. The engine itself
// is tested in network_*_test.cpp; this drives the device's bookkeeping frame by frame.
class ExactCompare final : public net_device::EgressCompare {
public:
    void pvm_frame(std::uint64_t index, std::span<const std::byte> frame, net_device::Clock::time_point) override {
        pvm_[flow(frame)].emplace_back(index, Frame(frame.begin(), frame.end()));
        match();
    }
    void svm_frame(std::uint64_t index, std::span<const std::byte> frame, net_device::Clock::time_point) override {
        svm_[flow(frame)].emplace_back(index, Frame(frame.begin(), frame.end()));
        match();
    }
    Matched take_matched() override { return std::exchange(matched_, {}); }
    std::string needs_checkpoint(net_device::Clock::time_point) override { return why_; }
    void reset() override {
        pvm_.clear();
        svm_.clear();
        why_.clear();
    }

private:
    static std::byte flow(std::span<const std::byte> frame) { return frame.front(); }
    void match() {
        for (auto& [flow, pvm] : pvm_) {
            auto& svm = svm_[flow];
            while (!pvm.empty() && !svm.empty()) {
                if (pvm.front().second != svm.front().second) {
                    why_ = "frames differ";
                    return;
                }
                matched_.pvm.push_back(pvm.front().first);
                matched_.svm.push_back(svm.front().first);
                pvm.pop_front();
                svm.pop_front();
            }
        }
    }
    std::map<std::byte, std::deque<std::pair<std::uint64_t, Frame>>> pvm_, svm_;
    Matched matched_;
    std::string why_;
};

PrimaryConfig colo_config() {
    PrimaryConfig c = primary_config(ProtectionMode::colo);
    c.make_net_compare = [] { return std::make_unique<ExactCompare>(); };
    return c;
}

// Secondary forwards what its SVM sent, the primary compares and releases, the report goes back.
void exchange(Pair& pair) {
    pair.settle();
    pair.primary->poll(Primary::Clock::now());
    pair.settle();
}

}  // namespace

TEST_CASE("pipeline network: colo releases a PVM frame as soon as the SVM sent the same, flows independently") {
    Pair pair(colo_config(), secondary_config(ProtectionMode::colo), 1);
    pair.protect();
    FakeNic& pvm = pair.pvm.nic(0);
    FakeNic& svm = pair.svm.nic(0);
    pvm.guest_transmit(frame_of("a1"));
    pvm.guest_transmit(frame_of("b1"));
    svm.guest_transmit(frame_of("b1"));  // flow b matches first: it goes, a waits
    exchange(pair);
    CHECK(texts(pvm.sent_to_host()) == Texts{"b1"});
    svm.guest_transmit(frame_of("a1"));
    exchange(pair);
    CHECK(texts(pvm.sent_to_host()) == Texts{"b1", "a1"});
    CHECK(svm.sent_to_host().empty());  // the secondary never sends while the primary lives
    CHECK(pair.primary->status().net_released_frames == 2);
    CHECK(pair.primary->status().net_held_frames == 0);
    // Both were matched: a takeover now sends nothing of them again.
    kill_primary(pair);
    CHECK(without_announcements(svm.sent_to_host()).empty());
    CHECK(pair.secondary->status().net_takeover_svm_sent == 0);
}

TEST_CASE("pipeline network: colo divergence asks for a checkpoint, whose commit releases what was held") {
    Pair pair(colo_config(), secondary_config(ProtectionMode::colo), 1);
    pair.protect();
    FakeNic& pvm = pair.pvm.nic(0);
    pvm.guest_transmit(frame_of("x-pvm"));
    pair.svm.nic(0).guest_transmit(frame_of("x-svm"));
    exchange(pair);
    CHECK(pvm.sent_to_host().empty());
    CHECK(pair.primary->status().net_compare_checkpoints == 1);  // asked for one
    REQUIRE(pair.checkpoint());
    CHECK(texts(pvm.sent_to_host()) == Texts{"x-pvm"});
    CHECK(pair.primary->status().net_compare_checkpoints == 1);
    CHECK(pair.primary->status().net_last_compare_reason == "frames differ");
    // After the checkpoint both run from the same state: agreeing frames flow again.
    pvm.guest_transmit(frame_of("y"));
    pair.svm.nic(0).guest_transmit(frame_of("y"));
    exchange(pair);
    CHECK(texts(pvm.sent_to_host()) == Texts{"x-pvm", "y"});
}

TEST_CASE("pipeline network: colo takeover sends the SVM's frames nobody released, once") {
    Pair pair(colo_config(), secondary_config(ProtectionMode::colo), 1);
    pair.protect();
    FakeNic& pvm = pair.pvm.nic(0);
    FakeNic& svm = pair.svm.nic(0);
    pvm.guest_transmit(frame_of("a"));
    svm.guest_transmit(frame_of("a"));
    exchange(pair);  // "a" released by the primary, reported
    pvm.guest_transmit(frame_of("b"));
    svm.guest_transmit(frame_of("b"));
    pair.settle();  // "b" forwarded; the primary dies before it compares
    kill_primary(pair);
    CHECK(texts(pvm.sent_to_host()) == Texts{"a"});
    CHECK(texts(without_announcements(svm.sent_to_host())) == Texts{"b"});
    CHECK(pair.secondary->status().net_takeover_svm_sent == 1);
}

TEST_CASE("pipeline network: colo ingress reaches the SVM as it comes, and again after a checkpoint replaced its state") {
    Pair pair(colo_config(), secondary_config(ProtectionMode::colo), 1);
    pair.protect();
    FakeNic& pvm = pair.pvm.nic(0);
    FakeNic& svm = pair.svm.nic(0);
    pvm.host_receive(frame_of("1"));
    pair.primary->poll(Primary::Clock::now());
    pair.settle();
    CHECK(texts(svm.received()) == Texts{"1"});
    // Checkpoint: paused, captured, the PVM resumes at once (early resume) and gets frame 2
    // before the secondary has applied the checkpoint, whose state has frame 1 only.
    pair.primary->send_checkpoint();
    pvm.host_receive(frame_of("2"));
    pair.primary->poll(Primary::Clock::now());
    pair.settle();
    REQUIRE(pair.primary->await_checkpoint());
    CHECK(texts(pvm.received()) == Texts{"1", "2"});
    CHECK(texts(svm.received()) == Texts{"1", "2"});
    kill_primary(pair);
    CHECK(texts(svm.received()) == Texts{"1", "2"});
}

TEST_CASE("pipeline network: a survivor announces the guest's MAC and address before it sends anything") {
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus), 0);
    VifConfig vif;
    vif.mac = {0x52, 0x54, 0x00, 0x01, 0x02, 0x03};
    vif.ip = Ipv4Cidr{{10, 1, 2, 3}, 24};
    // (A Pair's sides take their NICs when made: build this one's by hand.)
    pair.pvm.add_nic(vif, true);
    FakeNic& svm = pair.svm.add_nic(vif, false);
    pair.primary = std::make_unique<Primary>(pair.pvm, *pair.to_secondary, primary_config(ProtectionMode::remus),
                                             pair.primary_out.sink());
    pair.secondary = std::make_unique<Secondary>(pair.svm, *pair.to_primary, secondary_config(ProtectionMode::remus),
                                                 pair.secondary_out.sink());
    pair.protect();
    pair.pvm.nic(0).guest_transmit(frame_of("held"));
    pair.primary->send_checkpoint();
    pair.settle();
    kill_primary(pair);
    const auto sent = svm.sent_to_host();
    REQUIRE(sent.size() == 4);
    CHECK(std::to_integer<unsigned>(sent[0][13]) == 0x06);  // ARP (0x0806) first
    CHECK(std::to_integer<unsigned>(sent[1][13]) == 0xdd);  // then the IPv6 neighbour advertisement
    CHECK(std::to_integer<unsigned>(sent[2][13]) == 0x35);  // then RARP (0x8035)
    CHECK(texts({sent[3]}) == Texts{"held"});
    CHECK(pair.secondary->status().net_takeover_held_sent == 1);
}

TEST_CASE("pipeline network: colo with the real compare: a new TCP connection's ISNs differ, the survivor translates") {
    namespace tf = colo::test::tcp_frames;
    PrimaryConfig config = primary_config(ProtectionMode::colo);
    config.make_net_compare = [] { return net_device::make_egress_compare(ProtectionMode::colo); };
    Pair pair(config, secondary_config(ProtectionMode::colo), 1);
    pair.protect();
    FakeNic& pvm = pair.pvm.nic(0);
    FakeNic& svm = pair.svm.nic(0);
    const tf::Endpoints client = tf::Endpoints{}.reversed();
    // The client connects; both VMs accept, each with its own initial sequence number.
    pvm.host_receive(tf::segment(300, 0, tf::SYN, "", client));
    pair.primary->poll(Primary::Clock::now());
    pair.settle();
    pvm.guest_transmit(tf::segment(10000, 301, tf::SYN | tf::ACK, ""));
    svm.guest_transmit(tf::segment(77000, 301, tf::SYN | tf::ACK, ""));
    exchange(pair);
    REQUIRE(pvm.sent_to_host().size() == 1);  // the PVM's SYN-ACK: the SVM stands behind it
    CHECK(tf::get32(pvm.sent_to_host()[0], 38) == 10000);
    CHECK(pair.primary->status().net_compare_checkpoints == 0);
    // The client's ACK acknowledges the PVM's ISN; the SVM gets it in its own space.
    pvm.host_receive(tf::segment(301, 10001, tf::ACK, "GET", client));
    pair.primary->poll(Primary::Clock::now());
    pair.settle();
    REQUIRE(svm.received().size() == 2);
    CHECK(tf::get32(svm.received()[1], 42) == 77001);
    CHECK(tf::tcp_checksum_error(svm.received()[1]) == 0);
    CHECK(tf::get32(pvm.received()[1], 42) == 10001);  // the PVM's copy is untouched
    // Both answer, cut differently; the primary dies before it compares the SVM's second part.
    pvm.guest_transmit(tf::segment(10001, 304, tf::ACK, "OK"));
    svm.guest_transmit(tf::segment(77001, 304, tf::ACK, "O"));
    exchange(pair);
    CHECK(pvm.sent_to_host().size() == 1);  // "OK" is not all the SVM's yet
    svm.guest_transmit(tf::segment(77002, 304, tf::ACK, "K"));
    pair.settle();
    kill_primary(pair);
    // The survivor sends both of its segments (nothing of "OK" was released), in the PVM's space.
    const auto sent = without_announcements(svm.sent_to_host());
    REQUIRE(sent.size() == 2);
    CHECK(tf::get32(sent[0], 38) == 10001);
    CHECK(tf::get32(sent[1], 38) == 10002);
    CHECK(tf::tcp_checksum_error(sent[1]) == 0);
    CHECK(pair.secondary->status().net_takeover_tcp_translated == 1);
    // And goes on translating the connection both ways.
    svm.host_receive(tf::segment(304, 10003, tf::ACK, "", client));
    CHECK(tf::get32(svm.received().back(), 42) == 77003);
    svm.guest_transmit(tf::segment(77003, 304, tf::ACK | tf::FIN, ""));
    CHECK(tf::get32(svm.sent_to_host().back(), 38) == 10003);
}

TEST_CASE("net device: the SVM frames a checkpoint made moot leave no holes in the release report") {
    FakeNic nic(VifConfig{}, true);
    std::vector<protocol::NetReleased> reports;
    const DeviceSend send = [&](const protocol::Message& m) {
        if (const auto* r = std::get_if<protocol::NetReleased>(&m)) reports.push_back(*r);
    };
    net_device::Primary device(nic, 0, std::make_unique<ExactCompare>());
    device.setup(ProtectionMode::colo, send);
    device.commit();  // checkpoint 0: the secondary has the guest
    std::uint64_t svm = 0;
    const auto matched_pair = [&] {
        nic.guest_transmit(frame_of("p"));
        device.receive(protocol::NetEgress{0, ++svm, frame_of("p")});
        device.poll(send);
    };
    for (int epoch = 1; epoch <= 50; ++epoch) {
        matched_pair();
        // A checkpoint: what the SVM sends while it is in flight comes from the state it replaces
        // and is never compared (nor ever sent by a survivor: the secondary drops it at its commit).
        device.quiesce();
        device.postsuspend();
        (void)device.send_checkpoint(send);
        device.receive(protocol::NetEgress{0, ++svm, frame_of("q")});
        device.preresume();
        device.commit();
    }
    matched_pair();
    REQUIRE_FALSE(reports.empty());
    CHECK(reports.back().pvm_through == 51);
    CHECK(reports.back().svm_through == svm);
    CHECK(reports.back().svm_beyond.empty());  // 50 holes, one per checkpoint, without the fix
    CHECK(texts(nic.sent_to_host()).size() == 51);
}
