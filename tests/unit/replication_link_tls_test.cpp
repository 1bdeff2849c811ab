// The replication link over TLS 1.3 on loopback: the same key connects and carries messages both
// ways; another key, no key, or TLS on one side only is refused before a header is read, with a
// line on each side; a relay that flips, drops or duplicates bytes of the encrypted stream is
// detected by the receiver, and the changed message never reaches its user; x509 certificates
// from the test's own CA connect, one from another CA is refused.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/error.hpp"
#include "tests/unit/error_of.hpp"
#include "tests/unit/linux_test_images.hpp"
#include "tests/unit/protocol_sample_messages.hpp"
#include "toolstack/replication_link.hpp"

using namespace std::chrono_literals;
using namespace colo;
using colo::test::error_of;

namespace {

Endpoint loopback(std::uint16_t port) { return Endpoint{"127.0.0.1", port}; }

LinkKey key_of(unsigned char seed) {
    std::array<std::byte, LinkKey::kBytes> bytes{};
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(seed + i * 13);
    return LinkKey::from_bytes(bytes);
}

std::shared_ptr<const TlsContext> psk(unsigned char seed, TlsRole role) { return std::make_shared<TlsContext>(key_of(seed), role); }

// The lines `refused` was called with, from the accepting thread.
struct Refusals {
    std::mutex mutex;
    std::vector<std::string> lines;
    std::function<void(const std::string&)> callback() {
        return [this](const std::string& line) {
            std::lock_guard lock(mutex);
            lines.push_back(line);
        };
    }
    std::vector<std::string> get() {
        std::lock_guard lock(mutex);
        return lines;
    }
};

// Receives until `wanted_epoch` or an error; returns the error's text, or "" when it came.
// Fails the test on a message other than a heartbeat or a CheckpointBegin.
std::string receive_until(Channel& channel, std::uint64_t wanted_epoch, Channel::Clock::time_point deadline) {
    try {
        while (Channel::Clock::now() < deadline) {
            const auto got = channel.receive(deadline);
            if (!got) continue;
            if (std::holds_alternative<protocol::Heartbeat>(*got)) continue;
            REQUIRE(std::holds_alternative<protocol::CheckpointBegin>(*got));
            if (std::get<protocol::CheckpointBegin>(*got).epoch == wanted_epoch) return "";
        }
    } catch (const Error& e) {
        return e.what();
    }
    return "(nothing within the deadline)";
}

// Receives until an error (its text) or the deadline ("(nothing within the deadline)"); counts
// each CheckpointBegin that arrived by its epoch in `epochs`.
std::string receive_until_error(Channel& channel, std::map<std::uint64_t, int>& epochs, Channel::Clock::time_point deadline) {
    try {
        while (Channel::Clock::now() < deadline) {
            const auto got = channel.receive(deadline);
            if (!got || std::holds_alternative<protocol::Heartbeat>(*got)) continue;
            REQUIRE(std::holds_alternative<protocol::CheckpointBegin>(*got));
            ++epochs[std::get<protocol::CheckpointBegin>(*got).epoch];
        }
    } catch (const Error& e) {
        return e.what();
    }
    return "(nothing within the deadline)";
}

struct LinkPair {
    std::unique_ptr<ReplicationLink> sender;
    std::unique_ptr<ReplicationLink> receiver;
};

// A sender and a receiver on loopback, both with `sender_tls`/`receiver_tls`; the sender
// connects to `connect_port` (the listener's, or a relay's in front of it).
LinkPair connect_pair(TcpListener& listener, std::uint16_t connect_port, std::shared_ptr<const TlsContext> sender_tls,
                      std::shared_ptr<const TlsContext> receiver_tls) {
    auto receiving = std::async(std::launch::async, [&] { return ReplicationLink::accept(listener, 5000ms, 2000ms, {}, receiver_tls); });
    auto sender = ReplicationLink::connect(loopback(connect_port), protocol::test::sample_header(), 2000ms, sender_tls);
    return {std::move(sender), receiving.get()};
}

}  // namespace

