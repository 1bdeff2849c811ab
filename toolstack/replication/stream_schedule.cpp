#include "toolstack/replication/stream_schedule.hpp"

namespace colo {

StreamClock::time_point next_stream_pass(StreamClock::time_point last_pass, StreamClock::time_point next_checkpoint,
                                         std::chrono::milliseconds stream_period) {
    const auto regular = last_pass + stream_period;
    const auto last_useful = next_checkpoint - stream_period / 2;
    if (regular <= last_useful) return regular;
    if (last_pass < next_checkpoint - stream_period) return last_useful;
    return StreamClock::time_point::max();
}

}  // namespace colo
