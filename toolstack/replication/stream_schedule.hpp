// When the primary streams dirty pages between two checkpoints. A pass every stream period,
// except near the next checkpoint: a page streamed just before the pause is likely sent again by
// the checkpoint (a hot page twice for nothing), while a pass long before it leaves more for the
// paused copy. So the last pass before a checkpoint is moved to half a period before it, and
// none runs closer than that:
//
//       pass       pass       pass  pass  |checkpoint
//   ----|----------|----------|-----|--half-|
//                                   ^ moved: the regular one would fall inside the last half
//
// A pass that already ran within the last period before the checkpoint is the last one; the
// checkpoint carries what is dirtied after it (between half a period and a period's worth).
#pragma once

#include <chrono>

namespace colo {

using StreamClock = std::chrono::steady_clock;

// The time of the next stream pass, or time_point::max() when the checkpoint carries the rest.
[[nodiscard]] StreamClock::time_point next_stream_pass(StreamClock::time_point last_pass,
                                                       StreamClock::time_point next_checkpoint,
                                                       std::chrono::milliseconds stream_period);

}  // namespace colo
