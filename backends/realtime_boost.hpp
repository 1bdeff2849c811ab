// Real-time scheduling for the moments a guest stands still.
//
// A checkpoint's pause is the guest's downtime, and on a busy host the long pauses are mostly
// waiting for a CPU: the pipeline thread, or a vCPU thread that must leave KVM_RUN and read its
// registers, queued behind other runnable work for a scheduler slice (milliseconds, where the
// work itself takes tens of microseconds). For the length of the pause the threads it waits on
// run as SCHED_FIFO at the lowest real-time priority, and they go back to their own policy before
// the guest runs again. The kernel's real-time throttle (sched_rt_runtime_us) still bounds them.
// A host that does not allow it (no CAP_SYS_NICE, a cgroup without a real-time budget) keeps the
// old pause: the boost is then a no-op that says why.
#pragma once

#include <sched.h>
#include <sys/types.h>

namespace colo {

// The kernel's id of the calling thread, as sched_setscheduler takes it.
[[nodiscard]] pid_t current_thread_id() noexcept;

class RealtimeBoost {
public:
    // Raises `thread` (0: the calling thread). Never throws: a refusal is kept in refused_errno().
    explicit RealtimeBoost(pid_t thread = 0) noexcept;
    RealtimeBoost(const RealtimeBoost&) = delete;
    RealtimeBoost& operator=(const RealtimeBoost&) = delete;
    ~RealtimeBoost();  // the thread's own policy and priority again (a thread gone meanwhile: nothing)

    [[nodiscard]] bool raised() const noexcept { return refused_errno_ == 0; }
    // Why the thread could not be raised (EPERM: not allowed here), 0 when it was.
    [[nodiscard]] int refused_errno() const noexcept { return refused_errno_; }

private:
    [[nodiscard]] bool real_time() const noexcept;  // policy_ is FIFO or RR (a thread left alone)

    pid_t thread_;
    int policy_ = SCHED_OTHER;
    sched_param param_{};
    int refused_errno_ = 0;
};

}  // namespace colo
