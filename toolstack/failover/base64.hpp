// Base64 (RFC 4648 §4, the standard alphabet with '=' padding): how etcd's JSON gateway carries
// keys and values, which are bytes.
#pragma once

#include <string>
#include <string_view>

namespace colo {

[[nodiscard]] std::string base64_encode(std::string_view bytes);

// Strict: the length is a multiple of 4, padding only at the end, no whitespace, and the bits
// that padding leaves over are zero. Throws colo::Error naming the offset of the first bad
// character.
[[nodiscard]] std::string base64_decode(std::string_view text);

}  // namespace colo
