#include <doctest/doctest.h>

#include <stdlib.h>

#include <sstream>

#include "toolstack/cli/command_table.hpp"

using namespace colo::cli;

namespace {
struct Run {
    int code;
    std::string out, err;
};
Run run(std::vector<std::string> args) {
    std::ostringstream out, err;
    Io io{out, err};
    const int code = dispatch(args, io);
    return {code, out.str(), err.str()};
}
int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }
}  // namespace

TEST_CASE("cli: every planned subcommand is in the table with a summary and usage") {
    for (const char* name : {"create", "list", "console", "destroy", "save", "restore", "migrate", "protect",
                             "receive", "status", "failover", "pause", "unpause"}) {
        const Command* c = find_command(name);
        REQUIRE_MESSAGE(c != nullptr, name);
        CHECK_FALSE(c->summary.empty());
        CHECK(c->summary.find('\n') == std::string::npos);
    }
    CHECK(find_command("frobnicate") == nullptr);
}

TEST_CASE("cli: --help lists every command, --version names the backends") {
    const auto help = run({"--help"});
    CHECK(help.code == kExitOk);
    for (const auto& c : command_table()) CHECK(help.out.find("  " + c.name) != std::string::npos);
    const auto version = run({"--version"});
    CHECK(version.code == kExitOk);
    CHECK(version.out.find("colo-replicate 0.") == 0);
    CHECK(version.out.find("backend kvm") != std::string::npos);
    CHECK(version.out.find("backend xen") != std::string::npos);
}

TEST_CASE("cli: help COMMAND shows that command's own options") {
    const auto r = run({"help", "protect"});
    CHECK(r.code == kExitOk);
    CHECK(r.out.find("Usage: colo-replicate protect") == 0);
    CHECK(r.out.find("--no-stream") != std::string::npos);
    CHECK(r.out.find("--console-log") == std::string::npos);  // not a protect option
    CHECK(run({"protect", "--help"}).out == r.out);
    CHECK(run({"help", "nope"}).code == kExitUsage);
}

TEST_CASE("cli: bad command lines get one clear line and exit 2") {
    auto r = run({"nope"});
    CHECK(r.code == kExitUsage);
    CHECK(r.err.find("no such command 'nope'") != std::string::npos);
    CHECK(lines(r.err) == 1);

    r = run({"--bogus"});
    CHECK(r.code == kExitUsage);
    CHECK(r.err.find("unknown option '--bogus'") != std::string::npos);

    r = run({"protect"});
    CHECK(r.code == kExitUsage);
    CHECK(r.err.find("missing name") != std::string::npos);
    CHECK(lines(r.err) == 1);

    // HOST may come from the guest's config; with no such guest running, one line says so.
    r = run({"protect", "no-such-guest-here"});
    CHECK(r.code == kExitFailure);
    CHECK(r.err.find("no guest named 'no-such-guest-here'") != std::string::npos);
    CHECK(lines(r.err) == 1);

    r = run({"check", "/nonexistent.cfg"});
    CHECK(r.code == kExitFailure);
    CHECK(r.err.find("open /nonexistent.cfg") != std::string::npos);
    CHECK(lines(r.err) == 1);

    r = run({"receive", "--takeover", "sometimes", "/nonexistent.cfg"});
    CHECK(r.code == kExitFailure);
    CHECK(lines(r.err) == 1);

    r = run({"protect", "vm1", "b:1", "--interval", "soon"});
    CHECK(r.code == kExitUsage);
    CHECK(r.err.find("interval") != std::string::npos);
    CHECK(lines(r.err) == 1);

    r = run({"destroy", "a", "b"});
    CHECK(r.code == kExitUsage);
    CHECK(lines(r.err) == 1);

    CHECK(run({}).code == kExitUsage);
}

TEST_CASE("cli: every command in the table is built, and --help no longer marks any as unavailable") {
    for (const auto& c : command_table()) {
        CAPTURE(c.name);
        CHECK(static_cast<bool>(c.run));
    }
    CHECK(run({"--help"}).out.find("not available yet") == std::string::npos);
}

TEST_CASE("cli: operational errors are one line naming the command, exit 1") {
    ::setenv("COLO_RUN_DIR", "/tmp", 0);
    const auto r = run({"pause", "no-such-guest-here"});
    CHECK(r.code == kExitFailure);
    CHECK(r.err == "colo-replicate pause: no guest named 'no-such-guest-here' runs on this host\n");
    const auto c = run({"create", "/nonexistent/guest.cfg"});
    CHECK(c.code == kExitFailure);
    CHECK(c.err.find("open /nonexistent/guest.cfg: No such file or directory") != std::string::npos);
    CHECK(lines(c.err) == 1);
}
