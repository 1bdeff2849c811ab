// The sending half of live migration (pre-copy), shared by `migrate` and by the primary's initial
// sync before COLO:
//
//   send_live():   start dirty logging; PageBatch* of all memory (pass 1); then while the guest
//                  runs, harvest and send dirty pages (passes 2..) until a harvest finds at most
//                  stop_threshold_pages, or max_rounds dirty passes were sent. A guest that
//                  dirties faster than the link carries is throttled (auto_converge).
//   send_final():  pause (through the throttle if one ran: it goes from throttled to paused with no
//                  free-running moment between); harvest; PageBatch* of what is left; DeviceState* (save_state);
//                  MigrationCommit{pages_total}. Returns with the guest paused and dirty logging
//                  still on, so the log keeps collecting what the first checkpoint must send.
//
// Pages harvested but not yet sent stay in pending() (a failed send loses none of them).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>

#include "backends/backend.hpp"
#include "toolstack/replication/channel.hpp"
#include "toolstack/replication/guest_throttle.hpp"
#include "toolstack/replication/replication_config.hpp"

namespace colo {

class PrecopySender {
public:
    PrecopySender(Backend& backend, Channel& channel, PrecopyConfig config, LogFn log, const char* who);

    // Called after every page batch (checkpoint devices' drain: a disk's writes meanwhile).
    void set_between_batches(std::function<void()> between) { between_ = std::move(between); }
    void send_live();
    // `paused` runs once the guest is paused, before its state is saved (checkpoint devices'
    // quiesce hook).
    void send_final(const std::function<void()>& paused = {});

    [[nodiscard]] unsigned passes() const { return passes_; }  // the full and the final pass included
    [[nodiscard]] std::uint64_t pages_sent() const { return pages_sent_; }
    [[nodiscard]] std::uint64_t pages_final() const { return pages_final_; }
    [[nodiscard]] std::uint64_t bytes_sent() const { return bytes_sent_; }
    [[nodiscard]] const DirtyBitmap& pending() const { return pending_; }
    // The highest throttle auto-converge applied, in percent of the time the guest was paused.
    [[nodiscard]] unsigned throttle_percent() const { return throttle_percent_; }

private:
    // Sends every page in pending_ and clears those bits once sent. Returns pages sent.
    std::uint64_t send_pending();
    void send(const protocol::Message& message);

    Backend& backend_;
    Channel& channel_;
    PrecopyConfig config_;
    LogFn log_;
    const char* who_;
    std::function<void()> between_;
    DirtyBitmap pending_;
    // Atomic: `status` reads them from another thread while the pre-copy runs (progress).
    std::atomic<unsigned> passes_{0};
    std::atomic<std::uint64_t> pages_sent_{0};
    std::uint64_t pages_final_ = 0;
    std::atomic<std::uint64_t> bytes_sent_{0};
    std::atomic<unsigned> throttle_percent_{0};
    // Auto-converge, from send_live until send_final has paused the guest through it.
    std::unique_ptr<GuestThrottle> throttle_;
};

// Checks the settings a user can get wrong; throws colo::Error naming the value.
void check_precopy_config(const PrecopyConfig& config);

}  // namespace colo
