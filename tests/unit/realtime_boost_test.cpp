// RealtimeBoost: a thread runs SCHED_FIFO while boosted and gets its own policy and nice value
// back; where the host refuses, nothing changes and the refusal is reported.
#include <doctest/doctest.h>

#include <sched.h>
#include <sys/resource.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "backends/realtime_boost.hpp"

using colo::RealtimeBoost;
using colo::current_thread_id;

namespace {

int policy_of(pid_t thread) { return ::sched_getscheduler(thread) & ~SCHED_RESET_ON_FORK; }

// A thread that waits until told to end, so another can look at and change its policy.
class ParkedThread {
public:
    ParkedThread()
        : thread_([this] {
              std::unique_lock lock(mutex_);
              id_ = current_thread_id();
              changed_.notify_all();
              changed_.wait(lock, [&] { return done_; });
          }) {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return id_ != 0; });
    }
    ~ParkedThread() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        changed_.notify_all();
        thread_.join();
    }
    [[nodiscard]] pid_t id() const { return id_; }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    pid_t id_ = 0;
    bool done_ = false;
    std::thread thread_;
};

}  // namespace

TEST_CASE("realtime boost: the calling thread runs SCHED_FIFO while boosted, then its own policy and nice value") {
    REQUIRE(::setpriority(PRIO_PROCESS, static_cast<id_t>(current_thread_id()), 3) == 0);
    REQUIRE(policy_of(0) == SCHED_OTHER);
    {
        RealtimeBoost boost;
        if (boost.raised()) {
            CHECK(policy_of(0) == SCHED_FIFO);
            sched_param param{};
            REQUIRE(::sched_getparam(0, &param) == 0);
            CHECK(param.sched_priority == ::sched_get_priority_min(SCHED_FIFO));
        } else {
            // Not allowed here (no CAP_SYS_NICE): reported, and nothing changed.
            CHECK(boost.refused_errno() == EPERM);
            CHECK(policy_of(0) == SCHED_OTHER);
        }
    }
    CHECK(policy_of(0) == SCHED_OTHER);
    errno = 0;
    CHECK(::getpriority(PRIO_PROCESS, static_cast<id_t>(current_thread_id())) == 3);
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(current_thread_id()), 0);  // as it was (needs CAP_SYS_NICE)
}

TEST_CASE("realtime boost: another thread is boosted by its id, and lowered again") {
    ParkedThread parked;
    REQUIRE(policy_of(parked.id()) == SCHED_OTHER);
    {
        RealtimeBoost boost(parked.id());
        CHECK(policy_of(parked.id()) == (boost.raised() ? SCHED_FIFO : SCHED_OTHER));
        CHECK(policy_of(0) == SCHED_OTHER);  // only that thread
    }
    CHECK(policy_of(parked.id()) == SCHED_OTHER);
}

TEST_CASE("realtime boost: a thread already real-time keeps its own priority") {
    ParkedThread parked;
    sched_param own{};
    own.sched_priority = ::sched_get_priority_min(SCHED_FIFO) + 1;
    if (::sched_setscheduler(parked.id(), SCHED_FIFO, &own) != 0) {
        MESSAGE("real-time scheduling is not allowed here: nothing to check");
        return;
    }
    {
        RealtimeBoost boost(parked.id());
        CHECK(boost.raised());
        sched_param now{};
        REQUIRE(::sched_getparam(parked.id(), &now) == 0);
        CHECK(now.sched_priority == own.sched_priority);
    }
    CHECK(policy_of(parked.id()) == SCHED_FIFO);
    sched_param other{};
    REQUIRE(::sched_setscheduler(parked.id(), SCHED_OTHER, &other) == 0);
}

TEST_CASE("realtime boost: a thread that does not exist is refused with ESRCH") {
    pid_t gone = 0;
    {
        ParkedThread parked;
        gone = parked.id();
    }
    // The id may be taken again by a new thread of some process, but hardly within this test.
    RealtimeBoost boost(gone);
    CHECK_FALSE(boost.raised());
    CHECK(boost.refused_errno() == ESRCH);
}