TEST_CASE("replication link over TLS: the same key connects, and messages cross both ways") {
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 2000ms});
    auto [sender, receiver] = connect_pair(listener, listener.port(), psk(1, TlsRole::client), psk(1, TlsRole::server));
    CHECK(sender->secured());
    CHECK(receiver->secured());
    CHECK(receiver->header() == protocol::test::sample_header());
    sender->channel().send(protocol::CheckpointBegin{5});
    CHECK(receive_until(receiver->channel(), 5, Channel::Clock::now() + 5s) == "");
    receiver->channel().send(protocol::CheckpointBegin{6});
    CHECK(receive_until(sender->channel(), 6, Channel::Clock::now() + 5s) == "");
}

TEST_CASE("replication link over TLS: megabytes both ways at once, through one TLS session per side") {
    // Each side's channel reads on its thread while another thread writes, and the keepalive
    // writes too: all through one SSL (the session's mutex). The TSan tier checks the sharing.
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 2000ms});
    auto [sender, receiver] = connect_pair(listener, listener.port(), psk(2, TlsRole::client), psk(2, TlsRole::server));
    constexpr std::size_t kRecords = 48;
    constexpr std::size_t kBytes = 128 * 1024;  // 6 MiB each way
    const auto payload = [](std::size_t record, unsigned char side) {
        std::vector<std::byte> bytes(kBytes);
        for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>((i * 31 + record * 7 + side) & 0xff);
        return bytes;
    };
    const auto send_all = [&](Channel& channel, unsigned char side) {
        for (std::size_t r = 0; r < kRecords; ++r) channel.send(protocol::SecondaryOutput{r * kBytes, payload(r, side)});
    };
    // Returns how many records arrived whole and in order.
    const auto receive_all = [&](Channel& channel, unsigned char side) {
        std::size_t good = 0;
        const auto deadline = Channel::Clock::now() + 30s;
        while (good < kRecords && Channel::Clock::now() < deadline) {
            const auto got = channel.receive(deadline);
            if (!got || std::holds_alternative<protocol::Heartbeat>(*got)) continue;
            const auto* output = std::get_if<protocol::SecondaryOutput>(&*got);
            if (output == nullptr || output->offset != good * kBytes || output->bytes != payload(good, side)) break;
            ++good;
        }
        return good;
    };
    auto a = std::async(std::launch::async, [&] { send_all(sender->channel(), 'a'); });
    auto b = std::async(std::launch::async, [&] { send_all(receiver->channel(), 'b'); });
    auto at_receiver = std::async(std::launch::async, [&] { return receive_all(receiver->channel(), 'a'); });
    const std::size_t at_sender = receive_all(sender->channel(), 'b');
    a.get();
    b.get();
    CHECK(at_receiver.get() == kRecords);
    CHECK(at_sender == kRecords);
}

TEST_CASE("replication link over TLS: a sender with another key is refused on both sides, and the right one gets in") {
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 2000ms});
    Refusals refusals;
    auto receiving = std::async(std::launch::async, [&] {
        return ReplicationLink::accept(listener, 10000ms, 2000ms, refusals.callback(), psk(3, TlsRole::server));
    });
    const std::string error = error_of(
        [&] { (void)ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms, psk(4, TlsRole::client)); });
    CAPTURE(error);
    CHECK(error.starts_with("TLS handshake with 127.0.0.1:" + std::to_string(listener.port()) + " failed: "));
    CHECK(error.find('\n') == std::string::npos);
    // The receiver said why, and is still waiting: the right key connects.
    auto sender = ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms, psk(3, TlsRole::client));
    auto receiver = receiving.get();
    const auto lines = refusals.get();
    REQUIRE(lines.size() == 1);
    CAPTURE(lines[0]);
    CHECK(lines[0].find("the peer's key (id " + key_of(4).id() + ") is not this host's (id " + key_of(3).id() + ")") != std::string::npos);
    CHECK(lines[0].find('\n') == std::string::npos);
    CHECK(receiver->secured());
    sender->channel().send(protocol::CheckpointBegin{9});
    CHECK(receive_until(receiver->channel(), 9, Channel::Clock::now() + 5s) == "");
}

