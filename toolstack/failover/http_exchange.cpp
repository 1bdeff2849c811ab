#include "toolstack/failover/http_exchange.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "backends/unique_fd.hpp"

namespace colo {

namespace {

using Clock = std::chrono::steady_clock;

bool same_without_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

[[noreturn]] void malformed(const std::string& why) { throw Error("malformed HTTP answer: " + why); }

std::string quoted(std::string_view s) {
    // For messages: at most 60 characters, so a garbage answer cannot flood a log line.
    return "\"" + std::string(s.substr(0, 60)) + (s.size() > 60 ? "...\"" : "\"");
}

// The status line: "HTTP/1.1 200 OK".
void parse_status_line(std::string_view line, HttpResponse& response) {
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ' || (line.size() > 12 && line[12] != ' '))
        malformed("status line " + quoted(line));
    const auto [ptr, ec] = std::from_chars(line.data() + 9, line.data() + 12, response.status);
    if (ec != std::errc{} || ptr != line.data() + 12 || response.status < 100)
        malformed("status line " + quoted(line));
    response.reason = std::string(trim(line.substr(12)));
}

// Decodes a chunked body from `body`; false while incomplete.
bool decode_chunked(std::string_view body, std::string& out) {
    std::size_t at = 0;
    for (;;) {
        const std::size_t eol = body.find("\r\n", at);
        if (eol == std::string_view::npos) return false;
        std::string_view size_text = body.substr(at, eol - at);
        size_text = trim(size_text.substr(0, size_text.find(';')));  // chunk extensions are ignored
        std::size_t size = 0;
        const auto [ptr, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
        if (size_text.empty() || ec != std::errc{} || ptr != size_text.data() + size_text.size())
            malformed("chunk size " + quoted(size_text));
        if (size > kMaxHttpResponse) malformed("chunk of " + std::to_string(size) + " bytes");
        at = eol + 2;
        if (size == 0) {
            // Trailer lines, then the empty line that ends the message.
            for (;;) {
                const std::size_t end = body.find("\r\n", at);
                if (end == std::string_view::npos) return false;
                if (end == at) return true;
                at = end + 2;
            }
        }
        if (body.size() < at + size + 2) return false;
        if (body.substr(at + size, 2) != "\r\n") malformed("chunk of " + std::to_string(size) + " bytes not followed by CRLF");
        out.append(body.substr(at, size));
        at += size + 2;
    }
}

bool poll_until(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
        if (rc > 0) return true;
        if (rc < 0 && errno != EINTR) throw SystemError("poll", errno);
    }
}

std::string within(std::chrono::milliseconds budget, const char* doing) {
    return "no answer within " + std::to_string(budget.count()) + " ms (" + doing + ")";
}

// A socket connected to the first address that accepts before `deadline`.
UniqueFd connect_any(const addrinfo* addresses, Clock::time_point deadline, std::chrono::milliseconds budget) {
    std::string last = "no address to connect to";
    for (const addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
        const std::string where = "connect to " + describe_address(a->ai_addr, a->ai_addrlen);
        UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
        if (!fd.valid()) throw SystemError("socket", errno, where);
        int error = 0;
        if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
            error = errno;
            if (error == EINPROGRESS) {
                if (!poll_until(fd.get(), POLLOUT, deadline)) throw HttpUnreachable(where + ": " + within(budget, "connecting"));
                socklen_t length = sizeof error;
                check_syscall(::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length), "getsockopt(SO_ERROR)");
            }
        }
        if (error == 0) return fd;
        last = where + ": " + std::strerror(error);
    }
    throw HttpUnreachable(last);
}

}  // namespace

const std::string* HttpResponse::header(std::string_view name) const {
    for (const auto& [key, value] : headers)
        if (same_without_case(key, name)) return &value;
    return nullptr;
}

