// status --watch's rates and lines from two looks at `status` (toolstack/cli/status_watch.hpp).
#include <doctest/doctest.h>

#include <sstream>

#include "toolstack/cli/command_table.hpp"
#include "toolstack/cli/status_watch.hpp"

using namespace colo::cli;
using namespace std::chrono_literals;

namespace {
const auto kStart = std::chrono::steady_clock::time_point{} + 1000s;
const auto kWall = std::chrono::system_clock::time_point{} + 1796502601s;  // 2026-12-05T20:30:01Z

StatusSample primary(std::uint64_t epoch, std::uint64_t bytes_sent, std::uint64_t released, std::chrono::milliseconds at) {
    return {{{"role", "primary"}, {"state", "protected"}, {"mode", "colo"}, {"epoch", std::to_string(epoch)},
             {"pause_p50_us", "812"}, {"pause_p99_us", "1500"}, {"pause_max_us", "2100"},
             {"bytes_sent", std::to_string(bytes_sent)}, {"output_released", std::to_string(released)},
             {"output_held", "24"}, {"net_held_frames", "3"}, {"net_released_frames", "40"}},
            kStart + at};
}

StatusSample secondary(std::uint64_t epoch, std::uint64_t pages, std::chrono::milliseconds at) {
    return {{{"role", "secondary"}, {"state", "protecting"}, {"mode", "remus"}, {"epoch", std::to_string(epoch)},
             {"pause_p50_us", "700"}, {"pause_p99_us", "900"}, {"pages_received_migration", "1000"},
             {"pages_received_streamed", std::to_string(pages)}, {"pages_received_checkpoint", "5"},
             {"primary_released", "4096"}},
            kStart + at};
}
}  // namespace

TEST_CASE("status watch: rates are the counters' change over the time between two looks") {
    const StatusSample a = primary(100, 1'000'000, 500, 0ms);
    const StatusSample b = primary(120, 3'000'000, 1500, 2000ms);
    const WatchRates r = watch_rates(&a, b);
    REQUIRE(r.checkpoints_per_s);
    CHECK(*r.checkpoints_per_s == doctest::Approx(10.0));
    REQUIRE(r.link_bytes_per_s);
    CHECK(*r.link_bytes_per_s == doctest::Approx(1'000'000.0));
    REQUIRE(r.released_bytes_per_s);
    CHECK(*r.released_bytes_per_s == doctest::Approx(500.0));
    CHECK_FALSE(r.pages_received_per_s);  // a primary's status has no pages received

    const WatchRates s = watch_rates(nullptr, b);  // the first look: nothing to compare with
    CHECK_FALSE(s.checkpoints_per_s);
    CHECK_FALSE(s.link_bytes_per_s);
}

TEST_CASE("status watch: a secondary's rate of pages received sums the three kinds") {
    const StatusSample before = secondary(7, 100, 0ms);
    const WatchRates r = watch_rates(&before, secondary(9, 600, 500ms));
    REQUIRE(r.pages_received_per_s);
    CHECK(*r.pages_received_per_s == doctest::Approx(1000.0));
    CHECK(*r.checkpoints_per_s == doctest::Approx(4.0));
    CHECK(*r.released_bytes_per_s == doctest::Approx(0.0));
    CHECK_FALSE(r.link_bytes_per_s);
}