TEST_CASE("replication link over TLS: a sender in clear is refused by a TLS receiver, which then takes a TLS sender") {
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 2000ms});
    Refusals refusals;
    auto receiving = std::async(std::launch::async, [&] {
        return ReplicationLink::accept(listener, 10000ms, 2000ms, refusals.callback(), psk(5, TlsRole::server));
    });
    const std::string error =
        error_of([&] { (void)ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms); });
    CAPTURE(error);
    CHECK(error.find("takes TLS connections only") != std::string::npos);
    CHECK(error.find('\n') == std::string::npos);
    auto sender = ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms, psk(5, TlsRole::client));
    auto receiver = receiving.get();
    CHECK(receiver->secured());
    const auto lines = refusals.get();
    REQUIRE(lines.size() == 1);
    CAPTURE(lines[0]);
    CHECK(lines[0].find("in clear") != std::string::npos);
}

TEST_CASE("replication link over TLS: a TLS sender is refused by a receiver without a key, which then takes a sender in clear") {
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 2000ms});
    Refusals refusals;
    auto receiving = std::async(std::launch::async, [&] { return ReplicationLink::accept(listener, 10000ms, 2000ms, refusals.callback()); });
    const std::string error = error_of(
        [&] { (void)ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms, psk(6, TlsRole::client)); });
    CAPTURE(error);
    CHECK(error.starts_with("TLS handshake with 127.0.0.1:" + std::to_string(listener.port()) + " failed: "));
    CHECK(error.find('\n') == std::string::npos);
    auto sender = ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms);
    auto receiver = receiving.get();
    CHECK(!receiver->secured());
    const auto lines = refusals.get();
    REQUIRE(lines.size() == 1);
    CAPTURE(lines[0]);
    CHECK(lines[0].find("has no --key") != std::string::npos);
}

namespace {

// A man in the middle on loopback: accepts one connection, connects to `target`, and forwards
// TLS records both ways, whole. Once armed, it changes the next record from the sender to the
// receiver.
class Relay {
public:
    enum class Fault { none, flip_bit, drop_bytes, drop_record, duplicate_record, duplicate_bytes };

