// One HTTP/1.1 request and its answer over plain TCP, for the witness (etcd's JSON gateway): a
// POST with a JSON body and "Connection: close", the answer read until it is complete
// (Content-Length, chunked, or the end of the connection), everything before one deadline.
// One connection per request: the witness is asked only at transitions (a takeover, a lost
// peer), so a connection's setup (about 0.1 ms on loopback) costs nothing that matters, and no
// half-dead kept-alive connection can be picked up at the moment it is needed.
//
// The message parts (format_http_post, parse_http_response) are pure, for unit tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/error.hpp"
#include "toolstack/transport/address_lookup.hpp"

namespace colo {

// The most an answer may hold, head and body: the witness's answers are a few hundred bytes.
inline constexpr std::size_t kMaxHttpResponse = 1024 * 1024;

struct HttpResponse {
    int status = 0;      // 200
    std::string reason;  // "OK"
    std::vector<std::pair<std::string, std::string>> headers;  // as sent, values trimmed
    std::string body;    // decoded when it came chunked

    // The first header of that name (compared without case), or nullptr.
    [[nodiscard]] const std::string* header(std::string_view name) const;
};

// The server did not answer: the connection was refused or reset, no route, the server closed
// it before a whole answer, or the deadline passed. The message names which.
class HttpUnreachable : public Error {
public:
    using Error::Error;
};

// "POST PATH HTTP/1.1" with Host, Content-Type: application/json, Content-Length and
// Connection: close.
[[nodiscard]] std::string format_http_post(std::string_view host, std::string_view path, std::string_view body);

// The answer in `bytes` once it is whole; nullopt while more is needed. `at_end`: the connection
// has ended, so a body without a length ends here, and an answer still incomplete is an error.
// Throws colo::Error naming what is malformed (status line, a header, a length, a chunk), or
// when the answer exceeds kMaxHttpResponse. A 1xx interim answer is not expected (no
// "Expect: 100-continue" is sent) and is returned like any other.
[[nodiscard]] std::optional<HttpResponse> parse_http_response(std::string_view bytes, bool at_end);

// Connects to the first of `addresses` that accepts, sends `request`, returns the parsed answer.
// All before `deadline`; `budget` (the time the caller gave) only names it in messages. Throws
// HttpUnreachable as above, colo::Error for a malformed answer.
[[nodiscard]] HttpResponse http_exchange(const addrinfo* addresses, std::string_view request,
                                         std::chrono::steady_clock::time_point deadline,
                                         std::chrono::milliseconds budget);

}  // namespace colo
