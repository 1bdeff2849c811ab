// protect, migrate, receive, status, failover. The primary's pipeline runs in the process that
// owns the guest (toolstack/primary_side.hpp); these commands only ask it over the control
// socket. `receive` is itself the process that will own the secondary guest.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string_view>
#include <thread>

#include "backends/error.hpp"
#include "toolstack/cli/commands.hpp"
#include "toolstack/cli/status_watch.hpp"
#include "toolstack/control/control_socket.hpp"
#include "toolstack/control/daemon.hpp"
#include "toolstack/control/guest_service.hpp"
#include "toolstack/control/run_dir.hpp"
#include "toolstack/control/waiting_receive.hpp"
#include "toolstack/failover/open_witness.hpp"
#include "toolstack/protection_settings.hpp"
#include "toolstack/replication_link.hpp"
#include "toolstack/secondary_side.hpp"
#include "toolstack/status_fields.hpp"
#include "toolstack/transport/address_lookup.hpp"
#include "toolstack/transport/endpoint.hpp"
#include "toolstack/transport/link_security.hpp"
#include "toolstack/transport/tcp_listener.hpp"

namespace colo::cli {

namespace {

std::map<std::string, std::string> status_of(const std::string& name) {
    std::map<std::string, std::string> fields;
    for (const auto& line : control::request(name, "status", std::chrono::seconds(10))) {
        const auto space = line.find(' ');
        fields[line.substr(0, space)] = space == std::string::npos ? "" : line.substr(space + 1);
    }
    return fields;
}

// A "caveat TEXT" line of a protect or migrate reply (PrimarySide): printed as a warning.
bool warn_caveat(const std::string& line, const char* command, Io& io) {
    constexpr std::string_view kPrefix = "caveat ";
    if (!line.starts_with(kPrefix)) return false;
    io.err << "colo-replicate " << command << ": warning: " << line.substr(kPrefix.size()) << "\n";
    return true;
}

std::uint64_t number(const std::map<std::string, std::string>& status, const char* key) {
    const auto found = status.find(key);
    return found == status.end() || found->second.empty() ? 0 : std::stoull(found->second);
}

// The initial sync's progress from `status`: round, pages, MB/s since the last look, throttle, and
// the disks' blocks compared.
class SyncProgress {
public:
    explicit SyncProgress(Io& io) : io_(io), last_(std::chrono::steady_clock::now()), printed_(last_) {}

