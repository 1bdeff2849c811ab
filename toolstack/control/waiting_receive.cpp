#include "toolstack/control/waiting_receive.hpp"

#include <fcntl.h>
#include <signal.h>
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
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) throw SystemError("open " + path.string(), errno);
    const std::string text = std::to_string(::getpid()) + " " + listen_address + "\n";
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
        throw SystemError("write " + path.string(), errno);
    }
}

WaitingReceive::~WaitingReceive() { (void)::unlink(file_of(guest_name_).c_str()); }

std::optional<WaitingReceiveInfo> find_waiting_receive(const std::string& guest_name) {
    std::ifstream in(file_of(guest_name));
    WaitingReceiveInfo info;
    if (!(in >> info.pid >> info.listen_address) || info.pid <= 0) return std::nullopt;
    // A receive killed by SIGKILL leaves its file: only a live process counts.
    if (::kill(info.pid, 0) != 0 && errno == ESRCH) return std::nullopt;
    return info;
}

}  // namespace colo::control
