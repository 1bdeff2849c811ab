// What survives this host's own crash or reboot of "NAME ran here as a protected primary": a file
// $COLO_STATE_DIR/NAME.protected (default /var/lib/colo-replicate, not the run dir: /run is gone
// after a reboot). Written when protection starts; removed only when the guest's process ends
// knowing its secondary holds no copy that could run (it was told goodbye, or said goodbye
// itself). While it exists, `create NAME` refuses: after a crash, a reboot or a handover the
// secondary may be running the guest, and a second `create` (by hand or by a service manager's
// Restart=) would be a second live copy (man colo-replicate(7), Operations).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace colo::control {

[[nodiscard]] std::filesystem::path state_dir();
[[nodiscard]] std::filesystem::path primary_marker_path(const std::string& guest_name);

// Written atomically (a temporary file renamed into place) and fsynced with its directory: a
// marker that a power loss could take away would be no guard. Throws colo::SystemError.
void set_primary_marker(const std::string& guest_name, const std::string& what);
// Removes it (none: nothing to do). Throws colo::SystemError for anything but a missing file.
void clear_primary_marker(const std::string& guest_name);
// Its text, or nothing when there is none.
[[nodiscard]] std::optional<std::string> read_primary_marker(const std::string& guest_name);

}  // namespace colo::control
