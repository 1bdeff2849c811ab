// The witness: a coordinator outside both hosts that names the one owner of a guest, so a
// partition cannot leave two live copies (issue 13 item 4; VMware FT's test-and-set on shared
// storage, here an etcd transaction). A side goes live only after it won `claim`; the side that
// lost stops its copy for good. The failover code decides when to ask; this file only asks.
//
// Key: PREFIX/colo-replicate/NAME/owner (PREFIX from the URL, may be empty). Value: the owner id,
// opaque text chosen by the caller (e.g. "host-a:12345:boot-uuid"; it should be unique per
// process, see claim()). Revision: etcd's mod_revision of the key, 0 when it does not exist.
//
// Errors: every call finishes within the witness's timeout (connect, send and receive together).
// WitnessUnreachable: no answer (refused, reset, silent, the witness has no quorum); nobody may
// go live on it, the caller retries or holds. colo::Error: a malformed or unexpected answer, or
// bad arguments. Messages are one line and name the witness URL.
//
// Threads: an EtcdWitness keeps no state that calls change (each call has its own connection),
// so several threads may call it at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "backends/error.hpp"
#include "toolstack/failover/http_exchange.hpp"
#include "toolstack/transport/address_lookup.hpp"
#include "toolstack/transport/endpoint.hpp"

namespace colo {

inline constexpr std::uint16_t kDefaultEtcdPort = 2379;
inline constexpr std::chrono::milliseconds kDefaultWitnessTimeout{2000};

// "etcd://HOST[:PORT][/PREFIX]": HOST a name, IPv4 or [IPv6]; PORT 1..65535 (default 2379);
// PREFIX path segments of letters, digits, '-', '_' and '.', without a trailing '/'.
struct WitnessUrl {
    Endpoint endpoint;
    std::string prefix;  // "" or "/a/b"
    bool operator==(const WitnessUrl&) const = default;
};

// Throws colo::Error naming the bad text and what was expected.
[[nodiscard]] WitnessUrl parse_witness_url(std::string_view text);
// Back to text: "etcd://127.0.0.1:2379/prefix".
[[nodiscard]] std::string to_string(const WitnessUrl& url);
// The key that names guest `name`'s owner: "PREFIX/colo-replicate/NAME/owner". Throws
// colo::Error when `name` is not a valid guest name (validate_guest_name), so no name can reach
// another guest's key.
[[nodiscard]] std::string owner_key(const WitnessUrl& url, const std::string& name);

// The witness did not answer within the timeout, refused the connection, or could not decide
// (etcd without a quorum). The message names the URL and why.
class WitnessUnreachable : public Error {
public:
    using Error::Error;
};

struct Owner {
    std::string id;             // "" when nobody owns the guest (the key does not exist)
    std::int64_t revision = 0;  // the key's mod_revision; 0 when it does not exist
    bool operator==(const Owner&) const = default;
};

class Witness {
public:
    virtual ~Witness() = default;

    // Who owns guest `name` now.
    [[nodiscard]] virtual Owner read_owner(const std::string& name) = 0;

    // Makes `new_owner_id` the owner of guest `name` if, and only if, the key is still at
    // `expected_revision` (0: the key must not exist), in one atomic step. True when this call
    // won; false when the key had moved on (someone else claimed first; read_owner, or `now`,
    // names them). `now`, when given, receives the owner as this same step left it: the winner
    // with the key's new revision (the next claim's expected_revision).
    //
    // WitnessUnreachable means the answer was lost, not that nothing happened: the request may
    // still be applied, even well after the call gave up (seen: a claim sent into a frozen etcd
    // was applied after SIGCONT, in 4 of 12 runs, once after a read_owner had shown the old
    // owner). So owner ids must be unique per claimer, and a claim whose transaction failed
    // because the key already names `new_owner_id` returns true: an earlier attempt of this
    // claimer won. Retrying the same claim after WitnessUnreachable is therefore right; never go
    // live on WitnessUnreachable itself.
    [[nodiscard]] virtual bool claim(const std::string& name, const std::string& new_owner_id,
                                     std::int64_t expected_revision, Owner* now = nullptr) = 0;

    // The witness for messages and status: "etcd://127.0.0.1:2379".
    [[nodiscard]] virtual std::string describe() const = 0;
};

// etcd v3 through its JSON gateway (etcd 3.4: POST /v3/kv/range and /v3/kv/txn over plain
// HTTP/1.1, keys and values in base64). No TLS or authentication to etcd: run it on a trusted
// network (a host firewall, or the replication hosts' management network).
class EtcdWitness final : public Witness {
public:
    // Resolves the host now, once (a name lookup cannot be bounded by the timeout; later calls
    // use these addresses). Throws colo::Error when it does not resolve.
    explicit EtcdWitness(WitnessUrl url, std::chrono::milliseconds timeout = kDefaultWitnessTimeout);

    [[nodiscard]] Owner read_owner(const std::string& name) override;
    [[nodiscard]] bool claim(const std::string& name, const std::string& new_owner_id, std::int64_t expected_revision,
                             Owner* now = nullptr) override;
    [[nodiscard]] std::string describe() const override;

    [[nodiscard]] std::chrono::milliseconds timeout() const noexcept { return timeout_; }

private:
    // POSTs `body` to `path` and returns the answer's JSON text; throws as the class says.
    std::string post(std::string_view path, std::string_view body);

    WitnessUrl url_;
    std::chrono::milliseconds timeout_;
    AddrinfoList addresses_;
};

// The request bodies and the reading of the answers, pure (unit-tested without etcd).
namespace etcd_json {
// POST /v3/kv/range for one key.
[[nodiscard]] std::string range_request(std::string_view key);
// POST /v3/kv/txn: compare mod_revision(key) == expected (an absent key's is 0), then put owner
// and read the key back; else only read it back.
[[nodiscard]] std::string claim_request(std::string_view key, std::string_view owner, std::int64_t expected);
// The owner in a range answer for `key` ({"header":..,"kvs":[..]}); kvs absent: nobody. Throws
// colo::Error naming what is wrong (not JSON, a field missing or of the wrong type, another key).
[[nodiscard]] Owner owner_from_range(std::string_view json, std::string_view key);
struct TxnResult {
    bool succeeded = false;
    Owner owner;  // from the transaction's read-back
};
// A claim_request's answer; throws as owner_from_range.
[[nodiscard]] TxnResult claim_from_txn(std::string_view json, std::string_view key);
// The JSON text of an answer to `path` (200), or throws: WitnessUnreachable when etcd could not
// decide (HTTP 502/503/504, or gRPC code UNAVAILABLE or DEADLINE_EXCEEDED: no leader, no quorum),
// colo::Error otherwise ("/v3/kv/txn: etcd answered 400 Bad Request: <etcd's message>").
[[nodiscard]] std::string answer_body(const HttpResponse& response, std::string_view path);
}  // namespace etcd_json

}  // namespace colo