TEST_CASE("status watch: no rate across a counter that went back, a role change, no time or a missing field") {
    const StatusSample later = primary(500, 9'000'000, 100, 1000ms);
    const StatusSample restarted = primary(3, 20'000, 100, 2000ms);  // protected anew: counters from 0
    CHECK_FALSE(watch_rates(&later, restarted).checkpoints_per_s);
    CHECK_FALSE(watch_rates(&later, restarted).link_bytes_per_s);

    const StatusSample took_over = primary(510, 9'100'000, 100, 1000ms);
    const StatusSample was_secondary = secondary(505, 100, 0ms);
    CHECK_FALSE(watch_rates(&was_secondary, took_over).checkpoints_per_s);

    CHECK_FALSE(watch_rates(&later, later).checkpoints_per_s);  // no time between the looks

    StatusSample garbled = primary(520, 9'200'000, 100, 2000ms);
    garbled.fields["epoch"] = "12x";
    garbled.fields.erase("bytes_sent");
    const WatchRates r = watch_rates(&later, garbled);
    CHECK_FALSE(r.checkpoints_per_s);
    CHECK_FALSE(r.link_bytes_per_s);
    CHECK(r.released_bytes_per_s);
}

TEST_CASE("status watch: a plain line is key=value words, '-' where nothing is known") {
    const StatusSample a = primary(100, 1'000'000, 500, 0ms);
    const StatusSample b = primary(120, 3'000'000, 1500, 2000ms);
    CHECK(watch_line("demo", b, watch_rates(&a, b), kWall) ==
          "2026-12-05T20:30:01Z demo role=primary state=protected mode=colo epoch=120 checkpoints_per_s=10.0 "
          "pause_p50_us=812 pause_p99_us=1500 link_bytes_per_s=1000000 output_released=1500 output_held=24 released_bytes_per_s=500 "
          "net_held_frames=3 net_released_frames=40 secondary_checkpoints_per_s=- secondary_pause_p50_us=- "
          "secondary_pause_p99_us=- secondary_pages_received_per_s=-\n");
    CHECK(watch_line("demo", a, watch_rates(nullptr, a), kWall).find(" checkpoints_per_s=- ") != std::string::npos);
    const StatusSample s = secondary(9, 600, 0ms);
    CHECK(watch_line("demo", s, watch_rates(nullptr, s), kWall) ==
          "2026-12-05T20:30:01Z demo role=secondary state=protecting mode=remus epoch=9 checkpoints_per_s=- "
          "pause_p50_us=700 pause_p99_us=900 pages_received_per_s=- primary_released=4096 released_bytes_per_s=-\n");
    CHECK(watch_gone_line("demo", kWall) == "2026-12-05T20:30:01Z demo gone: no guest named 'demo' runs on this host any more\n");
}

TEST_CASE("status watch: the terminal screen clears, homes and labels each rate") {
    const StatusSample a = primary(100, 1'000'000, 500, 0ms);
    const StatusSample b = primary(120, 3'000'000, 1500, 2000ms);
    const std::string screen = watch_screen("demo", b, watch_rates(&a, b), kWall, 1500ms);
    CHECK(screen.starts_with("\033[H\033[2Jdemo  2026-12-05T20:30:01Z  (every 1.5 s; Ctrl-C ends)\n"));
    CHECK(screen.find("checkpoints  10.0/s") != std::string::npos);
    CHECK(screen.find("p50 0.812 ms   p99 1.500 ms   max 2.100 ms") != std::string::npos);
    CHECK(screen.find("link         1.0 MB/s sent") != std::string::npos);
    CHECK(screen.find("500 B/s released (1500 bytes in all), 24 bytes held; net frames held 3, released 40") != std::string::npos);
    CHECK(screen.find("this side only") != std::string::npos);
}

TEST_CASE("status watch: --interval is checked, and goes only with --watch; --watch is not --json") {
    std::ostringstream out, err;
    Io io{out, err};
    for (const auto& args : std::vector<std::vector<std::string>>{{"status", "--watch", "--interval", "99", "demo"},
                                                                   {"status", "--watch", "--interval", "3600001", "demo"},
                                                                   {"status", "--interval", "2000", "demo"},
                                                                   {"status", "--watch", "--json", "demo"}}) {
        err.str("");
        CHECK(dispatch(args, io) != kExitOk);
        const std::string message = err.str();
        CHECK(std::count(message.begin(), message.end(), '\n') == 1);
        CHECK((message.find("--interval") != std::string::npos || message.find("--json") != std::string::npos));
    }
}

TEST_CASE("status watch: a primary shows its secondary's side from the secondary's reports") {
    StatusSample a = primary(100, 1'000'000, 500, 0ms);
    StatusSample b = primary(120, 3'000'000, 1500, 2000ms);
    a.fields.insert({{"secondary_epoch", "99"}, {"secondary_checkpoints_applied", "99"}, {"secondary_pause_p50_us", "300"},
                     {"secondary_pause_p99_us", "950"}, {"secondary_pause_max_us", "1200"},
                     {"secondary_pages_received", "10000"}, {"secondary_report_age_ms", "400"}});
    b.fields.insert({{"secondary_epoch", "119"}, {"secondary_checkpoints_applied", "119"}, {"secondary_pause_p50_us", "310"},
                     {"secondary_pause_p99_us", "960"}, {"secondary_pause_max_us", "1300"},
                     {"secondary_pages_received", "14000"}, {"secondary_report_age_ms", "250"}});
    const WatchRates rates = watch_rates(&a, b);
    REQUIRE(rates.secondary_checkpoints_per_s);
    CHECK(*rates.secondary_checkpoints_per_s == doctest::Approx(10.0));
    CHECK(*rates.secondary_pages_per_s == doctest::Approx(2000.0));
    const std::string line = watch_line("demo", b, rates, kWall);
    CHECK(line.find(" secondary_checkpoints_per_s=10.0 secondary_pause_p50_us=310 secondary_pause_p99_us=960 "
                    "secondary_pages_received_per_s=2000") != std::string::npos);
    const std::string screen = watch_screen("demo", b, rates, kWall, 1000ms);
    CHECK(screen.find("secondary (as it reports itself, 250 ms ago)") != std::string::npos);
    CHECK(screen.find("this side only") == std::string::npos);
}
