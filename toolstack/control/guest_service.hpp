// The process that owns a running guest serves its control socket (control_socket.hpp) until the
// guest is destroyed. It knows the lifecycle requests every guest has (info, pause, unpause,
// destroy, console, save); other layers add theirs (the pipeline adds protect, status, failover)
// with add_command.
//
// One owner of the guest at a time. While the pipeline protects, migrates or receives the guest it
// owns it: an operator's pause would be undone by the next checkpoint's resume (or undo one), and
// a save would copy memory that an early resume lets the guest change. So `pause`, `unpause` and
// `save` ask refuse_unless_operator_owns() first, and are refused with one line saying why
// ("guest g1 is protected (colo); ..."). The checks and the hand-overs to the pipeline (protect,
// migrate) all run on the control thread, one request at a time, so nothing slips in between.
//
// Threading: serve() runs the request loop on the calling thread; handlers run on it one at a
// time. A handler that must wait for long work (migrate) takes `client` and answers it later from
// another thread; the loop goes on serving. request_stop() may be called from any thread or a
// signal handler. backend() is a SerializedBackend: the pipeline's thread, the throttle's and the
// control thread may all call it, one call at a time.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/guest_config.hpp"
#include "backends/serialized_backend.hpp"
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

    [[nodiscard]] Backend& backend() { return backend_; }
    [[nodiscard]] const GuestConfig& config() const { return config_; }
    [[nodiscard]] ConsoleFanout& console() { return console_; }

    // What `list` shows in its last column ("-", "colo primary", ...).
    void set_mode(std::string mode);
    [[nodiscard]] std::string mode() const;

    void add_command(const std::string& name, CommandHandler handler);

    // Who owns the guest now: `busy` returns "" when the operator does, otherwise what the guest
    // is and what to do first, e.g. "protected (colo); destroy its secondary to end protection
    // first". Installed once by the replication layer; runs on the control thread.
    void set_owner_check(std::function<std::string()> busy);
    // Throws colo::Error("guest NAME is ...") unless the operator owns the guest.
    void refuse_unless_operator_owns() const;

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

    SerializedBackend backend_;
    GuestConfig config_;
    ConsoleFanout console_;
    std::map<std::string, CommandHandler> commands_;
    std::function<std::string()> owner_check_;
    std::unique_ptr<ControlListener> listener_;
    UniqueFd wakeup_;  // eventfd: request_stop() wakes the poll loop
    std::atomic<bool> stop_{false};
    mutable std::mutex mode_mutex_;
    std::string mode_ = "-";
};

}  // namespace colo::control