    explicit Relay(std::uint16_t target) : target_(target) {
        listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listen_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(listen_, 1) == 0);
        socklen_t length = sizeof addr;
        REQUIRE(::getsockname(listen_, reinterpret_cast<sockaddr*>(&addr), &length) == 0);
        port_ = ntohs(addr.sin_port);
        main_ = std::thread([this] { run(); });
    }
    ~Relay() {
        ::shutdown(listen_, SHUT_RDWR);
        for (int fd : {sender_.load(), receiver_.load()})
            if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
        main_.join();
        ::close(listen_);
        for (int fd : {sender_.load(), receiver_.load()})
            if (fd >= 0) ::close(fd);
    }
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    [[nodiscard]] std::uint16_t port() const { return port_; }
    void arm(Fault fault) { fault_ = fault; }
    [[nodiscard]] bool applied() const { return applied_; }

private:
    void run() {
        const int sender = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
        if (sender < 0) return;
        sender_ = sender;
        const int receiver = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(target_);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        receiver_ = receiver;
        if (::connect(receiver, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
            ::shutdown(sender, SHUT_RDWR);
            return;
        }
        std::thread back([this, receiver, sender] { pump(receiver, sender, false); });
        pump(sender, receiver, true);
        back.join();
    }

    static bool read_fully(int fd, std::byte* out, std::size_t size) {
        while (size > 0) {
            const ssize_t n = ::recv(fd, out, size, 0);
            if (n <= 0) return false;
            out += n;
            size -= static_cast<std::size_t>(n);
        }
        return true;
    }
    static bool write_fully(int fd, const std::vector<std::byte>& bytes) {
        std::size_t done = 0;
        while (done < bytes.size()) {
            const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
            if (n <= 0) return false;
            done += static_cast<std::size_t>(n);
        }
        return true;
    }

    // Record by record (5-byte header: type, version, length), so a fault hits one record.
    void pump(int from, int to, bool to_receiver) {
        for (;;) {
            std::vector<std::byte> record(5);
            if (!read_fully(from, record.data(), 5)) break;
            const std::size_t length = std::to_integer<std::size_t>(record[3]) << 8 | std::to_integer<std::size_t>(record[4]);
            record.resize(5 + length);
            if (!read_fully(from, record.data() + 5, length)) break;
            const Fault fault = to_receiver ? fault_.exchange(Fault::none) : Fault::none;
            std::vector<std::byte> out = record;
            switch (fault) {
                case Fault::none: break;
                case Fault::flip_bit: out[5 + length / 2] ^= std::byte{0x08}; break;
                case Fault::drop_bytes: out.erase(out.begin() + 5 + static_cast<std::ptrdiff_t>(length / 2), out.begin() + 5 + static_cast<std::ptrdiff_t>(length / 2) + 8); break;
                case Fault::drop_record: out.clear(); break;
                case Fault::duplicate_record: out.insert(out.end(), record.begin(), record.end()); break;
                case Fault::duplicate_bytes: out.insert(out.begin() + 5 + static_cast<std::ptrdiff_t>(length / 2), record.begin() + 5, record.begin() + 13); break;
            }
            if (fault != Fault::none) applied_ = true;
            if (!write_fully(to, out)) break;
        }
        ::shutdown(to, SHUT_WR);
    }

    std::uint16_t target_;
    std::uint16_t port_ = 0;
    int listen_ = -1;
    std::atomic<int> sender_{-1};
    std::atomic<int> receiver_{-1};
    std::atomic<Fault> fault_{Fault::none};
    std::atomic<bool> applied_{false};
    std::thread main_;
};

}  // namespace

TEST_CASE("replication link over TLS: a relay that changes the encrypted stream is detected, and nothing changed is delivered") {
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 2000ms});
    Relay relay(listener.port());
    auto [sender, receiver] = connect_pair(listener, relay.port(), psk(7, TlsRole::client), psk(7, TlsRole::server));
    REQUIRE(receiver->secured());
    // Through the relay untouched, messages arrive.
    sender->channel().send(protocol::CheckpointBegin{1});
    REQUIRE(receive_until(receiver->channel(), 1, Channel::Clock::now() + 5s) == "");

    const std::array<std::pair<const char*, Relay::Fault>, 5> faults = {{
        {"one bit flipped", Relay::Fault::flip_bit},
        {"8 bytes dropped from a record", Relay::Fault::drop_bytes},
        {"a record dropped", Relay::Fault::drop_record},
        {"a record sent twice", Relay::Fault::duplicate_record},
        {"8 bytes repeated inside a record", Relay::Fault::duplicate_bytes},
    }};
    std::size_t which = 0;
    SUBCASE("one bit flipped") { which = 0; }
    SUBCASE("8 bytes dropped from a record") { which = 1; }
    SUBCASE("a record dropped") { which = 2; }
    SUBCASE("a record sent twice") { which = 3; }
    SUBCASE("8 bytes repeated inside a record") { which = 4; }
    const std::string fault_name = faults[which].first;
    CAPTURE(fault_name);
    relay.arm(faults[which].second);
    // The next record (this message, or a keepalive heartbeat just before it) is changed. The
    // receiver then stops reading: what it delivered is what the sender sent, in order, up to
    // the changed record, and its user is told why.
    sender->channel().send(protocol::CheckpointBegin{2});
    sender->channel().send(protocol::CheckpointBegin{3});
    std::map<std::uint64_t, int> epochs;
    const std::string error = receive_until_error(receiver->channel(), epochs, Channel::Clock::now() + 5s);
    CAPTURE(error);
    CHECK(relay.applied());
    CHECK(error.find("a TLS record failed authentication") != std::string::npos);
    CHECK(error.find("the stream was changed in transit") != std::string::npos);
    CHECK(error.find('\n') == std::string::npos);
    if (faults[which].second == Relay::Fault::duplicate_record) {
        // The first copy is the sender's own record; the replayed copy is refused.
        CHECK(epochs[2] <= 1);
        CHECK(epochs[3] == 0);
    } else {
        // A changed, shortened or lengthened record, or one missing: nothing from there on.
        CHECK(epochs[2] == 0);
        CHECK(epochs[3] == 0);
    }
    // The link stays failed.
    CHECK_THROWS_AS((void)receiver->channel().receive(Channel::Clock::now() + 100ms), Error);
}

