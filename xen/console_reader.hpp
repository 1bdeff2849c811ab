// Follows a Xen guest's console ring on a thread of its own and hands new output to the sink as
// it appears, so the pipeline sees console output while the guest runs (COLO compares it between
// checkpoints), not only when it next pauses. The ring page is mapped once, on its own, for the
// reader's lifetime: the thread touches nothing but that memory, never the XenCalls handles,
// which stay the pipeline thread's.
//
// Threading: the sink is called from the reader thread, or from the caller of poll(), never from
// both at once. It must not call back into the backend. An exception from the sink is dropped
// (the thread has no one to report to); the bytes it was given are not offered again.
#pragma once

#include <chrono>
#include <functional>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "backends/backend.hpp"
#include "xen/console_ring.hpp"
#include "xen/foreign_mapping.hpp"

namespace colo::xen {

class ConsoleReader {
public:
    static constexpr std::chrono::milliseconds kDefaultPeriod{20};

    // `ring` maps exactly the console page. Output from before now is not delivered.
    ConsoleReader(ForeignMapping ring, ConsoleSink sink, std::chrono::milliseconds period = kDefaultPeriod);
    ~ConsoleReader();  // stops and joins the thread, then unmaps the page
    ConsoleReader(const ConsoleReader&) = delete;
    ConsoleReader& operator=(const ConsoleReader&) = delete;

    // Delivers whatever is new now, on the caller's thread.
    void poll();
    // Hands later output to `sink` instead. The place in the ring stays, so the new sink gets
    // exactly what the old one had not been given. Once this returns the old sink is not called
    // again. While the sink is empty nothing is taken from the ring (the next sink gets it, up
    // to a ring's worth).
    void set_sink(ConsoleSink sink);
    // Runs `write` (which overwrites the ring page: a secondary loading a checkpoint) with the
    // reader held off, then takes the ring's position as it is after the write as the new start:
    // what the written page holds is the sender's output, not new output of this guest.
    void rebase_around(const std::function<void()>& write);
    [[nodiscard]] std::uint64_t lost_bytes() const;

private:
    void run();

    ForeignMapping ring_;
    ConsoleSink sink_;
    std::chrono::milliseconds period_;
    mutable std::mutex mutex_;  // guards reader_ and the sink call
    ConsoleRing reader_;
    std::mutex stop_mutex_;
    std::condition_variable stop_signal_;
    bool stopping_ = false;
    std::thread thread_;  // last: starts once everything above exists
};

}  // namespace colo::xen