std::string format_http_post(std::string_view host, std::string_view path, std::string_view body) {
    std::string request;
    request.reserve(160 + host.size() + path.size() + body.size());
    request.append("POST ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
    request.append("\r\nContent-Type: application/json\r\nContent-Length: ").append(std::to_string(body.size()));
    request.append("\r\nConnection: close\r\n\r\n").append(body);
    return request;
}

std::optional<HttpResponse> parse_http_response(std::string_view bytes, bool at_end) {
    if (bytes.size() > kMaxHttpResponse) malformed("larger than " + std::to_string(kMaxHttpResponse) + " bytes");
    const std::size_t head_end = bytes.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
        // A whole status line that is wrong is reported now, not after the deadline.
        const std::size_t eol = bytes.find("\r\n");
        if (eol != std::string_view::npos) {
            HttpResponse probe;
            parse_status_line(bytes.substr(0, eol), probe);
        } else if (bytes.size() >= 8 && bytes.substr(0, 7) != "HTTP/1.") {
            malformed("status line " + quoted(bytes));
        }
        return std::nullopt;
    }
    HttpResponse response;
    std::string_view head = bytes.substr(0, head_end);
    std::size_t eol = head.find("\r\n");
    parse_status_line(head.substr(0, eol), response);
    while (eol != std::string_view::npos) {
        head.remove_prefix(eol + 2);
        eol = head.find("\r\n");
        const std::string_view line = head.substr(0, eol);
        const std::size_t colon = line.find(':');
        if (colon == 0 || colon == std::string_view::npos || line.substr(0, colon).find_first_of(" \t") != std::string_view::npos)
            malformed("header line " + quoted(line));
        response.headers.emplace_back(std::string(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
    }
    const std::string_view body = bytes.substr(head_end + 4);
    if (const std::string* coding = response.header("Transfer-Encoding")) {
        if (!same_without_case(*coding, "chunked")) malformed("Transfer-Encoding " + quoted(*coding));
        if (!decode_chunked(body, response.body)) return std::nullopt;
        return response;
    }
    if (const std::string* length_text = response.header("Content-Length")) {
        std::size_t length = 0;
        const auto [ptr, ec] = std::from_chars(length_text->data(), length_text->data() + length_text->size(), length);
        if (length_text->empty() || ec != std::errc{} || ptr != length_text->data() + length_text->size())
            malformed("Content-Length " + quoted(*length_text));
        if (length > kMaxHttpResponse) malformed("Content-Length " + *length_text + " larger than " + std::to_string(kMaxHttpResponse));
        if (body.size() < length) return std::nullopt;
        response.body = std::string(body.substr(0, length));
        return response;
    }
    // No length: 1xx, 204 and 304 have no body (RFC 9112 §6.3); anything else ends with the connection.
    if (response.status < 200 || response.status == 204 || response.status == 304) return response;
    if (!at_end) return std::nullopt;
    response.body = std::string(body);
    return response;
}

HttpResponse http_exchange(const addrinfo* addresses, std::string_view request, Clock::time_point deadline,
                           std::chrono::milliseconds budget) {
    UniqueFd fd = connect_any(addresses, deadline, budget);
    for (std::size_t sent = 0; sent < request.size();) {
        const ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n >= 0) {
            sent += static_cast<std::size_t>(n);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!poll_until(fd.get(), POLLOUT, deadline)) throw HttpUnreachable(within(budget, "sending the request"));
        } else if (errno != EINTR) {
            throw HttpUnreachable(std::string("send: ") + std::strerror(errno));
        }
    }
    std::string answer;
    char chunk[16 * 1024];
    for (;;) {
        const ssize_t n = ::recv(fd.get(), chunk, sizeof chunk, 0);
        if (n > 0) {
            answer.append(chunk, static_cast<std::size_t>(n));
            if (auto response = parse_http_response(answer, false)) return std::move(*response);
            // A server that trickles bytes does not stretch the deadline.
            if (Clock::now() >= deadline) throw HttpUnreachable(within(budget, "reading the answer"));
        } else if (n == 0) {
            if (auto response = parse_http_response(answer, true)) return std::move(*response);
            throw HttpUnreachable(answer.empty() ? "the server closed the connection without answering"
                                                 : "the server closed the connection after " + std::to_string(answer.size()) +
                                                       " bytes of an answer");
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!poll_until(fd.get(), POLLIN, deadline)) throw HttpUnreachable(within(budget, "waiting for the answer"));
        } else if (errno != EINTR) {
            throw HttpUnreachable(std::string("recv: ") + std::strerror(errno));
        }
    }
}

}  // namespace colo
