#include "toolstack/control/run_dir.hpp"

#include <sys/stat.h>

#include <cstdlib>

#include "backends/error.hpp"

namespace colo::control {

std::filesystem::path run_dir() {
    const char* env = std::getenv("COLO_RUN_DIR");
    std::filesystem::path dir = (env != nullptr && *env != '\0') ? env : "/run/colo-replicate";
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        throw SystemError("mkdir " + dir.string(), errno);
    }
    return dir;
}

std::filesystem::path control_socket_path(const std::string& guest_name) {
    return run_dir() / (guest_name + ".sock");
}

std::filesystem::path guest_log_path(const std::string& guest_name) {
    return run_dir() / (guest_name + ".log");
}

}  // namespace colo::control
