// What every Witness must do, checked the same way against EtcdWitness on a real etcd
// (tests/witness) and against the in-memory FakeWitness the unit tests use (tests/unit), so the
// fake cannot drift from what etcd does.
#pragma once

#include <doctest/doctest.h>

#include "toolstack/failover/witness.hpp"

namespace colo::test {

// On a witness where guest "web1" has no owner yet: an absent key reads as nobody at revision 0;
// a first claim from 0 wins once; a second claim from 0 by another loses and names the owner; the
// owner's own claim again is a win that writes nothing; the next claim from the current revision
// wins; stale and never-seen revisions lose. Leaves web1 owned by "host-b:200:boot-b".
inline void check_claim_rules(Witness& witness) {
    CHECK(witness.read_owner("web1") == Owner{});

    Owner now;
    REQUIRE(witness.claim("web1", "host-a:100:boot-a", 0, &now));
    CHECK(now.id == "host-a:100:boot-a");
    CHECK(now.revision > 0);
    CHECK(witness.read_owner("web1") == now);
    const Owner first = now;

    // A second "create" from 0 loses and names who holds it.
    CHECK_FALSE(witness.claim("web1", "host-b:200:boot-b", 0, &now));
    CHECK(now == first);
    // The same claim again (a retry after WitnessUnreachable whose first try was applied after
    // all) is a win: the key names this claimer, and nothing was written.
    CHECK(witness.claim("web1", "host-a:100:boot-a", 0, &now));
    CHECK(now == first);

    // The rightful next claim moves it on; then the old revision is stale.
    REQUIRE(witness.claim("web1", "host-b:200:boot-b", first.revision, &now));
    CHECK(now.id == "host-b:200:boot-b");
    CHECK(now.revision > first.revision);
    const Owner second = now;
    CHECK_FALSE(witness.claim("web1", "host-a:100:boot-a", first.revision));
    CHECK(witness.read_owner("web1") == second);
    // A revision from the future (never seen) loses too.
    CHECK_FALSE(witness.claim("web1", "host-a:100:boot-a", second.revision + 1000));
    CHECK(witness.read_owner("web1") == second);
}

}  // namespace colo::test
