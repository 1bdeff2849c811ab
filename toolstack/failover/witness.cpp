#include "toolstack/failover/witness.hpp"

#include <cctype>

#include "backends/guest_config.hpp"
#include "toolstack/failover/base64.hpp"
#include "toolstack/failover/http_exchange.hpp"
#include "toolstack/failover/json_reader.hpp"

namespace colo {

namespace {

constexpr std::string_view kScheme = "etcd://";

bool prefix_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.'; }

// gRPC status codes (google.rpc.Code) that mean etcd could not decide now, as the gateway passes
// them in an error answer's "code": DEADLINE_EXCEEDED (no leader in time) and UNAVAILABLE.
constexpr std::int64_t kGrpcDeadlineExceeded = 4;
constexpr std::int64_t kGrpcUnavailable = 14;

const JsonValue& need(const JsonValue& parent, std::string_view key, JsonValue::Kind kind, const std::string& where) {
    const JsonValue* value = parent.member(key);
    if (value == nullptr) throw Error(where + " has no \"" + std::string(key) + "\"");
    if (value->kind != kind)
        throw Error(where + "." + std::string(key) + " is " + describe(value->kind) + ", not " + describe(kind));
    return *value;
}

// The owner in a RangeResponse object (an answer of /v3/kv/range, or a txn's response_range).
Owner owner_from(const JsonValue& range, std::string_view key, const std::string& where) {
    if (range.kind != JsonValue::Kind::object) throw Error(where + " is " + describe(range.kind) + ", not an object");
    // Protobuf's JSON leaves out empty lists and zeros: no "kvs" means no such key.
    const JsonValue* kvs = range.member("kvs");
    if (kvs == nullptr) return {};
    if (kvs->kind != JsonValue::Kind::array) throw Error(where + ".kvs is " + describe(kvs->kind) + ", not an array");
    if (kvs->items.size() != 1) throw Error(where + ".kvs holds " + std::to_string(kvs->items.size()) + " keys, not 1");
    const JsonValue& kv = kvs->items[0];
    const std::string at = where + ".kvs[0]";
    if (kv.kind != JsonValue::Kind::object) throw Error(at + " is " + describe(kv.kind) + ", not an object");
    if (base64_decode(need(kv, "key", JsonValue::Kind::string, at).text) != key)
        throw Error(at + ".key is not the key asked for");
    Owner owner;
    // An empty value is left out too.
    if (const JsonValue* value = kv.member("value")) {
        if (value->kind != JsonValue::Kind::string) throw Error(at + ".value is " + describe(value->kind) + ", not a string");
        owner.id = base64_decode(value->text);
    }
    const JsonValue* revision = kv.member("mod_revision");
    if (revision == nullptr) throw Error(at + " has no \"mod_revision\"");
    owner.revision = json_int64(*revision, at + ".mod_revision");
    if (owner.revision <= 0) throw Error(at + ".mod_revision " + std::to_string(owner.revision) + " is not positive");
    return owner;
}

}  // namespace

WitnessUrl parse_witness_url(std::string_view text) {
    const std::string expected = "witness \"" + std::string(text) + "\": expected etcd://HOST[:PORT][/PREFIX]";
    if (text.substr(0, kScheme.size()) != kScheme) throw Error(expected);
    std::string_view rest = text.substr(kScheme.size());
    const std::size_t slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    if (authority.empty()) throw Error(expected + " (no host)");
    WitnessUrl url;
    try {
        url.endpoint = parse_endpoint(authority, kDefaultEtcdPort);
    } catch (const Error& e) {
        throw Error(expected + " (" + e.what() + ")");
    }
    if (url.endpoint.port == 0) throw Error(expected + " (port 0)");
    if (slash != std::string_view::npos) {
        std::string_view path = rest.substr(slash);
        if (path == "/") path = {};
        if (!path.empty() && path.back() == '/') path.remove_suffix(1);  // "etcd://h/x/" is "etcd://h/x"
        for (std::size_t i = 0; i < path.size(); ++i) {
            const bool segment_start = path[i] == '/';
            if (segment_start ? (i + 1 == path.size() || path[i + 1] == '/') : !prefix_char(path[i]))
                throw Error(expected + " (PREFIX: segments of letters, digits, '-', '_', '.')");
        }
        url.prefix = std::string(path);
    }
    return url;
}

std::string to_string(const WitnessUrl& url) { return std::string(kScheme) + to_string(url.endpoint) + url.prefix; }

std::string owner_key(const WitnessUrl& url, const std::string& name) {
    validate_guest_name(name, "witness key");
    return url.prefix + "/colo-replicate/" + name + "/owner";
}

namespace etcd_json {

// JSON text is built by concatenation: every string in it is base64 or digits, which need no
// escaping.
std::string range_request(std::string_view key) { return "{\"key\":\"" + base64_encode(key) + "\"}"; }

std::string claim_request(std::string_view key, std::string_view owner, std::int64_t expected) {
    const std::string k = base64_encode(key);
    const std::string read_back = "{\"request_range\":{\"key\":\"" + k + "\"}}";
    // mod_revision of an absent key compares as 0 (etcd's compare on a missing key uses a zero
    // KeyValue), so one compare serves "still at R" and "still absent" alike.
    return "{\"compare\":[{\"target\":\"MOD\",\"result\":\"EQUAL\",\"key\":\"" + k + "\",\"mod_revision\":\"" +
           std::to_string(expected) + "\"}],\"success\":[{\"request_put\":{\"key\":\"" + k + "\",\"value\":\"" +
           base64_encode(owner) + "\"}}," + read_back + "],\"failure\":[" + read_back + "]}";
}

Owner owner_from_range(std::string_view json, std::string_view key) {
    return owner_from(parse_json(json), key, "range answer");
}

TxnResult claim_from_txn(std::string_view json, std::string_view key) {
    const JsonValue answer = parse_json(json);
    if (answer.kind != JsonValue::Kind::object) throw Error("txn answer is " + std::string(describe(answer.kind)) + ", not an object");
    TxnResult result;
    if (const JsonValue* succeeded = answer.member("succeeded")) {
        if (succeeded->kind != JsonValue::Kind::boolean) throw Error("txn answer's succeeded is " + std::string(describe(succeeded->kind)));
        result.succeeded = succeeded->boolean;
    }
    // The read-back is the last response: [put, range] on success, [range] on failure.
    const JsonValue& responses = need(answer, "responses", JsonValue::Kind::array, "txn answer");
    const std::size_t expected = result.succeeded ? 2 : 1;
    if (responses.items.size() != expected)
        throw Error("txn answer holds " + std::to_string(responses.items.size()) + " responses, not " + std::to_string(expected));
    const JsonValue& last = responses.items.back();
    const JsonValue* range = last.member("response_range");
    if (range == nullptr) throw Error("txn answer's last response is not a response_range");
    result.owner = owner_from(*range, key, "txn answer's response_range");
    return result;
}

std::string answer_body(const HttpResponse& response, std::string_view path) {
    if (response.status == 200) return response.body;
    // An error answer from the gateway: {"error": "...", "message": "...", "code": N}.
    std::string message = response.body.substr(0, 200);
    std::int64_t code = -1;
    try {
        const JsonValue error = parse_json(response.body);
        if (const JsonValue* m = error.member("message"); m != nullptr && m->kind == JsonValue::Kind::string) message = m->text;
        if (const JsonValue* c = error.member("code")) code = json_int64(*c, "code");
    } catch (const Error&) {
        // Not the gateway's JSON (a proxy's page, say): the status and the raw text say enough.
    }
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) message.pop_back();
    for (char& c : message)
        if (c == '\n' || c == '\r') c = ' ';  // one line
    if (message.size() > 200) message = message.substr(0, 200) + "...";
    const std::string what = std::string(path) + ": etcd answered " + std::to_string(response.status) + " " + response.reason + ": " + message;
    if (code == kGrpcUnavailable || code == kGrpcDeadlineExceeded || response.status == 502 || response.status == 503 ||
        response.status == 504)
        throw WitnessUnreachable(what);
    throw Error(what);
}

}  // namespace etcd_json

