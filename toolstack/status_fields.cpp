#include "toolstack/status_fields.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <iomanip>
#include <sstream>

namespace colo {

namespace {
std::string us(Micros m) { return std::to_string(m.count()); }

std::string iso_time(std::chrono::system_clock::time_point t) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    std::ostringstream out;
    out << std::put_time(&utc, "%Y-%m-%dT%H:%M:%SZ");
    return out.str();
}

bool is_number(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if (static_cast<unsigned char>(c) < 0x20) {
            out += ' ';
            continue;
        }
        out += c;
    }
    return out + "\"";
}
}  // namespace

StatusFields status_fields(const PrimaryStats& s) {
    StatusFields f{
        {"role", "primary"},
        {"state", s.state},
        {"mode", s.mode},
        {"epoch", std::to_string(s.epoch)},
        {"checkpoints", std::to_string(s.checkpoints)},
        {"divergence_checkpoints", std::to_string(s.divergence_checkpoints)},
        {"checkpoint_overruns", std::to_string(s.checkpoint_overruns)},
        {"last_checkpoint", s.last_checkpoint ? iso_time(*s.last_checkpoint) : "-"},
        {"pause_p50_us", us(s.pause_p50)},
        {"pause_p99_us", us(s.pause_p99)},
        {"pause_max_us", us(s.pause_max)},
        {"pause_stop_p99_us", us(s.pause_stop_p99)},
        {"pause_harvest_p99_us", us(s.pause_harvest_p99)},
        {"pause_copy_p99_us", us(s.pause_copy_p99)},
        {"pause_state_p99_us", us(s.pause_state_p99)},
        {"pause_realtime", s.pause_realtime},
        {"pages_migrated", std::to_string(s.pages_migrated)},
        {"migration_rounds", std::to_string(s.migration_rounds)},
        {"sync_throttle_percent", std::to_string(s.sync_throttle_percent)},
        {"time_to_enter_colo_us", us(s.time_to_enter_colo)},
        {"enter_colo_pause_us", us(s.enter_colo_pause)},
        {"pages_sent_paused", std::to_string(s.pages_sent_paused)},
        {"pages_streamed", std::to_string(s.pages_streamed)},
        {"bytes_sent", std::to_string(s.bytes_sent)},
        {"output_released", std::to_string(s.output_released)},
        {"output_held", std::to_string(s.output_held)},
        {"net_ingress_frames", std::to_string(s.net_ingress_frames)},
        {"net_egress_frames", std::to_string(s.net_egress_frames)},
        {"net_released_frames", std::to_string(s.net_released_frames)},
        {"net_held_frames", std::to_string(s.net_held_frames)},
        {"net_compare_checkpoints", std::to_string(s.net_compare_checkpoints)},
        {"disk_sync_blocks", std::to_string(s.disk_sync_blocks)},
        {"disk_sync_blocks_done", std::to_string(s.disk_sync_blocks_done)},
        {"disk_sync_blocks_sent", std::to_string(s.disk_sync_blocks_sent)},
        {"disk_sync_bytes", std::to_string(s.disk_sync_bytes)},
        {"disk_sync_ms", std::to_string(s.disk_sync_ms)},
        {"disk_writes_mirrored", std::to_string(s.disk_writes_mirrored)},
        {"disk_write_bytes_mirrored", std::to_string(s.disk_write_bytes_mirrored)},
        {"phase", s.phase},
    };
    if (!s.net_last_compare_reason.empty()) f.emplace_back("net_last_compare_reason", s.net_last_compare_reason);
    if (s.sync_page_bytes != 0) {
        f.emplace_back("sync_page_bytes", std::to_string(s.sync_page_bytes));
        f.emplace_back("sync_compressed_bytes", std::to_string(s.sync_compressed_bytes));
    }
    if (!s.protection_lost_reason.empty()) f.emplace_back("protection_lost", s.protection_lost_reason);
    if (!s.witness.empty()) f.emplace_back("witness", s.witness);
    if (!s.suspend_how.empty()) {
        // Cooperative checkpoints: the guest's own suspend comes before each pause.
        f.emplace_back("suspends", std::to_string(s.suspends));
        f.emplace_back("suspend_timeouts", std::to_string(s.suspend_timeouts));
        f.emplace_back("suspend_p50_us", us(s.suspend_p50));
        f.emplace_back("suspend_p99_us", us(s.suspend_p99));
        f.emplace_back("suspend_max_us", us(s.suspend_max));
    }
    if (s.secondary) {
        // What the secondary last reported of itself (about once a second).
        const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                               s.secondary_reported_at);
        f.emplace_back("secondary_epoch", std::to_string(s.secondary->epoch));
        f.emplace_back("secondary_checkpoints_applied", std::to_string(s.secondary->checkpoints_applied));
        f.emplace_back("secondary_pause_p50_us", std::to_string(s.secondary->pause_p50_us));
        f.emplace_back("secondary_pause_p99_us", std::to_string(s.secondary->pause_p99_us));
        f.emplace_back("secondary_pause_max_us", std::to_string(s.secondary->pause_max_us));
        f.emplace_back("secondary_pages_received", std::to_string(s.secondary->pages_received));
        f.emplace_back("secondary_report_age_ms", std::to_string(age.count()));
    }
    if (!s.arbitration.empty()) f.emplace_back("arbitration", s.arbitration);
    // In milliseconds since the epoch: how long after a cut the loss was declared is measurable.
    if (s.protection_lost_at) {
        f.emplace_back("protection_lost_at_ms",
                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          s.protection_lost_at->time_since_epoch())
                                          .count()));
    }
    return f;
}

