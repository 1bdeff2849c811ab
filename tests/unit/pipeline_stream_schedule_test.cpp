// The stream schedule: a pass every period, the last one before a checkpoint moved to half a
// period before it, none closer.
#include <doctest/doctest.h>

#include "toolstack/replication/stream_schedule.hpp"

using colo::next_stream_pass;
using colo::StreamClock;
using std::chrono::milliseconds;

namespace {
const StreamClock::time_point t0{};
StreamClock::time_point at(int ms) { return t0 + milliseconds(ms); }
}  // namespace

TEST_CASE("stream schedule: a pass every period while the checkpoint is far") {
    CHECK(next_stream_pass(at(0), at(100), milliseconds(20)) == at(20));
    CHECK(next_stream_pass(at(60), at(100), milliseconds(20)) == at(80));  // 80 is not yet in the last half period
}

TEST_CASE("stream schedule: the pass that would fall in the last half period moves to its start") {
    CHECK(next_stream_pass(at(75), at(100), milliseconds(20)) == at(90));  // 95 would be too close
    CHECK(next_stream_pass(at(79), at(100), milliseconds(20)) == at(90));
}

TEST_CASE("stream schedule: after a pass within the last period, the checkpoint carries the rest") {
    CHECK(next_stream_pass(at(80), at(100), milliseconds(20)) == StreamClock::time_point::max());
    CHECK(next_stream_pass(at(90), at(100), milliseconds(20)) == StreamClock::time_point::max());
    CHECK(next_stream_pass(at(130), at(100), milliseconds(20)) == StreamClock::time_point::max());  // overdue
}

TEST_CASE("stream schedule: the window the checkpoint carries is between half a period and a period") {
    // Whatever the phase of the passes, the last pass before a checkpoint at 100 ms is at 80..90 ms.
    for (int first = 0; first < 20; ++first) {
        CAPTURE(first);
        StreamClock::time_point pass = at(first), last = pass;
        while (pass != StreamClock::time_point::max()) {
            last = pass;
            pass = next_stream_pass(pass, at(100), milliseconds(20));
        }
        CHECK(last >= at(80));
        CHECK(last <= at(90));
    }
}