namespace {

// Runs a shell command; true when it exits 0.
bool run(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }

// A CA and certificates it signed, made with the openssl command into a scratch folder.
class TestPki {
public:
    TestPki() {
        REQUIRE_MESSAGE(run("command -v openssl"), "the openssl command is missing (Debian package openssl, debian-packages.txt): the x509 test cannot make its certificates");
        REQUIRE(!dir_.path().empty());
    }
    void make_ca(const std::string& name) {
        REQUIRE(run("cd " + dir_.path().string() + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
                    name + ".key -out " + name + ".pem -days 2 -subj /CN=" + name));
    }
    // Host `name`'s certificate and key, signed by `ca`.
    CertificateFiles make_host(const std::string& name, const std::string& ca, const std::string& trusted_ca) {
        const std::string d = dir_.path().string();
        REQUIRE(run("cd " + d + " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name + ".key -out " +
                    name + ".csr -subj /CN=" + name + " && openssl x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " + ca +
                    ".key -CAcreateserial -days 2 -out " + name + ".pem"));
        return CertificateFiles{d + "/" + name + ".pem", d + "/" + name + ".key", d + "/" + trusted_ca + ".pem"};
    }

private:
    linux_test::TempDir dir_;
};

}  // namespace

TEST_CASE("replication link over TLS: x509 certificates from one CA connect; one from another CA is refused") {
    TestPki pki;
    pki.make_ca("ca");
    pki.make_ca("other-ca");
    const auto primary = pki.make_host("primary", "ca", "ca");
    const auto secondary = pki.make_host("secondary", "ca", "ca");
    const auto stranger = pki.make_host("stranger", "other-ca", "ca");
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 2000ms});
    const auto server = std::make_shared<TlsContext>(secondary, TlsRole::server);

    Refusals refusals;
    auto receiving = std::async(std::launch::async, [&] {
        return ReplicationLink::accept(listener, 10000ms, 2000ms, refusals.callback(), server);
    });
    const std::string error = error_of([&] {
        (void)ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms,
                                       std::make_shared<TlsContext>(stranger, TlsRole::client));
    });
    CAPTURE(error);
    // TLS 1.3: the sender's handshake is over before the receiver checks its certificate, so the
    // refusal reaches it with the stream header.
    CHECK(error.starts_with("the receiver at 127.0.0.1:" + std::to_string(listener.port()) +
                            " ended the TLS connection before answering our stream header ("));
    CHECK(error.find("does not trust our certificate") != std::string::npos);
    CHECK(error.find('\n') == std::string::npos);
    auto sender = ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms,
                                           std::make_shared<TlsContext>(primary, TlsRole::client));
    auto receiver = receiving.get();
    const auto lines = refusals.get();
    REQUIRE(lines.size() == 1);
    CAPTURE(lines[0]);
    CHECK(lines[0].find("certificate") != std::string::npos);
    CHECK(lines[0].find('\n') == std::string::npos);
    CHECK(sender->secured());
    CHECK(receiver->secured());
    sender->channel().send(protocol::CheckpointBegin{11});
    CHECK(receive_until(receiver->channel(), 11, Channel::Clock::now() + 5s) == "");
    receiver->channel().send(protocol::CheckpointBegin{12});
    CHECK(receive_until(sender->channel(), 12, Channel::Clock::now() + 5s) == "");
}
