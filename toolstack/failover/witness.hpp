// A witness: a store outside both hosts that names the one owner of each protected guest and
// changes that name only by an atomic compare-and-swap on the key's revision, so two sides that
// both believe the other is dead cannot both win (ownership_arbiter.hpp says how it is used).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "backends/error.hpp"

namespace colo {

// The witness did not answer within its deadline (down, partitioned away, frozen) or the
// connection failed: nobody may act on a guess.
class WitnessUnreachable : public Error {
public:
    using Error::Error;
};

struct Owner {
    std::string id;              // empty: no owner (the key does not exist)
    std::int64_t revision = 0;   // the key's modification revision; 0 when absent
};

class Witness {
public:
    virtual ~Witness() = default;
    // Who owns `guest` now. Throws WitnessUnreachable or colo::Error (an answer it cannot read).
    [[nodiscard]] virtual Owner read_owner(const std::string& guest) = 0;
    // Makes `owner` the owner of `guest` if the key's revision is still `expected_revision` (0: the
    // key must not exist), atomically; false when it had moved (someone else won).
    [[nodiscard]] virtual bool claim(const std::string& guest, const std::string& owner, std::int64_t expected_revision) = 0;
    // "etcd://10.0.0.5:2379", for messages.
    [[nodiscard]] virtual std::string url() const = 0;
};

// The witness a URL names: "etcd://HOST:PORT[/PREFIX]" (etcd's v3 JSON gateway). Throws colo::Error
// for a URL it does not take; connects only when asked something.
[[nodiscard]] std::shared_ptr<Witness> open_witness(const std::string& url);

}  // namespace colo
