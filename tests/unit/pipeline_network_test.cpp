// The network checkpoint device (toolstack/replication/net_device.hpp) over FakeNics: output held
// until the checkpoint covering it is acknowledged (remus), ingress numbered and mirrored so a
// survivor gets each frame exactly once, held frames riding in the checkpoint so a survivor sends
// exactly what the dead primary had not, and the checks a secondary makes on net-checkpoint.
#include <doctest/doctest.h>

#include <string>

#include "tests/unit/error_of.hpp"
#include "tests/unit/pipeline_test_support.hpp"

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
        CHECK(texts(pair.svm.nic(0).sent_to_host()) == Texts{"a", "b"});
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
        CHECK(pair.svm.nic(0).sent_to_host().empty());
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
        CHECK(pair.svm.nic(0).sent_to_host().empty());
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
    CHECK(texts(pair.svm.nic(0).sent_to_host()) == Texts{"out"});
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
