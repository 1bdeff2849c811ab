// The handlers behind the command table. An empty std::function (nullptr here) marks a command
// that is planned but not built yet; the table then says so and exits 2.
#pragma once

#include "toolstack/cli/command_table.hpp"

namespace colo::cli {

using Handler = int (*)(const po::variables_map&, Io&);

// Guest lifecycle (KVM: our own VMM process per guest, reached through a control socket).
inline constexpr Handler run_create = nullptr;
inline constexpr Handler run_list = nullptr;
inline constexpr Handler run_console = nullptr;
inline constexpr Handler run_destroy = nullptr;
inline constexpr Handler run_pause = nullptr;
inline constexpr Handler run_unpause = nullptr;
inline constexpr Handler run_save = nullptr;
inline constexpr Handler run_restore = nullptr;

// Replication.
inline constexpr Handler run_migrate = nullptr;
inline constexpr Handler run_protect = nullptr;
inline constexpr Handler run_receive = nullptr;
inline constexpr Handler run_status = nullptr;
inline constexpr Handler run_failover = nullptr;

}  // namespace colo::cli
