#include "backends/tap_device.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "backends/error.hpp"
#include "backends/net_link.hpp"

namespace colo {

namespace {

ifreq request_for(const std::string& name) {
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    return request;
}

}  // namespace

TapDevice::TapDevice(const std::string& name, const std::string& bridge, std::chrono::milliseconds busy_wait) {
    const std::string wanted = name.empty() ? "crtap%d" : name;
    if (wanted.size() >= IFNAMSIZ) throw Error("TAP name '" + wanted + "' is longer than 15 characters");
    const auto deadline = std::chrono::steady_clock::now() + busy_wait;
    for (;;) {
        fd_ = UniqueFd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
        if (!fd_.valid()) throw SystemError("open /dev/net/tun", errno);
        ifreq request = request_for(wanted);
        request.ifr_flags = IFF_TAP | IFF_NO_PI;
        if (::ioctl(fd_.get(), TUNSETIFF, &request) == 0) {
            name_ = request.ifr_name;
            break;
        }
        const int error = errno;
        if (error != EBUSY || std::chrono::steady_clock::now() >= deadline) {
            throw SystemError("TUNSETIFF " + wanted, error);
        }
        fd_ = UniqueFd();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the other TAP's fd is closing
    }
    net_link::set_up(name_);
    if (!bridge.empty()) net_link::add_to_bridge(bridge, name_);
}

bool TapDevice::write_frame(std::span<const std::byte> frame) {
    for (;;) {
        const ssize_t n = ::write(fd_.get(), frame.data(), frame.size());
        if (n >= 0) return true;
        if (errno == EINTR) continue;
        // EAGAIN (queue full), EIO (link down): dropped, as on a wire.
        if (errno == EAGAIN || errno == EIO) return false;
        throw SystemError("write to " + name_, errno);
    }
}

std::optional<std::size_t> TapDevice::read_frame(std::span<std::byte> buffer) {
    for (;;) {
        const ssize_t n = ::read(fd_.get(), buffer.data(), buffer.size());
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return std::nullopt;
        throw SystemError("read from " + name_, errno);
    }
}

}  // namespace colo