StatusFields status_fields(const SecondaryStats& s) {
    StatusFields f{
        {"role", "secondary"},
        {"state", s.state},
        {"mode", s.mode},
        {"epoch", std::to_string(s.epoch)},
        {"checkpoints_applied", std::to_string(s.checkpoints_applied)},
        {"pages_received_migration", std::to_string(s.pages_received_migration)},
        {"pages_received_streamed", std::to_string(s.pages_received_streamed)},
        {"pages_received_checkpoint", std::to_string(s.pages_received_checkpoint)},
        {"pages_flushed", std::to_string(s.pages_flushed)},
        {"svm_dirty_reverted", std::to_string(s.svm_dirty_reverted)},
        {"pages_copied_entering_colo", std::to_string(s.pages_copied_entering_colo)},
        {"enter_colo_pause_us", us(s.enter_colo_pause)},
        {"pause_p50_us", us(s.pause_p50)},
        {"pause_p99_us", us(s.pause_p99)},
        {"pause_max_us", us(s.pause_max)},
        {"primary_released", std::to_string(s.primary_released)},
        {"net_takeover_held_sent", std::to_string(s.net_takeover_held_sent)},
        {"net_takeover_svm_sent", std::to_string(s.net_takeover_svm_sent)},
        {"net_takeover_ingress_replayed", std::to_string(s.net_takeover_ingress_replayed)},
        {"net_takeover_tcp_translated", std::to_string(s.net_takeover_tcp_translated)},
        {"disk_sync_hashed_blocks", std::to_string(s.disk_sync_hashed_blocks)},
        {"disk_writes_applied", std::to_string(s.disk_writes_applied)},
        {"disk_bytes_applied", std::to_string(s.disk_bytes_applied)},
        {"disk_writes_pending", std::to_string(s.disk_writes_pending)},
        {"disk_flushes", std::to_string(s.disk_flushes)},
        {"disk_overlay_bytes_dropped", std::to_string(s.disk_overlay_bytes_dropped)},
        {"disk_takeover_overlay_bytes", std::to_string(s.disk_takeover_overlay_bytes)},
        {"disk_takeover_dropped_writes", std::to_string(s.disk_takeover_dropped_writes)},
        {"phase", s.phase},
    };
    if (!s.stopped_reason.empty()) f.emplace_back("stopped", s.stopped_reason);
    if (!s.witness.empty()) f.emplace_back("witness", s.witness);
    if (!s.arbitration.empty()) f.emplace_back("arbitration", s.arbitration);
    return f;
}

void add_disk_fields(Backend& backend, StatusFields& fields) {
    const auto disks = backend.disks();
    if (disks.empty()) return;
    DiskStats sum;
    for (const GuestDisk* disk : disks) {
        const DiskStats d = disk->stats();
        sum.writes += d.writes;
        sum.write_bytes += d.write_bytes;
        sum.flushes += d.flushes;
        sum.errors += d.errors;
        sum.recent_flush_p50_us = std::max(sum.recent_flush_p50_us, d.recent_flush_p50_us);
        sum.recent_flush_p99_us = std::max(sum.recent_flush_p99_us, d.recent_flush_p99_us);
    }
    fields.emplace_back("disk_guest_writes", std::to_string(sum.writes));
    fields.emplace_back("disk_guest_write_bytes", std::to_string(sum.write_bytes));
    fields.emplace_back("disk_guest_flushes", std::to_string(sum.flushes));
    fields.emplace_back("disk_guest_flush_p50_us", std::to_string(sum.recent_flush_p50_us));
    fields.emplace_back("disk_guest_flush_p99_us", std::to_string(sum.recent_flush_p99_us));
    fields.emplace_back("disk_guest_errors", std::to_string(sum.errors));
}

std::string to_json(const StatusFields& fields) {
    std::string out = "{";
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const auto& [key, value] = fields[i];
        out += (i == 0 ? "" : ", ") + json_string(key) + ": " + (is_number(value) ? value : json_string(value));
    }
    return out + "}";
}

std::string to_text(const StatusFields& fields) {
    std::size_t width = 0;
    for (const auto& f : fields) width = std::max(width, f.first.size());
    std::ostringstream out;
    for (const auto& [key, value] : fields) out << std::left << std::setw(static_cast<int>(width + 2)) << key + ":" << value << "\n";
    return out.str();
}

}  // namespace colo
