#include "toolstack/cli/status_watch.hpp"

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <initializer_list>

namespace colo::cli {

namespace {

using Fields = std::map<std::string, std::string>;

// A counter of the sample, or empty when it is absent or not a number (an older peer, the other role).
std::optional<std::uint64_t> counter(const Fields& fields, const char* key) {
    const auto found = fields.find(key);
    if (found == fields.end()) return std::nullopt;
    std::uint64_t value = 0;
    const std::string& text = found->second;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
    return value;
}

// The sum of counters, empty when any is missing.
std::optional<std::uint64_t> sum(const Fields& fields, std::initializer_list<const char*> keys) {
    std::uint64_t total = 0;
    for (const char* key : keys) {
        const auto value = counter(fields, key);
        if (!value) return std::nullopt;
        total += *value;
    }
    return total;
}

std::optional<double> per_second(std::optional<std::uint64_t> before, std::optional<std::uint64_t> after, double seconds) {
    if (!before || !after || *after < *before || seconds <= 0) return std::nullopt;
    return static_cast<double>(*after - *before) / seconds;
}

std::string field(const Fields& fields, const char* key) {
    const auto found = fields.find(key);
    return found == fields.end() || found->second.empty() ? "-" : found->second;
}

bool is_primary(const Fields& fields) { return field(fields, "role") == "primary"; }

// One decimal below 100, none above: a rate is read at a glance, not to the last digit.
std::string rate(std::optional<double> value) {
    if (!value) return "-";
    char text[32];
    std::snprintf(text, sizeof text, *value < 100 ? "%.1f" : "%.0f", *value);
    return text;
}

// Bytes per second in B/s, KB/s or MB/s (powers of 1000, as link speeds are given).
std::string byte_rate(std::optional<double> value) {
    if (!value) return "-";
    const char* unit = "B/s";
    double v = *value;
    if (v >= 1e6) {
        v /= 1e6;
        unit = "MB/s";
    } else if (v >= 1e3) {
        v /= 1e3;
        unit = "KB/s";
    }
    return rate(v) + " " + unit;
}

std::string ms(const Fields& fields, const char* key) {
    const auto us = counter(fields, key);
    if (!us) return "-";
    char text[32];
    std::snprintf(text, sizeof text, "%.3f ms", static_cast<double>(*us) / 1000.0);
    return text;
}

std::string utc(std::chrono::system_clock::time_point wall) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(wall);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

}  // namespace

WatchRates watch_rates(const StatusSample* previous, const StatusSample& now) {
    WatchRates r;
    if (previous == nullptr) return r;
    const double seconds = std::chrono::duration<double>(now.at - previous->at).count();
    const Fields& a = previous->fields;
    const Fields& b = now.fields;
    // A secondary that took over reports as a primary from then on: no rate across the change.
    if (field(a, "role") != field(b, "role")) return r;
    r.checkpoints_per_s = per_second(counter(a, "epoch"), counter(b, "epoch"), seconds);
    if (is_primary(b)) {
        r.link_bytes_per_s = per_second(counter(a, "bytes_sent"), counter(b, "bytes_sent"), seconds);
        r.released_bytes_per_s = per_second(counter(a, "output_released"), counter(b, "output_released"), seconds);
        if (b.count("secondary_checkpoints_applied") != 0 && a.count("secondary_checkpoints_applied") != 0) {
            r.secondary_checkpoints_per_s = per_second(counter(a, "secondary_checkpoints_applied"),
                                                       counter(b, "secondary_checkpoints_applied"), seconds);
            r.secondary_pages_per_s = per_second(counter(a, "secondary_pages_received"), counter(b, "secondary_pages_received"), seconds);
        }
    } else {
        const std::initializer_list<const char*> kPages = {"pages_received_migration", "pages_received_streamed", "pages_received_checkpoint"};
        r.pages_received_per_s = per_second(sum(a, kPages), sum(b, kPages), seconds);
        r.released_bytes_per_s = per_second(counter(a, "primary_released"), counter(b, "primary_released"), seconds);
    }
    return r;
}

std::string watch_line(const std::string& name, const StatusSample& now, const WatchRates& rates,
                       std::chrono::system_clock::time_point wall) {
    const Fields& f = now.fields;
    std::string line = utc(wall) + " " + name;
    const auto add = [&line](const char* key, const std::string& value) { line += std::string(" ") + key + "=" + value; };
    add("role", field(f, "role"));
    add("state", field(f, "state"));
    add("mode", field(f, "mode"));
    add("epoch", field(f, "epoch"));
    add("checkpoints_per_s", rate(rates.checkpoints_per_s));
    add("pause_p50_us", field(f, "pause_p50_us"));
    add("pause_p99_us", field(f, "pause_p99_us"));
    if (is_primary(f)) {
        add("link_bytes_per_s", rates.link_bytes_per_s ? std::to_string(static_cast<std::uint64_t>(*rates.link_bytes_per_s)) : "-");
        add("output_released", field(f, "output_released"));
        add("output_held", field(f, "output_held"));
        add("released_bytes_per_s", rate(rates.released_bytes_per_s));
        add("net_held_frames", field(f, "net_held_frames"));
        add("net_released_frames", field(f, "net_released_frames"));
        // The secondary's side, as it reported it to this primary.
        add("secondary_checkpoints_per_s", rate(rates.secondary_checkpoints_per_s));
        add("secondary_pause_p50_us", field(f, "secondary_pause_p50_us"));
        add("secondary_pause_p99_us", field(f, "secondary_pause_p99_us"));
        add("secondary_pages_received_per_s", rate(rates.secondary_pages_per_s));
    } else {
        add("pages_received_per_s", rate(rates.pages_received_per_s));
        add("primary_released", field(f, "primary_released"));
        add("released_bytes_per_s", rate(rates.released_bytes_per_s));
    }
    return line + "\n";
}

std::string watch_screen(const std::string& name, const StatusSample& now, const WatchRates& rates,
                         std::chrono::system_clock::time_point wall, std::chrono::milliseconds interval) {
    const Fields& f = now.fields;
    char every[32];
    std::snprintf(every, sizeof every, "%g", static_cast<double>(interval.count()) / 1000.0);
    std::string s = "\033[H\033[2J";  // home, then clear: the screen is drawn anew each time
    s += name + "  " + utc(wall) + "  (every " + every + " s; Ctrl-C ends)\n\n";
    s += "  role " + field(f, "role") + "   state " + field(f, "state") + "   mode " + field(f, "mode") + "   epoch " +
         field(f, "epoch") + "\n";
    s += "  checkpoints  " + rate(rates.checkpoints_per_s) + "/s\n";
    s += "  pause        p50 " + ms(f, "pause_p50_us") + "   p99 " + ms(f, "pause_p99_us") + "   max " + ms(f, "pause_max_us") + "\n";
    if (is_primary(f)) {
        s += "  link         " + byte_rate(rates.link_bytes_per_s) + " sent\n";
        s += "  output       " + byte_rate(rates.released_bytes_per_s) + " released (" + field(f, "output_released") +
             " bytes in all), " + field(f, "output_held") + " bytes held; net frames held " + field(f, "net_held_frames") + ", released " +
             field(f, "net_released_frames") + "\n";
        if (f.count("secondary_epoch") != 0) {
            s += "\n  secondary (as it reports itself, " + field(f, "secondary_report_age_ms") + " ms ago)\n";
            s += "  checkpoints  " + rate(rates.secondary_checkpoints_per_s) + "/s applied (epoch " + field(f, "secondary_epoch") + ")\n";
            s += "  pause        p50 " + ms(f, "secondary_pause_p50_us") + "   p99 " + ms(f, "secondary_pause_p99_us") +
                 "   max " + ms(f, "secondary_pause_max_us") + "\n";
            s += "  link         " + rate(rates.secondary_pages_per_s) + " pages/s received\n";
        } else {
            // An older secondary sends no reports: its side is `status --watch` on its own host.
            s += "\n  this side only: the secondary's view is `status --watch " + name + "` on its host\n";
        }
    } else {
        s += "  link         " + rate(rates.pages_received_per_s) + " pages/s received\n";
        s += "  output       the primary released " + field(f, "primary_released") + " bytes (" +
             byte_rate(rates.released_bytes_per_s) + ")\n";
        s += "\n  this side only: the primary's view is `status --watch " + name + "` on its host\n";
    }
    return s;
}

std::string watch_gone_line(const std::string& name, std::chrono::system_clock::time_point wall) {
    return utc(wall) + " " + name + " gone: no guest named '" + name + "' runs on this host any more\n";
}

}  // namespace colo::cli