    void show(const std::map<std::string, std::string>& status) {
        const auto now = std::chrono::steady_clock::now();
        if (!io_.terminal && now < printed_ + std::chrono::seconds(1)) return;
        const std::uint64_t bytes = number(status, "bytes_sent");
        const double seconds = std::chrono::duration<double>(now - last_).count();
        if (seconds > 0 && bytes >= bytes_) rate_ = static_cast<double>(bytes - bytes_) / seconds / 1e6;
        bytes_ = bytes;
        last_ = now;
        char line[200];
        std::snprintf(line, sizeof line, "syncing: pass %llu, %llu pages sent, %.1f MB/s, throttle %llu%%",
                      static_cast<unsigned long long>(number(status, "migration_rounds") + 1),
                      static_cast<unsigned long long>(number(status, "pages_migrated")), rate_,
                      static_cast<unsigned long long>(number(status, "sync_throttle_percent")));
        std::string text = line;
        if (const std::uint64_t blocks = number(status, "disk_sync_blocks"); blocks != 0) {
            text += ", disks " + std::to_string(number(status, "disk_sync_blocks_done")) + "/" + std::to_string(blocks) +
                    " blocks compared, " + std::to_string(number(status, "disk_sync_blocks_sent")) + " sent";
        }
        if (io_.terminal) {
            io_.out << "\r" << text << "\x1b[K" << std::flush;
            drawn_ = true;
        } else {
            io_.out << text << "\n";
        }
        printed_ = now;
    }
    void done() {
        if (drawn_) io_.out << "\r\x1b[K" << std::flush;
    }

private:
    Io& io_;
    std::chrono::steady_clock::time_point last_;
    std::chrono::steady_clock::time_point printed_;
    std::uint64_t bytes_ = 0;
    double rate_ = 0;
    bool drawn_ = false;
};

// --key or --tls-cert/--tls-key/--tls-ca, or else the config's link_key or tls_* (a command line
// that names either replaces both of the config's), checked now: a missing or unsafe file is
// reported before anything connects.
LinkSecurity security_of(const po::variables_map& vm, const ProtectionConfig& declared) {
    const auto text = [&vm](const char* name) { return vm.count(name) != 0 ? vm[name].as<std::string>() : std::string(); };
    LinkSecurity security;
    security.key_file = text("key");
    security.certificates = {text("tls-cert"), text("tls-key"), text("tls-ca")};
    if (security.key_file.empty() && security.certificates.certificate.empty() && security.certificates.private_key.empty() &&
        security.certificates.ca.empty()) {
        security.key_file = declared.link_key;
        security.certificates = {declared.tls_cert, declared.tls_key, declared.tls_ca};
    }
    security.validate();
    return security;
}

// A numeric option given on the command line wins; otherwise the config's value; otherwise the
// option's default.
unsigned given_or(const po::variables_map& vm, const char* option, const std::optional<std::uint64_t>& declared) {
    if (!vm[option].defaulted() || !declared) return vm[option].as<unsigned>();
    return static_cast<unsigned>(*declared);
}

// A sender in clear to another host is allowed (the receiver decides whether it takes one) but
// said out loud, once the command succeeded (a failure prints its one error line only).
void warn_if_in_clear(const LinkSecurity& security, const Endpoint& peer, const char* command, Io& io) {
    if (security.secured() || is_loopback(peer)) return;
    io.err << "colo-replicate " << command << ": warning: the link to " << to_string(peer)
           << " is neither authenticated nor encrypted (no --key): guest memory crossed the network in clear\n";
}

std::string ms(const std::string& micros) {
    const double us = std::stod(micros.empty() ? "0" : micros);
    char text[32];
    std::snprintf(text, sizeof text, "%.2f ms", us / 1000.0);
    return text;
}

}  // namespace

int run_protect(const po::variables_map& vm, Io& io) {
    const std::string name = vm["name"].as<std::string>();
    // What the command line leaves out comes from the guest's config (man 5, PROTECTION).
    const ProtectionConfig declared = protection_from_lines(control::request(name, "protection", std::chrono::seconds(10)));
    const std::string host = vm.count("host") != 0 ? vm["host"].as<std::string>() : declared.peer;
    if (host.empty()) {
        throw Error("protect " + name + " needs the secondary's HOST[:PORT]: give it, or write peer = \"HOST:PORT\" in the guest's config");
    }
    const Endpoint peer = parse_endpoint(host);
    if (vm.count("remus") != 0 && vm.count("colo") != 0) throw Error("--remus and --colo exclude each other");
    const std::string mode = vm.count("remus") != 0  ? "remus"
                             : vm.count("colo") != 0 ? "colo"
                                                     : (declared.mode.empty() ? "colo" : declared.mode);
    const unsigned interval = given_or(vm, "interval", declared.interval_ms);
    const unsigned heartbeat_timeout = given_or(vm, "heartbeat-timeout", declared.heartbeat_timeout_ms);
    std::string request = "protect " + to_string(peer);
    request += " mode=" + mode;
    request += " interval=" + std::to_string(interval);
    request += " stream=" + std::string(vm.count("no-stream") ? "0" : "1");
    request += " stream_period=" + std::to_string(vm["stream-period"].as<unsigned>());
    request += " stream_threshold=" + std::to_string(vm["stream-threshold"].as<unsigned>());
    request += " heartbeat_timeout=" + std::to_string(heartbeat_timeout);
    request += " cache_backup=" + std::string(vm.count("no-cache-backup") ? "0" : "1");
    request += " early_resume=" + std::string(vm.count("no-early-resume") ? "0" : "1");
    request += " realtime_pause=" + std::string(vm.count("no-realtime-pause") ? "0" : "1");
    request += " auto_converge=" + std::string(vm.count("no-auto-converge") ? "0" : "1");
    if (vm.count("compress") != 0) request += " compress=1";
    const LinkSecurity security = security_of(vm, declared);
    for (const auto& argument : security.request_arguments()) request += " " + argument;
    const std::string witness = vm.count("witness") != 0 ? vm["witness"].as<std::string>() : declared.witness;
    if (!witness.empty()) {
        (void)open_witness(witness);  // a URL it does not take is refused here, before anything starts
        request += " witness=" + witness;
    }
    for (const auto& line : control::request(name, request)) warn_caveat(line, "protect", io);

    // The initial sync runs in the guest's process; its progress is shown while it runs (a line
    // redrawn on a terminal, a line a second otherwise) and the result once it is over.
    std::map<std::string, std::string> status;
    SyncProgress progress(io);
    for (;;) {
        status = status_of(name);
        if (status["state"] != "syncing") break;
        progress.show(status);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    progress.done();
    if (status["state"] != "protected") {
        throw Error("protection of " + name + " failed: " +
                    (status["protection_lost"].empty() ? status["state"] : status["protection_lost"]));
    }
    warn_if_in_clear(security, peer, "protect", io);
    if (witness.empty()) {
        // Said once protection holds (a failed protect prints its one error line only).
        io.err << "colo-replicate protect: warning: no --witness: a partition of the replication link can leave "
                  "two live copies of " << name << " (split brain)\n";
    }
    io.out << "Protected " << name << " (" << status["mode"] << ") on " << to_string(peer) << ": "
           << status["pages_migrated"] << " pages in " << status["migration_rounds"]
           << " rounds, entered COLO in " << ms(status["time_to_enter_colo_us"]);
    if (!status["sync_compressed_bytes"].empty()) {
        io.out << "; pages compressed " << status["sync_page_bytes"] << " -> " << status["sync_compressed_bytes"] << " bytes";
    }
    if (status["disk_sync_blocks"] != "0") {
        io.out << "; disks: " << status["disk_sync_blocks_sent"] << " of " << status["disk_sync_blocks"]
               << " blocks differed, " << status["disk_sync_bytes"] << " bytes sent in " << status["disk_sync_ms"] << " ms";
    }
    io.out << "\n";
    return kExitOk;
}

int run_migrate(const po::variables_map& vm, Io& io) {
    const std::string name = vm["name"].as<std::string>();
    const Endpoint peer = parse_endpoint(vm["host"].as<std::string>());
    std::string request = "migrate " + to_string(peer) + " auto_converge=" + (vm.count("no-auto-converge") ? "0" : "1");
    if (vm.count("compress") != 0) request += " compress=1";
    const LinkSecurity security = security_of(vm, {});
    for (const auto& argument : security.request_arguments()) request += " " + argument;
    // The migration runs in the guest's process; its progress is shown while the request waits
    // for the result (as protect shows its initial sync).
    std::vector<std::string> reply;
    std::exception_ptr failed;
    std::atomic<bool> done{false};
    std::thread asking([&] {
        try {
            reply = control::request(name, request, std::chrono::hours(1));
        } catch (...) {
            failed = std::current_exception();
        }
        done = true;
    });
    SyncProgress progress(io);
    while (!done) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (done) break;
        try {
            const auto status = status_of(name);
            if (const auto it = status.find("pages_migrated"); it != status.end()) progress.show(status);
        } catch (const Error&) {
            // The guest's process may be ending (migrated away): the request's answer says.
        }
    }
    asking.join();
    progress.done();
    if (failed) std::rethrow_exception(failed);
    if (!reply.empty() && warn_caveat(reply.front(), "migrate", io)) reply.erase(reply.begin());
    warn_if_in_clear(security, peer, "migrate", io);
    io.out << "Migrated " << name << " to " << to_string(peer) << (reply.empty() ? "" : ": " + reply[0]) << "\n";
    for (int i = 0; i < 100 && control::connect_guest_if_running(name); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return kExitOk;
}

namespace {

// SIGTERM/SIGINT for `receive`, as `create` has them: a receive still waiting for a sender has
// nothing to clean up and ends at once; one with an incoming guest stops it as `destroy` would, so
// the guest (a Xen NAME--incoming domain), its control socket and the link go through their
// destructors. A signal between the accept and the guest's service is kept until the service is up.
std::atomic<control::GuestService*> g_incoming{nullptr};
std::atomic<bool> g_accepted{false};
std::atomic<int> g_terminated_by{0};

const char* signal_name(int signal) { return signal == SIGINT ? "SIGINT" : "SIGTERM"; }

void terminate_receive(int signal) {
    g_terminated_by.store(signal);
    if (control::GuestService* service = g_incoming.load()) {
        service->request_stop();
    } else if (!g_accepted.load()) {
        const std::string_view message = signal == SIGINT
                                             ? "colo-replicate: receive terminated by SIGINT while waiting for a sender\n"
                                             : "colo-replicate: receive terminated by SIGTERM while waiting for a sender\n";
        (void)!::write(STDERR_FILENO, message.data(), message.size());
        ::_exit(1);
    }
}

void on_incoming_service(control::GuestService* service) {
    g_incoming.store(service);
    if (service != nullptr && g_terminated_by.load() != 0) service->request_stop();
}

// One line per refused connection in the receive log, "colo-replicate receive: refused
// 10.0.0.9:4711: not a colo-replicate stream (bad magic)", but no more than kBurst in a
// kWindow: a flood of probes must not fill the disk. The lines left out are counted in the next.
class RefusalLog {
public:
    explicit RefusalLog(std::ostream& out) : out_(out) {}

    void add(const std::string& why) {
        const auto now = std::chrono::steady_clock::now();
        if (now - window_start_ >= kWindow) {
            window_start_ = now;
            in_window_ = 0;
        }
        if (in_window_ == kBurst) {
            ++left_out_;
            return;
        }
        ++in_window_;
        out_ << "colo-replicate receive: refused " << why;
        if (left_out_ != 0) out_ << " (and " << left_out_ << " more refused connections not logged)";
        out_ << std::endl;
        left_out_ = 0;
    }

private:
    static constexpr std::chrono::seconds kWindow{10};
    static constexpr unsigned kBurst = 20;
    std::ostream& out_;
    std::chrono::steady_clock::time_point window_start_{};
    unsigned in_window_ = 0;
    std::uint64_t left_out_ = 0;
};

}  // namespace

int run_receive(const po::variables_map& vm, Io& io) {
    // With a config, this receive is for that guest only, and its protection keys fill in what
    // the command line leaves out (man 5, PROTECTION).
    std::optional<GuestConfig> local;
    if (vm.count("config") != 0) local = load_guest_config(vm["config"].as<std::string>());
    const ProtectionConfig declared = local ? local->protection : ProtectionConfig{};
    const Endpoint listen_on = parse_endpoint(vm["listen"].defaulted() && !declared.listen.empty() ? declared.listen
                                                                                                    : vm["listen"].as<std::string>());
    ReceiveOptions options;
    if (vm.count("console-log") != 0) options.console_log = vm["console-log"].as<std::string>();
    if (vm.count("disk-dir") != 0 || !declared.disk_dir.empty()) {
        options.disk_dir = vm.count("disk-dir") != 0 ? std::filesystem::path(vm["disk-dir"].as<std::string>()) : declared.disk_dir;
        if (!std::filesystem::is_directory(*options.disk_dir)) {
            throw Error("--disk-dir " + options.disk_dir->string() + " is not a directory");
        }
    }
    options.peer_timeout = std::chrono::milliseconds(given_or(vm, "heartbeat-timeout", declared.heartbeat_timeout_ms));
    options.on_service = on_incoming_service;
    const std::string takeover = vm.count("takeover") != 0 ? vm["takeover"].as<std::string>()
                                 : declared.takeover.empty() ? "auto"
                                                             : declared.takeover;
    if (takeover != "auto" && takeover != "manual") throw Error("--takeover must be auto or manual, not '" + takeover + "'");
    options.manual_takeover = takeover == "manual";
    if (local) {
        options.guest_name = local->name;
        options.protection = declared;
    }
    const std::string witness = vm.count("witness") != 0 ? vm["witness"].as<std::string>() : declared.witness;
    if (!witness.empty()) options.witness = open_witness(witness);
    const auto tls = security_of(vm, declared).context(TlsRole::server);
    if (tls == nullptr && vm.count("insecure") == 0 && !is_loopback(listen_on)) {
        throw Error("receive on " + to_string(listen_on) + " without --key would let anyone who reaches the port push a guest "
                    "into this host: give --key FILE (`colo-replicate keygen FILE` writes one), or --insecure");
    }
    if (local && control::connect_guest_if_running(local->name)) {
        throw Error("a guest named '" + local->name + "' already runs on this host");
    }
    std::optional<TcpListener> listening(std::in_place, listen_on);
    const TcpListener& listener = *listening;
    // While it waits, `status NAME` finds it (a receive for a named guest only): made by the
    // process that waits, before it says it is ready, so a status right after receive returns sees it.
    std::optional<control::WaitingReceive> waiting;
    const auto announce_waiting = [&] {
        if (local) waiting.emplace(local->name, listener.address());
    };
    const auto serve = [&] {
        // Anyone who reaches the port may connect: a connection that is not a sender (a probe,
        // garbage, an idle socket, a header or request that is not valid) is refused with a line
        // in the log and receive waits on, so a port scan cannot take the secondary away.
        RefusalLog refusals(std::cerr);
        std::unique_ptr<ReplicationLink> link;
        IncomingRequest request;
        for (;;) {
            link = ReplicationLink::accept(*listening, std::chrono::milliseconds(0), options.peer_timeout,
                                           [&refusals](const std::string& why) { refusals.add(why); }, tls);
            try {
                request = read_incoming_request(*link, options.peer_timeout, options.guest_name);
                break;
            } catch (const Error& e) {
                refusals.add(link->peer() + ": " + e.what());
            }
        }
        g_accepted.store(true);
        waiting.reset();
        // One stream a receive: the port is free again as soon as a sender is accepted (a later
        // `receive` on the same port, e.g. to protect the survivor, must not find it taken).
        listening.reset();
        int code = 0;
        try {
            code = serve_incoming_guest(*link, request, options);
        } catch (const Error&) {
            if (g_terminated_by.load() == 0) throw;
        }
        if (const int signal = g_terminated_by.load(); signal != 0)
            throw Error(std::string("receive terminated by ") + signal_name(signal) + "; the incoming guest is destroyed");
        return code;
    };
    if (vm.count("foreground") != 0) {
        control::on_termination_signal(terminate_receive);
        options.console_to_stdout = true;
        io.err << "Listening on " << listener.address() << "\n";
        announce_waiting();
        return serve();
    }
    const auto log = control::run_dir() / ("receive-" + std::to_string(listener.port()) + ".log");
    const int pid = control::run_detached(log, [&](const auto& ready) {
        control::on_termination_signal(terminate_receive);  // before ready(): a SIGTERM may follow at once
        announce_waiting();
        ready();
        const int code = serve();
        if (code != 0) throw Error("receive ended with status " + std::to_string(code));
    });
    io.out << "Listening on " << listener.address() << " (pid " << pid << "; log: " << log.string() << ")\n";
    return kExitOk;
}

int run_keygen(const po::variables_map& vm, Io& io) {
    if (vm.count("file") == 0) throw Error("keygen needs the FILE to write");
    const std::string file = vm["file"].as<std::string>();
    const LinkKey key = LinkKey::generate(file);
    io.out << "Wrote a new key to " << file << " (id " << key.id() << "); copy it to the other host and give both sides --key "
           << file << "\n";
    return kExitOk;
}

namespace {

// One look at NAME's status on this host: its guest's answer, or a `receive CONFIG` for it that no
// primary has reached yet (it has no control socket).
StatusFields look_at_status(const std::string& name) {
    StatusFields fields;
    if (!control::connect_guest_if_running(name)) {
        if (const auto waiting = control::find_waiting_receive(name)) {
            return {{"role", "secondary"}, {"state", "waiting"}, {"mode", "-"}, {"listen", waiting->listen_address},
                    {"pid", std::to_string(waiting->pid)}};
        }
    }
    for (const auto& line : control::request(name, "status", std::chrono::seconds(10))) {
        const auto space = line.find(' ');
        fields.emplace_back(line.substr(0, space), space == std::string::npos ? "" : line.substr(space + 1));
    }
    return fields;
}

// Whether anything on this host still answers for NAME: its guest, or a receive waiting for it.
// A receive that a sender just reached drops its waiting file before its guest's socket is up, so
// nothing there is believed only once it stays so for a second.
bool gone(const std::string& name) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    for (;;) {
        if (control::connect_guest_if_running(name) || control::find_waiting_receive(name)) return false;
        if (std::chrono::steady_clock::now() >= deadline) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

// Set by SIGINT/SIGTERM while `status --watch` runs: the watch ends after its current look.
std::atomic<bool> g_watch_stopped{false};
void stop_watch(int) { g_watch_stopped.store(true); }

// `status --watch`: a look every interval, drift-free, until Ctrl-C (exit 0) or until the guest
// goes away (exit 0 after a last line). A guest that is not there at the first look is an error,
// as for a plain status.
int watch_status(const std::string& name, std::chrono::milliseconds interval, Io& io) {
    control::on_termination_signal(stop_watch);
    std::optional<StatusSample> previous;
    auto next = std::chrono::steady_clock::now();
    while (!g_watch_stopped.load()) {
        StatusSample now;
        try {
            for (auto& [key, value] : look_at_status(name)) now.fields[key] = std::move(value);
        } catch (const Error&) {
            // Gone (destroyed, migrated away, ended), or a look that failed while it was going;
            // a guest still there that does not answer is an error worth its message.
            if (!previous || !gone(name)) throw;
            io.out << watch_gone_line(name, std::chrono::system_clock::now()) << std::flush;
            return kExitOk;
        }
        now.at = std::chrono::steady_clock::now();
        const WatchRates rates = watch_rates(previous ? &*previous : nullptr, now);
        const auto wall = std::chrono::system_clock::now();
        io.out << (io.terminal ? watch_screen(name, now, rates, wall, interval) : watch_line(name, now, rates, wall)) << std::flush;
        if (!io.out) return kExitOk;  // the reader went away (`| head`): nothing more to show
        previous = std::move(now);
        next += interval;
        // Sleep in short slices, so Ctrl-C ends the watch at once and not an interval later.
        while (!g_watch_stopped.load() && std::chrono::steady_clock::now() < next) {
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(next - std::chrono::steady_clock::now(),
                                                                                      std::chrono::milliseconds(50)));
        }
    }
    if (io.terminal) io.out << "\n";
    return kExitOk;
}

}  // namespace

int run_status(const po::variables_map& vm, Io& io) {
    const std::string name = vm["name"].as<std::string>();
    if (vm.count("watch") != 0) {
        if (vm.count("json") != 0) throw Error("status --watch prints lines for people; use status --json for a machine, once a look");
        // In milliseconds, as protect's --interval is.
        const unsigned interval = vm["interval"].as<unsigned>();
        if (interval < 100 || interval > 3'600'000) {
            throw Error("--interval " + std::to_string(interval) + ": expected milliseconds between 100 and 3600000");
        }
        return watch_status(name, std::chrono::milliseconds(interval), io);
    }
    if (!vm["interval"].defaulted()) throw Error("--interval is for status --watch");
    const StatusFields fields = look_at_status(name);
    io.out << (vm.count("json") != 0 ? to_json(fields) + "\n" : to_text(fields));
    return kExitOk;
}

int run_failover(const po::variables_map& vm, Io& io) {
    const std::string name = vm["name"].as<std::string>();
    (void)control::request(name, "failover");
    for (int i = 0; i < 200; ++i) {
        const std::string state = status_of(name)["state"];
        if (state != "protecting" && state != "primary-lost" && state != "failing-over") {
            io.out << "Failed over: " << name << " runs here now\n";
            return kExitOk;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    throw Error("the secondary did not take over within 5 s");
}

int run_handover(const po::variables_map& vm, Io& io) {
    const std::string name = vm["name"].as<std::string>();
    const auto reply = control::request(name, "handover", std::chrono::seconds(90));
    io.out << "Handed " << name << " over to its secondary" << (reply.empty() ? "" : " at " + reply[0])
           << "; it ends here\n";
    // Return once this copy has let go of its name (and its disks and NICs).
    for (int i = 0; i < 200 && control::connect_guest_if_running(name); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return kExitOk;
}

}  // namespace colo::cli
