// Auto-converge for pre-copy: when the guest dirties memory faster than the link carries it, the
// dirty rounds stop shrinking and a migration (or the initial sync of protection) never ends. A
// GuestThrottle slows the guest down through the Backend interface alone, so every hypervisor
// gets it: a thread pauses the guest for percent% of every period and lets it run the rest.
// (QEMU's auto-converge sleeps each vCPU thread the same way; Xen's save code has no throttle and
// simply stops after its last round, taking a long downtime instead.)
//
// Only for a guest that runs while the throttle is in use; stop() (or the destructor) leaves it
// running. Not for use while anyone else pauses and resumes the same guest.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "backends/backend.hpp"

namespace colo {

class GuestThrottle {
public:
    static constexpr std::chrono::milliseconds kDefaultPeriod{20};

    explicit GuestThrottle(Backend& backend, std::chrono::milliseconds period = kDefaultPeriod);
    ~GuestThrottle();
    GuestThrottle(const GuestThrottle&) = delete;
    GuestThrottle& operator=(const GuestThrottle&) = delete;

    // 0 lets the guest run freely; at most 99. The first non-zero value starts the thread.
    void set_percent(unsigned percent);
    [[nodiscard]] unsigned percent() const;
    // Ends throttling with the guest running. Throws colo::Error if pausing or resuming the
    // guest failed on the throttle's thread (the pre-copy must not go on with a broken guest).
    void stop();

private:
    void run();

    Backend& backend_;
    const std::chrono::milliseconds period_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    unsigned percent_ = 0;
    bool stopping_ = false;
    std::string failure_;
    std::thread thread_;
};

}  // namespace colo
