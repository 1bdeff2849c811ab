#include "backends/realtime_boost.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace colo {

pid_t current_thread_id() noexcept { return static_cast<pid_t>(::syscall(SYS_gettid)); }

RealtimeBoost::RealtimeBoost(pid_t thread) noexcept : thread_(thread) {
    policy_ = ::sched_getscheduler(thread_);
    if (policy_ < 0 || ::sched_getparam(thread_, &param_) < 0) {
        refused_errno_ = errno;
        return;
    }
    if (policy_ == SCHED_FIFO || policy_ == SCHED_RR) return;  // real-time already: left as it is
    sched_param fifo{};
    fifo.sched_priority = ::sched_get_priority_min(SCHED_FIFO);
    if (::sched_setscheduler(thread_, SCHED_FIFO, &fifo) < 0) refused_errno_ = errno;
}

RealtimeBoost::~RealtimeBoost() {
    if (refused_errno_ != 0 || policy_ == SCHED_FIFO || policy_ == SCHED_RR) return;
    // A SCHED_OTHER thread keeps its nice value across the round trip. Failing to go back can
    // only mean the thread has gone (ESRCH): there is nothing left to lower.
    (void)::sched_setscheduler(thread_, policy_, &param_);
}

}  // namespace colo
