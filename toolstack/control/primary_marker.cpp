#include "toolstack/control/primary_marker.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "backends/error.hpp"
#include "backends/unique_fd.hpp"

namespace colo::control {

namespace {

void sync_path(const std::filesystem::path& path, int flags) {
    UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
    if (!fd.valid()) throw SystemError("open " + path.string(), errno);
    if (::fsync(fd.get()) != 0) throw SystemError("fsync " + path.string(), errno);
}

}  // namespace

std::filesystem::path state_dir() {
    const char* env = std::getenv("COLO_STATE_DIR");
    return (env != nullptr && *env != '\0') ? env : "/var/lib/colo-replicate";
}

std::filesystem::path primary_marker_path(const std::string& guest_name) { return state_dir() / (guest_name + ".protected"); }

void set_primary_marker(const std::string& guest_name, const std::string& what) {
    const auto dir = state_dir();
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw SystemError("mkdir " + dir.string(), errno);
    const auto path = primary_marker_path(guest_name);
    const auto temporary = dir / ("." + guest_name + ".protected.new");
    {
        UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!fd.valid()) throw SystemError("open " + temporary.string(), errno);
        const std::string text = what + "\n";
        if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
            throw SystemError("write " + temporary.string(), errno);
        }
        if (::fsync(fd.get()) != 0) throw SystemError("fsync " + temporary.string(), errno);
    }
    if (::rename(temporary.c_str(), path.c_str()) != 0) throw SystemError("rename to " + path.string(), errno);
    sync_path(dir, O_RDONLY | O_DIRECTORY);
}

void clear_primary_marker(const std::string& guest_name) {
    const auto path = primary_marker_path(guest_name);
    if (::unlink(path.c_str()) != 0) {
        if (errno == ENOENT) return;
        throw SystemError("unlink " + path.string(), errno);
    }
    sync_path(state_dir(), O_RDONLY | O_DIRECTORY);
}

std::optional<std::string> read_primary_marker(const std::string& guest_name) {
    std::ifstream in(primary_marker_path(guest_name));
    if (!in) return std::nullopt;
    std::string line;
    std::getline(in, line);
    return line;
}

}  // namespace colo::control
