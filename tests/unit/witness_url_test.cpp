// parse_witness_url and owner_key: the text an operator gives --witness, and the etcd key a
// guest's owner lives at.
#include <doctest/doctest.h>

#include "tests/unit/error_of.hpp"
#include "toolstack/failover/witness.hpp"

using colo::owner_key;
using colo::parse_witness_url;
using colo::WitnessUrl;
using colo::test::error_of;

TEST_CASE("witness url: host, port and prefix") {
    CHECK(parse_witness_url("etcd://10.0.0.5:2379") == WitnessUrl{{"10.0.0.5", 2379}, ""});
    CHECK(parse_witness_url("etcd://witness.example") == WitnessUrl{{"witness.example", 2379}, ""});
    CHECK(parse_witness_url("etcd://[fd00::1]:12379/ha/colo") == WitnessUrl{{"fd00::1", 12379}, "/ha/colo"});
    CHECK(parse_witness_url("etcd://h:1/") == WitnessUrl{{"h", 1}, ""});
    CHECK(parse_witness_url("etcd://h:1/site-a/") == WitnessUrl{{"h", 1}, "/site-a"});
    CHECK(to_string(parse_witness_url("etcd://[fd00::1]:12379/ha")) == "etcd://[fd00::1]:12379/ha");
    CHECK(to_string(parse_witness_url("etcd://h")) == "etcd://h:2379");
}

TEST_CASE("witness url: bad text gets one line naming it and the form expected") {
    const std::string form = "expected etcd://HOST[:PORT][/PREFIX]";
    CHECK(error_of([] { (void)parse_witness_url("http://h:2379"); }) == "witness \"http://h:2379\": " + form);
    CHECK(error_of([] { (void)parse_witness_url("h:2379"); }) == "witness \"h:2379\": " + form);
    CHECK(error_of([] { (void)parse_witness_url(""); }) == "witness \"\": " + form);
    CHECK(error_of([] { (void)parse_witness_url("etcd://"); }) == "witness \"etcd://\": " + form + " (no host)");
    CHECK(error_of([] { (void)parse_witness_url("etcd:///x"); }) == "witness \"etcd:///x\": " + form + " (no host)");
    CHECK(error_of([] { (void)parse_witness_url("etcd://h:0"); }) == "witness \"etcd://h:0\": " + form + " (port 0)");
    for (const char* bad : {"etcd://h:99999", "etcd://h:x", "etcd://h:"}) {
        const std::string message = error_of([&] { (void)parse_witness_url(bad); });
        CHECK_MESSAGE(message.rfind("witness \"" + std::string(bad) + "\": " + form + " (", 0) == 0, message);
        CHECK(message.find('\n') == std::string::npos);
    }
    for (const char* bad : {"etcd://h/a//b", "etcd://h/a b", "etcd://h/a?x", "etcd://h//", "etcd://h/a/../b/%2f"}) {
        CHECK_MESSAGE(error_of([&] { (void)parse_witness_url(bad); }) ==
                          "witness \"" + std::string(bad) + "\": " + form + " (PREFIX: segments of letters, digits, '-', '_', '.')",
                      bad);
    }
}

TEST_CASE("witness key: PREFIX/colo-replicate/NAME/owner, and only for a valid guest name") {
    CHECK(owner_key(parse_witness_url("etcd://h"), "web1") == "/colo-replicate/web1/owner");
    CHECK(owner_key(parse_witness_url("etcd://h/site-a"), "db.2") == "/site-a/colo-replicate/db.2/owner");
    // A name with a '/' could name another guest's key: refused with the guest-name rule.
    for (const char* bad : {"", "a/b", "../x", "-rf"}) {
        const std::string message = error_of([&] { (void)owner_key(parse_witness_url("etcd://h"), bad); });
        CHECK_MESSAGE(message.rfind("witness key: name \"" + std::string(bad) + "\" must start with a letter or digit", 0) == 0, message);
    }
}
