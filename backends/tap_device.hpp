// A TAP device (STYLE §1: one RAII object per fd): the host side of a guest NIC. Opened with
// IFF_TAP|IFF_NO_PI (whole Ethernet frames, no packet-info header, no offloads), brought up, and
// added to a bridge when one is named. Closing the fd removes the interface (not persistent).
//
// Errors are colo::SystemError naming the operation and the interface ("TUNSETIFF tap0: Device
// or resource busy").
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>

#include "backends/unique_fd.hpp"

namespace colo {

class TapDevice {
public:
    // `name` empty: the kernel picks "crtap%d". `busy_wait`: how long to retry while the name is
    // taken (a dead process's TAP of the same name goes away as the kernel closes its files).
    TapDevice(const std::string& name, const std::string& bridge, std::chrono::milliseconds busy_wait);

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

    // One frame out; a full queue or a down link drops it, as a wire would (false).
    bool write_frame(std::span<const std::byte> frame);
    // One frame in (the fd is non-blocking): its size, or nullopt when none is waiting.
    [[nodiscard]] std::optional<std::size_t> read_frame(std::span<std::byte> buffer);

private:
    UniqueFd fd_;
    std::string name_;
};

}  // namespace colo
