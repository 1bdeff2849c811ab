// A small JSON reader (RFC 8259) for the answers of etcd's JSON gateway: the whole text becomes a
// tree of JsonValue, and the caller picks the few fields it needs. Numbers stay as their text
// (etcd sends 64-bit revisions as strings anyway; json_int64 reads either form).
//
// Bounded for a hostile or broken peer: nesting deeper than kMaxJsonDepth is refused, so a
// "[[[[..." answer cannot exhaust the stack. The caller bounds the text's length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace colo {

inline constexpr std::size_t kMaxJsonDepth = 64;

struct JsonValue {
    enum class Kind { null, boolean, number, string, array, object };
    Kind kind = Kind::null;
    bool boolean = false;
    std::string text;  // a string's decoded UTF-8, or a number as written
    std::vector<JsonValue> items;                             // an array's elements
    std::vector<std::pair<std::string, JsonValue>> members;  // an object's members, in order

    // The member named `key` (the first, if repeated), or nullptr when absent or not an object.
    [[nodiscard]] const JsonValue* member(std::string_view key) const;
};

// Parses one JSON value with nothing but whitespace around it. Throws colo::Error
// ("JSON: expected ':' at offset 17").
[[nodiscard]] JsonValue parse_json(std::string_view text);

// A whole number from a string ("42", as protobuf's JSON writes 64-bit integers) or a number
// (42). Throws colo::Error naming `what` when it is neither or does not fit.
[[nodiscard]] std::int64_t json_int64(const JsonValue& value, const std::string& what);

// `kind` as a word for messages ("an object").
[[nodiscard]] const char* describe(JsonValue::Kind kind);

}  // namespace colo
