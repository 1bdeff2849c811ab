// The process that owns a running guest serves its control socket (control_socket.hpp) until the
// guest is destroyed. It knows the lifecycle requests every guest has (info, pause, unpause,
// destroy, console, save); other layers add theirs (the pipeline adds protect, status, failover)
// with add_command.
//
// Threading: serve() runs the request loop on the calling thread; handlers run on it one at a
// time. request_stop() may be called from any thread or a signal handler.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/guest_config.hpp"
#include "backends/unique_fd.hpp"
#include "toolstack/control/console_fanout.hpp"

namespace colo::control {

class ControlListener;

struct Reply {
    std::vector<std::string> data;  // sent as "data ..." lines before "ok"
    UniqueFd stream;                // set by a handler that keeps the connection (console)
};

using CommandHandler = std::function<void(const std::vector<std::string>& args, Reply& reply, UniqueFd& client)>;

class GuestService {
public:
    GuestService(std::unique_ptr<Backend> backend, GuestConfig config);
    ~GuestService();
    GuestService(const GuestService&) = delete;
    GuestService& operator=(const GuestService&) = delete;

    [[nodiscard]] Backend& backend() { return *backend_; }
    [[nodiscard]] const GuestConfig& config() const { return config_; }
    [[nodiscard]] ConsoleFanout& console() { return console_; }

    // What `list` shows in its last column ("-", "colo primary", ...).
    void set_mode(std::string mode);
    [[nodiscard]] std::string mode() const;

    void add_command(const std::string& name, CommandHandler handler);

    // Binds the control socket; after this the guest is visible to `list`. Throws when a guest of
    // the same name already runs.
    void bind();
    // Serves requests until destroy or request_stop(). Calls bind() first when needed.
    void serve();
    void request_stop() noexcept;
    [[nodiscard]] bool stopping() const noexcept { return stop_.load(); }

    // Routes the backend's console output straight to the fan-out (an unprotected guest). The
    // pipeline replaces this while it holds output back.
    void release_console_directly();

private:
    void handle(UniqueFd client);

    std::unique_ptr<Backend> backend_;
    GuestConfig config_;
    ConsoleFanout console_;
    std::map<std::string, CommandHandler> commands_;
    std::unique_ptr<ControlListener> listener_;
    UniqueFd wakeup_;  // eventfd: request_stop() wakes the poll loop
    std::atomic<bool> stop_{false};
    mutable std::mutex mode_mutex_;
    std::string mode_ = "-";
};

}  // namespace colo::control
