// The witness's pure parts: base64, the JSON reader, and etcd's request and answer bodies (the
// answers are ones etcd 3.4.23 gave, copied from a session with curl).
#include <doctest/doctest.h>

#include "tests/unit/error_of.hpp"
#include "toolstack/failover/base64.hpp"
#include "toolstack/failover/json_reader.hpp"
#include "toolstack/failover/witness.hpp"

using colo::base64_decode;
using colo::base64_encode;
using colo::JsonValue;
using colo::parse_json;
using colo::test::error_of;
namespace etcd_json = colo::etcd_json;

TEST_CASE("base64: RFC 4648 test vectors both ways, and every byte") {
    const std::pair<const char*, const char*> vectors[] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
                                                           {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, coded] : vectors) {
        CHECK(base64_encode(plain) == coded);
        CHECK(base64_decode(coded) == plain);
    }
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    CHECK(base64_encode(all).substr(0, 8) == "AAECAwQF");
    CHECK(base64_decode(base64_encode(all)) == all);
    CHECK(base64_encode("/colo-replicate/web1/owner") == "L2NvbG8tcmVwbGljYXRlL3dlYjEvb3duZXI=");
}

TEST_CASE("base64: strict decoding names the offset of what is wrong") {
    CHECK(error_of([] { (void)base64_decode("Zm9"); }) == "base64: length 3 is not a multiple of 4 at offset 3");
    CHECK(error_of([] { (void)base64_decode("Zm 9"); }) == "base64: character outside the alphabet at offset 2");
    CHECK(error_of([] { (void)base64_decode("Zg==Zm9v"); }) == "base64: padding before the end at offset 2");
    CHECK(error_of([] { (void)base64_decode("Z==="); }) == "base64: padding before the end at offset 1");
    CHECK(error_of([] { (void)base64_decode("Zh=="); }) == "base64: non-zero bits before the padding at offset 1");
    CHECK(error_of([] { (void)base64_decode("Zm9="); }) == "base64: non-zero bits before the padding at offset 2");
}

TEST_CASE("json: values, nesting, escapes") {
    const JsonValue v = parse_json(R"( {"a": [1, -2.5e3, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"], "b": {}, "c": [], "a": 0} )");
    REQUIRE(v.kind == JsonValue::Kind::object);
    const JsonValue* a = v.member("a");  // the first of two "a"
    REQUIRE(a != nullptr);
    REQUIRE(a->kind == JsonValue::Kind::array);
    REQUIRE(a->items.size() == 6);
    CHECK(a->items[0].text == "1");
    CHECK(a->items[1].text == "-2.5e3");
    CHECK(a->items[2].kind == JsonValue::Kind::boolean);
    CHECK(a->items[2].boolean);
    CHECK_FALSE(a->items[3].boolean);
    CHECK(a->items[4].kind == JsonValue::Kind::null);
    CHECK(a->items[5].text == "x\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
    CHECK(v.member("b")->kind == JsonValue::Kind::object);
    CHECK(v.member("c")->items.empty());
    CHECK(v.member("zz") == nullptr);
    CHECK(a->member("x") == nullptr);  // not an object
    CHECK(colo::json_int64(parse_json("\"9223372036854775807\""), "r") == INT64_MAX);
    CHECK(colo::json_int64(parse_json("12"), "r") == 12);
}

