// Running a guest in the background the way `xl create` does: the command returns once the guest
// is up (or prints why it could not start), and the guest lives on in a detached process.
#pragma once

#include <filesystem>
#include <functional>

namespace colo::control {

// Forks a detached child (new session, stdin from /dev/null, stdout and stderr appended to `log`,
// a file in the run directory opened by open_run_dir_log)
// that runs `body`. body calls `ready()` once the guest is up; an exception from body before that
// is the parent's error. Returns the child's pid in the parent once the child is ready; throws
// colo::Error with the child's message if it failed first. The child never returns.
int run_detached(const std::filesystem::path& log, const std::function<void(const std::function<void()>& ready)>& body);

// Makes SIGINT and SIGTERM call `stop` (which must be async-signal-safe) and ignores SIGPIPE.
void on_termination_signal(void (*stop)());
// The same, telling `stop` which signal arrived.
void on_termination_signal(void (*stop)(int signal));

}  // namespace colo::control
