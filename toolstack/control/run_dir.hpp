// Where a host's running guests can be found: one control socket and one log per guest, in
// $COLO_RUN_DIR or /run/colo-replicate (xl keeps its state under /var/run/xen the same way).
#pragma once

#include <filesystem>
#include <string>

namespace colo::control {

[[nodiscard]] std::filesystem::path run_dir();  // created (mode 0700) when missing
[[nodiscard]] std::filesystem::path control_socket_path(const std::string& guest_name);
[[nodiscard]] std::filesystem::path guest_log_path(const std::string& guest_name);

}  // namespace colo::control