TEST_CASE("json: malformed text names what and where") {
    CHECK(error_of([] { (void)parse_json(""); }) == "JSON: unexpected end at offset 0");
    CHECK(error_of([] { (void)parse_json("{\"a\" 1}"); }) == "JSON: expected ':' at offset 5");
    CHECK(error_of([] { (void)parse_json("{\"a\":1,}"); }) == "JSON: expected a member name at offset 7");
    CHECK(error_of([] { (void)parse_json("[1 2]"); }) == "JSON: expected ',' at offset 3");
    CHECK(error_of([] { (void)parse_json("{} x"); }) == "JSON: unexpected text after the value at offset 3");
    CHECK(error_of([] { (void)parse_json("\"abc"); }) == "JSON: unterminated string at offset 4");
    CHECK(error_of([] { (void)parse_json("\"a\nb\""); }) == "JSON: control character in a string at offset 2");
    CHECK(error_of([] { (void)parse_json("\"\\q\""); }) == "JSON: bad escape at offset 2");
    CHECK(error_of([] { (void)parse_json("\"\\ud800x\""); }) == "JSON: lone surrogate in \\u escape at offset 7");
    CHECK(error_of([] { (void)parse_json("\"\\u12g4\""); }) == "JSON: bad hex digit in \\u escape at offset 5");
    CHECK(error_of([] { (void)parse_json("01"); }) == "JSON: unexpected text after the value at offset 1");
    CHECK(error_of([] { (void)parse_json("-"); }) == "JSON: expected a digit at offset 1");
    CHECK(error_of([] { (void)parse_json("nul"); }) == "JSON: expected a value at offset 0");
    CHECK(error_of([] { (void)parse_json("1."); }) == "JSON: expected a digit at offset 2");
    // Deep nesting is refused, not recursed into until the stack runs out.
    CHECK(error_of([] { (void)parse_json(std::string(100000, '[')); }) == "JSON: nested deeper than 64 at offset 64");
    CHECK(error_of([] { (void)colo::json_int64(parse_json("\"12x\""), "r"); }) == "r \"12x\" is not a whole number that fits 64 bits");
    CHECK(error_of([] { (void)colo::json_int64(parse_json("\"9223372036854775808\""), "r") ; }) ==
          "r \"9223372036854775808\" is not a whole number that fits 64 bits");
    CHECK(error_of([] { (void)colo::json_int64(parse_json("true"), "r"); }) == "r is a boolean, not a whole number");
}

namespace {
const std::string kKey = "/colo-replicate/web1/owner";
const std::string kHeader = R"("header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"})";
// kKey and "me" in base64.
const std::string kKv = R"({"key":"L2NvbG8tcmVwbGljYXRlL3dlYjEvb3duZXI=","create_revision":"2","mod_revision":"2","version":"1","value":"bWU="})";
}  // namespace

TEST_CASE("etcd json: the request bodies") {
    CHECK(etcd_json::range_request(kKey) == R"({"key":"L2NvbG8tcmVwbGljYXRlL3dlYjEvb3duZXI="})");
    const std::string k = "\"L2NvbG8tcmVwbGljYXRlL3dlYjEvb3duZXI=\"";
    CHECK(etcd_json::claim_request(kKey, "me", 7) ==
          R"({"compare":[{"target":"MOD","result":"EQUAL","key":)" + k + R"(,"mod_revision":"7"}],)" +
              R"("success":[{"request_put":{"key":)" + k + R"(,"value":"bWU="}},{"request_range":{"key":)" + k + "}}]," +
              R"("failure":[{"request_range":{"key":)" + k + "}}]}");
    // An owner id is opaque bytes: quotes and backslashes cannot break the JSON (base64).
    const JsonValue parsed = parse_json(etcd_json::claim_request(kKey, "a\"b\\c", 0));
    CHECK(base64_decode(parsed.member("success")->items[0].member("request_put")->member("value")->text) == "a\"b\\c");
}

TEST_CASE("etcd json: owner from a range answer") {
    CHECK(etcd_json::owner_from_range("{" + kHeader + "}", kKey) == colo::Owner{});
    CHECK(etcd_json::owner_from_range("{" + kHeader + R"(,"kvs":[)" + kKv + R"(],"count":"1"})", kKey) == colo::Owner{"me", 2});
    // An empty value is left out by protobuf's JSON.
    CHECK(etcd_json::owner_from_range(R"({"kvs":[{"key":"L2NvbG8tcmVwbGljYXRlL3dlYjEvb3duZXI=","mod_revision":9}]})", kKey) ==
          colo::Owner{"", 9});
}

TEST_CASE("etcd json: a malformed range answer is an error naming the field") {
    const auto owner = [](const std::string& json) {
        return error_of([&] { (void)etcd_json::owner_from_range(json, kKey); });
    };
    CHECK(owner("<html>") == "JSON: expected a value at offset 0");
    CHECK(owner("[]") == "range answer is an array, not an object");
    CHECK(owner(R"({"kvs":{}})") == "range answer.kvs is an object, not an array");
    CHECK(owner(R"({"kvs":[]})") == "range answer.kvs holds 0 keys, not 1");
    CHECK(owner(R"({"kvs":[1]})") == "range answer.kvs[0] is a number, not an object");
    CHECK(owner(R"({"kvs":[{"mod_revision":"2"}]})") == "range answer.kvs[0] has no \"key\"");
    CHECK(owner(R"({"kvs":[{"key":"eA==","mod_revision":"2"}]})") == "range answer.kvs[0].key is not the key asked for");
    CHECK(owner(R"({"kvs":[{"key":"L2NvbG8tcmVwbGljYXRlL3dlYjEvb3duZXI=","value":"bWU="}]})") ==
          "range answer.kvs[0] has no \"mod_revision\"");
    CHECK(owner(R"({"kvs":[{"key":"L2NvbG8tcmVwbGljYXRlL3dlYjEvb3duZXI=","value":"bW","mod_revision":"2"}]})") ==
          "base64: length 2 is not a multiple of 4 at offset 2");
    CHECK(owner(R"({"kvs":[{"key":"L2NvbG8tcmVwbGljYXRlL3dlYjEvb3duZXI=","mod_revision":"-1"}]})") ==
          "range answer.kvs[0].mod_revision -1 is not positive");
}

