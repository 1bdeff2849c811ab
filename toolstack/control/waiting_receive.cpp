#include "toolstack/control/waiting_receive.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "backends/error.hpp"
#include "backends/unique_fd.hpp"
#include "toolstack/control/run_dir.hpp"

namespace colo::control {

namespace {

std::filesystem::path file_of(const std::string& guest_name) { return run_dir() / (guest_name + ".receive"); }

}  // namespace

WaitingReceive::WaitingReceive(std::string guest_name, const std::string& listen_address) : guest_name_(std::move(guest_name)) {
    const auto path = owned_run_dir() / (guest_name_ + ".receive");
    lock_ = UniqueFd(::open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!lock_.valid()) throw SystemError("open " + path.string(), errno);
    // Held for as long as this process lives: a file whose lock nobody holds is a leftover (a
    // receive killed, or ended by a signal that skips destructors), whatever its pid says now.
    if (::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
        throw SystemError("lock " + path.string() + " (another receive for " + guest_name_ + " waits)", errno);
    }
    const std::string text = std::to_string(::getpid()) + " " + listen_address + "\n";
    if (::ftruncate(lock_.get(), 0) != 0) throw SystemError("truncate " + path.string(), errno);
    if (::write(lock_.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
        throw SystemError("write " + path.string(), errno);
    }
}

WaitingReceive::~WaitingReceive() { (void)::unlink(file_of(guest_name_).c_str()); }

std::optional<WaitingReceiveInfo> find_waiting_receive(const std::string& guest_name) {
    const auto path = file_of(guest_name);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    // Only a receive that still holds its lock waits: one that ended (even as a zombie, whose
    // files are closed) left a file nobody locks.
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return std::nullopt;
    std::ifstream in(path);
    WaitingReceiveInfo info;
    if (!(in >> info.pid >> info.listen_address) || info.pid <= 0) return std::nullopt;
    return info;
}

}  // namespace colo::control