EtcdWitness::EtcdWitness(WitnessUrl url, std::chrono::milliseconds timeout)
    : url_(std::move(url)), timeout_(timeout), addresses_(lookup_tcp(url_.endpoint, false)) {}

std::string EtcdWitness::describe() const { return to_string(url_); }

std::string EtcdWitness::post(std::string_view path, std::string_view body) {
    const std::string where = "witness " + describe() + ": ";
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    try {
        const HttpResponse response =
            http_exchange(addresses_.get(), format_http_post(to_string(url_.endpoint), path, body), deadline, timeout_);
        return etcd_json::answer_body(response, path);
    } catch (const WitnessUnreachable& e) {
        throw WitnessUnreachable(where + e.what());
    } catch (const HttpUnreachable& e) {
        throw WitnessUnreachable(where + std::string(path) + ": " + e.what());
    } catch (const Error& e) {
        throw Error(where + e.what());
    }
}

Owner EtcdWitness::read_owner(const std::string& name) {
    const std::string key = owner_key(url_, name);
    const std::string answer = post("/v3/kv/range", etcd_json::range_request(key));
    try {
        return etcd_json::owner_from_range(answer, key);
    } catch (const Error& e) {
        throw Error("witness " + describe() + ": /v3/kv/range: " + e.what());
    }
}

bool EtcdWitness::claim(const std::string& name, const std::string& new_owner_id, std::int64_t expected_revision, Owner* now) {
    const std::string key = owner_key(url_, name);
    if (new_owner_id.empty()) throw Error("witness " + describe() + ": an owner id must not be empty (empty means nobody)");
    if (expected_revision < 0)
        throw Error("witness " + describe() + ": expected revision " + std::to_string(expected_revision) + " is negative");
    const std::string answer = post("/v3/kv/txn", etcd_json::claim_request(key, new_owner_id, expected_revision));
    etcd_json::TxnResult result;
    try {
        result = etcd_json::claim_from_txn(answer, key);
        if (result.succeeded && result.owner.id != new_owner_id)
            throw Error("the transaction succeeded but the key reads back \"" + result.owner.id + "\"");
    } catch (const Error& e) {
        throw Error("witness " + describe() + ": /v3/kv/txn: " + e.what());
    }
    if (now != nullptr) *now = result.owner;
    // Already ours: an earlier attempt that timed out was applied after all (witness.hpp).
    return result.succeeded || result.owner.id == new_owner_id;
}

}  // namespace colo
