// `status --watch NAME`: what one look at a guest's `status` and the look before it say per second,
// and how that is printed: a screen redrawn in place on a terminal, one plain line of key=value
// words otherwise. Pure functions of two samples, so the rates are tested without a guest.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace colo::cli {

// One answer of `status` (its "key value" lines) and when it arrived.
struct StatusSample {
    std::map<std::string, std::string> fields;
    std::chrono::steady_clock::time_point at;
};

// Changes per second between two samples; empty where a rate is not known: the first sample, a
// field this side does not report, or a counter that went backwards (protection started anew).
struct WatchRates {
    std::optional<double> checkpoints_per_s;  // the epoch's change: checkpoints committed (applied)
    std::optional<double> link_bytes_per_s;   // primary: bytes_sent
    std::optional<double> pages_received_per_s;  // secondary: pages received, streamed and in checkpoints
    std::optional<double> released_bytes_per_s;  // console output released (primary_released there)
    // primary: the secondary's own, from what it reports (secondary_checkpoints_applied,
    // secondary_pages_received); empty without its reports.
    std::optional<double> secondary_checkpoints_per_s;
    std::optional<double> secondary_pages_per_s;
};

[[nodiscard]] WatchRates watch_rates(const StatusSample* previous, const StatusSample& now);

// "2026-12-05T20:30:01Z NAME role=primary state=protected mode=colo epoch=812
//  checkpoints_per_s=9.8 pause_p50_us=... link_bytes_per_s=... ..." (one line, '\n'-ended); an
// unknown rate or field is "-". `wall` is printed as the line's time.
[[nodiscard]] std::string watch_line(const std::string& name, const StatusSample& now, const WatchRates& rates,
                                     std::chrono::system_clock::time_point wall);

// The same for a terminal: clear and home, then a few labelled lines.
[[nodiscard]] std::string watch_screen(const std::string& name, const StatusSample& now, const WatchRates& rates,
                                       std::chrono::system_clock::time_point wall, std::chrono::milliseconds interval);

// The last line when the guest went away while watched.
[[nodiscard]] std::string watch_gone_line(const std::string& name, std::chrono::system_clock::time_point wall);

}  // namespace colo::cli
