// A TAP device (tap_device.hpp) and the thread that reads it, attached and detached as one: the
// side of a guest NIC that faces a host network. Every frame read goes to the port's handler, on
// the reader thread; frames larger than kMaxFrameBytes are dropped (they fit no guest NIC here).
//
// Threading: attach, detach, write and the queries from any thread. The handler must not call
// attach or detach (detach waits for the reader thread).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "backends/guest_nic.hpp"
#include "backends/tap_device.hpp"
#include "backends/unique_fd.hpp"

namespace colo {

class TapPort {
public:
    explicit TapPort(FrameSink handler);
    ~TapPort();  // detaches
    TapPort(const TapPort&) = delete;
    TapPort& operator=(const TapPort&) = delete;

    // Opens the TAP `name` ("" lets the kernel pick one), joins `bridge` (unless ""), and starts
    // reading. Nothing happens when attached already. Throws colo::SystemError, leaving it detached.
    void attach(const std::string& name, const std::string& bridge);
    // Stops reading and closes the TAP (the interface goes away). Idempotent.
    void detach();
    [[nodiscard]] bool attached() const;
    [[nodiscard]] std::string name() const;  // "" while detached
    // One frame out of the TAP; dropped while detached or when the TAP's queue is full.
    void write(std::span<const std::byte> frame);

private:
    void reader_main();

    const FrameSink handler_;
    mutable std::mutex mutex_;  // guards tap_ (the reader uses it without: detach joins it first)
    std::unique_ptr<TapDevice> tap_;
    UniqueFd stop_;  // eventfd that ends the reader
    std::thread reader_;
};

}  // namespace colo
