// Where a host's running guests can be found: one control socket and one log per guest, in
// $COLO_RUN_DIR or /run/colo-replicate (xl keeps its state under /var/run/xen the same way).
//
// Who may use them (man colo-replicate(7), "Local control"): the owner of the guest processes
// (root), and the members of $COLO_GROUP when it names a group. Enforced three times, none of it
// left to the umask:
//   - the run directory is owned by the process's user and writable by nobody else (refused
//     otherwise: a directory others can write lets them plant a socket or a symlink); its mode is
//     set to 0700, or 0750 with group COLO_GROUP;
//   - sockets are made 0600 (0660 with the group) under a temporary name and renamed into place,
//     logs are opened without following a symlink and must be our own regular file, then 0600
//     (0640 with the group);
//   - the control socket asks the kernel who connected (SO_PEERCRED, SO_PEERGROUPS) and answers
//     anyone else with one line "error permission denied: ..." and nothing more.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

#include "backends/unique_fd.hpp"

namespace colo::control {

// The run directory's path, for clients (they only connect; the kernel checks their access).
[[nodiscard]] std::filesystem::path run_dir();
// The run directory for a process that puts something in it: created when missing, checked
// (owner, nobody else may write, not a symlink someone else made) and given its mode.
[[nodiscard]] std::filesystem::path owned_run_dir();
[[nodiscard]] std::filesystem::path control_socket_path(const std::string& guest_name);
[[nodiscard]] std::filesystem::path guest_log_path(const std::string& guest_name);

// The group of $COLO_GROUP (a name or a number); none when it is unset or empty.
[[nodiscard]] std::optional<gid_t> control_group();

// Opens (appending, created when missing) a log file in the owned run directory: never through a
// symlink, only a regular file of ours with one link; its mode is set as above.
[[nodiscard]] UniqueFd open_run_dir_log(const std::filesystem::path& log);

// Gives a socket just bound at `path` (in the owned run directory) its mode and group.
void restrict_socket(const std::filesystem::path& path);

// Why the peer of a connected Unix socket may not use it ("" when it may): root, our own user, or
// a member of control_group().
[[nodiscard]] std::string refuse_peer(int fd);

}  // namespace colo::control