TEST_CASE("etcd json: a claim's answer, won and lost") {
    const std::string won = "{" + kHeader + R"(,"succeeded":true,"responses":[{"response_put":{"header":{"revision":"2"}}},)" +
                            R"({"response_range":{"header":{"revision":"2"},"kvs":[)" + kKv + R"(],"count":"1"}}]})";
    const auto w = etcd_json::claim_from_txn(won, kKey);
    CHECK(w.succeeded);
    CHECK(w.owner == colo::Owner{"me", 2});
    // Lost: "succeeded" is left out (false), only the read-back ran.
    const std::string lost = "{" + kHeader + R"(,"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[)" + kKv + "]}}]}";
    const auto l = etcd_json::claim_from_txn(lost, kKey);
    CHECK_FALSE(l.succeeded);
    CHECK(l.owner == colo::Owner{"me", 2});
    // Lost on a key that is gone: nobody owns it.
    const auto gone = etcd_json::claim_from_txn(R"({"responses":[{"response_range":{"header":{}}}]})", kKey);
    CHECK_FALSE(gone.succeeded);
    CHECK(gone.owner == colo::Owner{});

    const auto txn = [](const std::string& json) { return error_of([&] { (void)etcd_json::claim_from_txn(json, kKey); }); };
    CHECK(txn(R"({"succeeded":"yes","responses":[]})") == "txn answer's succeeded is a string");
    CHECK(txn(R"({"succeeded":true})") == "txn answer has no \"responses\"");
    CHECK(txn(R"({"succeeded":true,"responses":[{"response_range":{}}]})") == "txn answer holds 1 responses, not 2");
    CHECK(txn(R"({"responses":[{"response_put":{}}]})") == "txn answer's last response is not a response_range");
}

TEST_CASE("etcd json: an error answer is unreachable when etcd cannot decide, an error otherwise") {
    const auto answer = [](int status, std::string reason, std::string body) {
        colo::HttpResponse r;
        r.status = status;
        r.reason = std::move(reason);
        r.body = std::move(body);
        return r;
    };
    CHECK(etcd_json::answer_body(answer(200, "OK", "{}"), "/v3/kv/range") == "{}");
    const auto kind = [](const colo::HttpResponse& r) -> std::string {
        try {
            (void)etcd_json::answer_body(r, "/v3/kv/txn");
        } catch (const colo::WitnessUnreachable& e) {
            return std::string("unreachable: ") + e.what();
        } catch (const colo::Error& e) {
            return std::string("error: ") + e.what();
        }
        return "(no error)";
    };
    // What etcd 3.4.23 answered a txn with an unknown compare target.
    CHECK(kind(answer(400, "Bad Request",
                      R"({"error":"unknown value \"BOGUS\" for enum etcdserverpb.Compare_CompareTarget","message":"unknown value \"BOGUS\" for enum etcdserverpb.Compare_CompareTarget","code":3})")) ==
          "error: /v3/kv/txn: etcd answered 400 Bad Request: unknown value \"BOGUS\" for enum etcdserverpb.Compare_CompareTarget");
    CHECK(kind(answer(404, "Not Found", "404 page not found\n")) == "error: /v3/kv/txn: etcd answered 404 Not Found: 404 page not found");
    // No leader or no quorum: nobody may act on it, as on silence.
    CHECK(kind(answer(503, "Service Unavailable", R"({"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14})")) ==
          "unreachable: /v3/kv/txn: etcd answered 503 Service Unavailable: etcdserver: no leader");
    CHECK(kind(answer(500, "Internal Server Error", R"({"message":"etcdserver: request timed out","code":4})")) ==
          "unreachable: /v3/kv/txn: etcd answered 500 Internal Server Error: etcdserver: request timed out");
    CHECK(kind(answer(502, "Bad Gateway", "<html>\r\nproxy\r\n</html>")) == "unreachable: /v3/kv/txn: etcd answered 502 Bad Gateway: <html>  proxy  </html>");
}
