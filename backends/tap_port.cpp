#include "backends/tap_port.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "backends/error.hpp"

namespace colo {

TapPort::TapPort(FrameSink handler) : handler_(std::move(handler)) {}

TapPort::~TapPort() { detach(); }

void TapPort::attach(const std::string& name, const std::string& bridge) {
    if (attached()) return;
    // Everything that can fail comes before the port takes the TAP, so that a failed attach leaves
    // it detached (not attached with no reader: deaf while saying it listens).
    auto tap = std::make_unique<TapDevice>(name, bridge, std::chrono::seconds(2));
    UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
    if (!stop.valid()) throw SystemError("eventfd for " + tap->name(), errno);
    std::lock_guard lock(mutex_);
    if (tap_) return;  // attached meanwhile by another thread: ours goes away
    tap_ = std::move(tap);
    stop_ = std::move(stop);
    try {
        reader_ = std::thread([this] { reader_main(); });
    } catch (...) {
        tap_.reset();
        stop_.reset();
        throw;
    }
}

void TapPort::detach() {
    if (reader_.joinable()) {
        const std::uint64_t one = 1;
        (void)!::write(stop_.get(), &one, sizeof one);
        reader_.join();
    }
    std::lock_guard lock(mutex_);
    stop_.reset();
    tap_.reset();
}

bool TapPort::attached() const {
    std::lock_guard lock(mutex_);
    return tap_ != nullptr;
}

std::string TapPort::name() const {
    std::lock_guard lock(mutex_);
    return tap_ ? tap_->name() : "";
}

void TapPort::write(std::span<const std::byte> frame) {
    std::lock_guard lock(mutex_);
    if (tap_) (void)tap_->write_frame(frame);
}

void TapPort::reader_main() {
    // tap_ stays while this thread runs: detach joins it before dropping the TAP.
    TapDevice& tap = *tap_;
    std::vector<std::byte> buffer(65536);
    for (;;) {
        pollfd fds[2] = {{tap.fd(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if ((fds[1].revents & POLLIN) != 0) return;
        try {
            while (auto n = tap.read_frame(buffer)) {
                if (*n == 0 || *n > kMaxFrameBytes) continue;
                handler_(std::span<const std::byte>(buffer.data(), *n));
            }
        } catch (const std::exception&) {
            return;  // the TAP went away under us: nothing more is heard, as from an unplugged cable
        }
    }
}

}  // namespace colo
