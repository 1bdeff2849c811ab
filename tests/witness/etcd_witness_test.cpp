// EtcdWitness against a real etcd 3.4 (a throwaway one per test, from tests/e2e/etcd_server.py
// `serve`): the compare-and-swap holds when two clients race, a stale or repeated claim loses,
// and a frozen (SIGSTOP) or dead (SIGKILL) etcd is WitnessUnreachable within the deadline.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "backends/error.hpp"
#include "backends/unique_fd.hpp"
#include "tests/witness/witness_contract.hpp"
#include "toolstack/failover/witness.hpp"

using namespace std::chrono_literals;
using colo::EtcdWitness;
using colo::Owner;
using colo::WitnessUnreachable;
using Clock = std::chrono::steady_clock;

namespace {

// etcd_server.py `serve` as a child: its first line is "ready URL PID", then one command a line.
// Closing its stdin (the destructor) stops etcd and removes its files.
class EtcdProcess {
public:
    EtcdProcess() {
        const char* script = std::getenv("COLO_ETCD_SERVER");
        const std::string path = script != nullptr ? script : "tests/e2e/etcd_server.py";
        int to_child[2], from_child[2];
        colo::check_syscall(::pipe2(to_child, O_CLOEXEC), "pipe2");
        colo::check_syscall(::pipe2(from_child, O_CLOEXEC), "pipe2");
        pid_ = colo::check_syscall(::fork(), "fork");
        if (pid_ == 0) {
            ::dup2(to_child[0], 0);
            ::dup2(from_child[1], 1);
            ::execlp("python3", "python3", path.c_str(), "serve", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(to_child[0]);
        ::close(from_child[1]);
        commands_ = colo::UniqueFd(to_child[1]);
        answers_ = colo::UniqueFd(from_child[0]);
        const std::string ready = line(30s);
        if (ready.rfind("ready ", 0) != 0) throw colo::Error("etcd did not start: " + ready);
        const std::size_t space = ready.find(' ', 6);
        url_ = ready.substr(6, space - 6);
        etcd_pid_ = std::stoi(ready.substr(space + 1));
    }
    EtcdProcess(const EtcdProcess&) = delete;
    EtcdProcess& operator=(const EtcdProcess&) = delete;
    ~EtcdProcess() {
        commands_.reset();  // end of input: the helper stops etcd (SIGCONT first if paused) and exits
        int status = 0;
        for (int i = 0; i < 1000 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) ::usleep(10000);
        if (::waitpid(pid_, &status, WNOHANG) == 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
        }
    }

    [[nodiscard]] const std::string& url() const { return url_; }
    [[nodiscard]] int etcd_pid() const { return etcd_pid_; }

    // "pause", "resume", "kill": done when the helper says ok.
    void command(const std::string& what) {
        const std::string text = what + "\n";
        REQUIRE(::write(commands_.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        REQUIRE(line(15s) == "ok");
    }

private:
    std::string line(std::chrono::milliseconds timeout) {
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            const std::size_t eol = buffer_.find('\n');
            if (eol != std::string::npos) {
                std::string text = buffer_.substr(0, eol);
                buffer_.erase(0, eol + 1);
                return text;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            pollfd p{answers_.get(), POLLIN, 0};
            if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0)
                throw colo::Error("etcd_server.py said nothing within " + std::to_string(timeout.count()) + " ms");
            char chunk[512];
            const ssize_t n = ::read(answers_.get(), chunk, sizeof chunk);
            if (n <= 0) throw colo::Error("etcd_server.py exited (is python3 there?): " + buffer_);
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    pid_t pid_ = -1;
    colo::UniqueFd commands_, answers_;
    std::string buffer_;
    std::string url_;
    int etcd_pid_ = -1;
};

// The message of the WitnessUnreachable `fn` throws and how long it took; fails the test when
// `fn` returns or throws anything else.
template <typename Fn>
std::pair<std::string, Clock::duration> unreachable(Fn&& fn) {
    const auto started = Clock::now();
    try {
        fn();
    } catch (const WitnessUnreachable& e) {
        return {e.what(), Clock::now() - started};
    }
    FAIL("no WitnessUnreachable");
    return {};
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

TEST_CASE("etcd witness: the claim rules (witness_contract.hpp), guests and prefixes apart") {
    EtcdProcess etcd;
    EtcdWitness witness(colo::parse_witness_url(etcd.url()));
    CHECK(witness.describe() == etcd.url());
    colo::test::check_claim_rules(witness);
    const Owner second = witness.read_owner("web1");

    // Guests are separate keys; a prefix separates clusters sharing one etcd.
    CHECK(witness.read_owner("web2") == Owner{});
    EtcdWitness other_site(colo::parse_witness_url(etcd.url() + "/site-b"));
    CHECK(other_site.read_owner("web1") == Owner{});
    CHECK(other_site.claim("web1", "host-c:1:c", 0));
    CHECK(witness.read_owner("web1") == second);
}

TEST_CASE("etcd witness: two clients racing from the same revision, exactly one wins, every time") {
    EtcdProcess etcd;
    const auto url = colo::parse_witness_url(etcd.url());
    EtcdWitness a(url), b(url);
    constexpr int kRounds = 100;
    std::int64_t revision = 0;  // round 0 races on the absent key
    int a_won = 0, b_won = 0;
    for (int round = 0; round < kRounds; ++round) {
        const std::string id_a = "host-a:" + std::to_string(round), id_b = "host-b:" + std::to_string(round);
        std::latch start(2);
        bool won_a = false, won_b = false;
        Owner now_a, now_b;
        std::thread ta([&] {
            start.arrive_and_wait();
            won_a = a.claim("race", id_a, revision, &now_a);
        });
        std::thread tb([&] {
            start.arrive_and_wait();
            won_b = b.claim("race", id_b, revision, &now_b);
        });
        ta.join();
        tb.join();
        REQUIRE_MESSAGE(won_a != won_b, "round " << round << ": a " << won_a << ", b " << won_b);
        const Owner owner = a.read_owner("race");
        CHECK(owner.id == (won_a ? id_a : id_b));
        CHECK(owner.revision > revision);
        // The loser's read-back, from the same transaction, names the winner.
        CHECK(now_a == owner);
        CHECK(now_b == owner);
        revision = owner.revision;
        (won_a ? a_won : b_won) += 1;
    }
    MESSAGE("race: " << kRounds << " rounds, a won " << a_won << ", b won " << b_won);
    CHECK(a_won + b_won == kRounds);
}

TEST_CASE("etcd witness: claim and read latency on loopback") {
    EtcdProcess etcd;
    EtcdWitness witness(colo::parse_witness_url(etcd.url()));
    std::vector<double> claims, reads;
    std::int64_t revision = 0;
    for (int i = 0; i < 200; ++i) {
        Owner now;
        auto t = Clock::now();
        REQUIRE(witness.claim("timed", "host-a:" + std::to_string(i), revision, &now));
        claims.push_back(ms(Clock::now() - t));
        revision = now.revision;
        t = Clock::now();
        CHECK(witness.read_owner("timed") == now);
        reads.push_back(ms(Clock::now() - t));
    }
    std::sort(claims.begin(), claims.end());
    std::sort(reads.begin(), reads.end());
    MESSAGE("claim ms p50 " << claims[100] << " p99 " << claims[198] << " max " << claims.back() << "; read_owner ms p50 "
                            << reads[100] << " p99 " << reads[198] << " max " << reads.back());
    CHECK(claims[100] < 100.0);  // a loaded machine may be slow; a hang or a retry loop would not be 100 ms
}

TEST_CASE("etcd witness: a frozen etcd is WitnessUnreachable within the deadline; thawed, it answers again") {
    EtcdProcess etcd;
    EtcdWitness witness(colo::parse_witness_url(etcd.url()), 500ms);
    Owner now;
    REQUIRE(witness.claim("frozen", "host-a:1:a", 0, &now));
    const Owner before = now;

    etcd.command("pause");
    const auto [read_message, read_took] = unreachable([&] { (void)witness.read_owner("frozen"); });
    CHECK(read_message == "witness " + etcd.url() + ": /v3/kv/range: no answer within 500 ms (waiting for the answer)");
    CHECK(read_took >= 500ms);
    CHECK(read_took < 800ms);
    const auto [claim_message, claim_took] = unreachable([&] { (void)witness.claim("frozen", "host-b:2:b", before.revision); });
    CHECK(claim_message == "witness " + etcd.url() + ": /v3/kv/txn: no answer within 500 ms (waiting for the answer)");
    CHECK(claim_took < 800ms);
    MESSAGE("frozen etcd: read_owner gave up after " << ms(read_took) << " ms, claim after " << ms(claim_took)
                                                     << " ms (timeout 500 ms)");

    etcd.command("resume");
    // The claim sent into the frozen etcd was still in its socket: it may be applied after the
    // thaw although its caller saw WitnessUnreachable (witness.hpp, claim), even after a read
    // that showed the old owner. Retrying the same claim is right either way: it wins, whether
    // the late one landed first (the key already names host-b) or not (this one moves it).
    const auto thawed = Clock::now();
    Owner after;
    for (;;) {
        try {
            after = witness.read_owner("frozen");
            break;
        } catch (const WitnessUnreachable&) {
            REQUIRE(Clock::now() - thawed < 10s);
        }
    }
    MESSAGE("after the thaw (" << ms(Clock::now() - thawed) << " ms to the first answer) the owner is " << after.id
                               << std::string(after.id == "host-b:2:b" ? ": the claim that timed out was applied" : ""));
    CHECK((after == before || after.id == "host-b:2:b"));
    REQUIRE(witness.claim("frozen", "host-b:2:b", before.revision, &now));
    CHECK(now.id == "host-b:2:b");
    CHECK(witness.read_owner("frozen") == now);
    // Someone else's claim from the old revision loses, whenever the late request landed.
    CHECK_FALSE(witness.claim("frozen", "host-a:1:a", before.revision));
    // It works as before: the next claim from the current revision wins.
    CHECK(witness.claim("frozen", "host-c:3:c", now.revision));
}

TEST_CASE("etcd witness: a dead etcd is WitnessUnreachable at once, naming the refusal") {
    EtcdProcess etcd;
    EtcdWitness witness(colo::parse_witness_url(etcd.url()), 2000ms);
    CHECK(witness.claim("dead", "host-a:1:a", 0));
    etcd.command("kill");
    const auto [message, took] = unreachable([&] { (void)witness.read_owner("dead"); });
    const std::string endpoint = etcd.url().substr(std::string("etcd://").size());
    CHECK(message == "witness " + etcd.url() + ": /v3/kv/range: connect to " + endpoint + ": Connection refused");
    CHECK(took < 500ms);
    const auto [claim_message, claim_took] = unreachable([&] { (void)witness.claim("dead", "host-b:2:b", 1); });
    CHECK(claim_message.find("Connection refused") != std::string::npos);
    CHECK(claim_took < 500ms);
}

TEST_CASE("etcd witness: bad arguments are colo::Error and never reach etcd") {
    EtcdProcess etcd;
    EtcdWitness witness(colo::parse_witness_url(etcd.url()));
    CHECK_THROWS_WITH_AS((void)witness.claim("web1", "", 0),
                         ("witness " + etcd.url() + ": an owner id must not be empty (empty means nobody)").c_str(), colo::Error);
    CHECK_THROWS_WITH_AS((void)witness.claim("web1", "x", -1),
                         ("witness " + etcd.url() + ": expected revision -1 is negative").c_str(), colo::Error);
    CHECK_THROWS_AS((void)witness.read_owner("../etc"), colo::Error);
    CHECK(witness.read_owner("web1") == Owner{});
}
