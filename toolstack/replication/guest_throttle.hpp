// Auto-converge for pre-copy: when the guest dirties memory faster than the link carries it, the
// dirty rounds stop shrinking and a migration (or the initial sync of protection) never ends. A
// GuestThrottle slows the guest down through the Backend interface alone, so every hypervisor
// gets it: a thread pauses the guest for percent% of every period (a spell) and lets it run the
// rest. (QEMU's auto-converge sleeps each vCPU thread the same way; Xen's save code has no
// throttle and simply stops after its last round, taking a long downtime instead.)
//
// Two parties pause the guest while a throttle runs: its spells and the pipeline. Backend's
// pause() and resume() are idempotent, not counted, so each would undo the other: a spell that
// ends resumes a guest the pipeline has just paused for its final pass, and the pipeline's resume
// cuts a spell short. So while a throttle runs the pipeline pauses and resumes through it
// (pause_guest, resume_guest), and one mutex makes every decision and its Backend call one step:
// no spell starts while the pipeline holds the guest paused, a spell's end does not resume it
// then, and the pipeline's resume during a spell takes effect when the spell ends. Nobody else
// may pause the same guest meanwhile (GuestService refuses the operator while the pipeline owns
// the guest).
//
// Threading: every method from the pipeline's thread; spells run on the throttle's own thread.
// The Backend is called from both, one call at a time (under mutex_).
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

    // For a guest that runs (the pipeline does not hold it paused).
    explicit GuestThrottle(Backend& backend, std::chrono::milliseconds period = kDefaultPeriod);
    ~GuestThrottle();
    GuestThrottle(const GuestThrottle&) = delete;
    GuestThrottle& operator=(const GuestThrottle&) = delete;

    // 0 lets the guest run freely; at most 99. The first non-zero value starts the thread.
    void set_percent(unsigned percent);
    [[nodiscard]] unsigned percent() const;
    // The pipeline's own pause and resume while the throttle runs (see above). Backend errors
    // reach the caller.
    void pause_guest();
    void resume_guest();
    // Ends throttling (a spell under way ends at once) and leaves the guest as the pipeline holds
    // it: running, or paused after pause_guest(). Throws colo::Error if pausing or resuming the
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
    bool held_ = false;      // the pipeline holds the guest paused (pause_guest)
    bool in_spell_ = false;  // a spell holds the guest paused
    std::string failure_;
    std::thread thread_;
};

}  // namespace colo
