#include "backends/realtime_boost.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace colo {

pid_t current_thread_id() noexcept { return static_cast<pid_t>(::syscall(SYS_gettid)); }

bool RealtimeBoost::real_time() const noexcept {
    const int policy = policy_ & ~SCHED_RESET_ON_FORK;
    return policy == SCHED_FIFO || policy == SCHED_RR;
}

RealtimeBoost::RealtimeBoost(pid_t thread) noexcept : thread_(thread) {
    policy_ = ::sched_getscheduler(thread_);
    if (policy_ < 0 || ::sched_getparam(thread_, &param_) < 0) {
        refused_errno_ = errno;
        return;
    }
    if (real_time()) return;  // real-time already: left as it is
    sched_param fifo{};
    fifo.sched_priority = ::sched_get_priority_min(SCHED_FIFO);
    if (::sched_setscheduler(thread_, SCHED_FIFO, &fifo) < 0) refused_errno_ = errno;
}

RealtimeBoost::~RealtimeBoost() {
    if (refused_errno_ != 0 || real_time()) return;
    // A SCHED_OTHER thread keeps its nice value across the round trip. Failing to go back can
    // only mean the thread has gone (ESRCH): there is nothing left to lower.
    (void)::sched_setscheduler(thread_, policy_, &param_);
}

}  // namespace colo
