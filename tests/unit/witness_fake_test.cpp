// FakeWitness keeps the claim rules a real etcd keeps (the same contract check as the witness
// tier), so failover tests against it mean what they would against etcd.
#include <doctest/doctest.h>

#include <latch>
#include <thread>

#include "tests/unit/fake_witness.hpp"
#include "tests/witness/witness_contract.hpp"

using colo::Owner;
using colo::test::FakeWitness;

TEST_CASE("fake witness: the claim rules of the witness contract") {
    FakeWitness witness;
    colo::test::check_claim_rules(witness);
    CHECK(witness.read_owner("web2") == Owner{});
}

TEST_CASE("fake witness: unreachable on demand, and the key untouched meanwhile") {
    FakeWitness witness;
    REQUIRE(witness.claim("web1", "a", 0));
    const Owner before = witness.read_owner("web1");
    witness.set_reachable(false);
    CHECK_THROWS_AS((void)witness.read_owner("web1"), colo::WitnessUnreachable);
    CHECK_THROWS_WITH_AS((void)witness.claim("web1", "b", before.revision),
                         "witness fake://witness: unreachable (set_reachable(false))", colo::WitnessUnreachable);
    witness.set_reachable(true);
    CHECK(witness.read_owner("web1") == before);
    CHECK(witness.calls() == 5);
}

TEST_CASE("fake witness: two threads claiming from one revision, one wins") {
    FakeWitness witness;
    std::int64_t revision = 0;
    for (int round = 0; round < 50; ++round) {
        std::latch start(2);
        bool won[2] = {};
        std::thread threads[2];
        for (int i = 0; i < 2; ++i)
            threads[i] = std::thread([&, i] {
                start.arrive_and_wait();
                won[i] = witness.claim("race", "host-" + std::to_string(i) + ":" + std::to_string(round), revision);
            });
        for (auto& t : threads) t.join();
        REQUIRE(won[0] != won[1]);
        revision = witness.read_owner("race").revision;
    }
}
