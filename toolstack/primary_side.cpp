#include "toolstack/primary_side.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <ctime>
#include <thread>
#include <iostream>
#include <map>
#include <optional>

#include "backends/error.hpp"
#include "toolstack/control/control_socket.hpp"
#include "toolstack/control/primary_marker.hpp"
#include "toolstack/protection_settings.hpp"
#include "toolstack/guest_image.hpp"
#include "toolstack/replication/guest_suspend_device.hpp"
#include "toolstack/replication/migration.hpp"
#include "toolstack/failover/open_witness.hpp"
#include "toolstack/replication/ownership_arbiter.hpp"
#include "toolstack/replication/precopy_sender.hpp"
#include "toolstack/transport/link_security.hpp"
#include "toolstack/status_fields.hpp"
#include "toolstack/transport/endpoint.hpp"
#include "toolstack/transport/file_stream.hpp"

namespace colo {

namespace {

// "key=value" arguments after the endpoint; every key must be one the request knows.
class Options {
public:
    Options(const std::vector<std::string>& args, std::initializer_list<const char*> known) {
        for (std::size_t i = 1; i < args.size(); ++i) {
            const auto eq = args[i].find('=');
            const std::string key = args[i].substr(0, eq);
            if (eq == std::string::npos || std::find_if(known.begin(), known.end(), [&](const char* k) { return key == k; }) == known.end()) {
                throw Error("unknown option '" + args[i] + "'");
            }
            values_[key] = args[i].substr(eq + 1);
        }
    }
    std::uint64_t number(const std::string& key, std::uint64_t fallback) const {
        const auto it = values_.find(key);
        if (it == values_.end()) return fallback;
        std::uint64_t n = 0;
        const auto* end = it->second.data() + it->second.size();
        if (std::from_chars(it->second.data(), end, n).ptr != end || it->second.empty()) {
            throw Error(key + " must be a number, not '" + it->second + "'");
        }
        return n;
    }
    bool flag(const std::string& key, bool fallback) const { return number(key, fallback ? 1 : 0) != 0; }
    // The link's TLS setup from key=PATH or tls_cert/tls_key/tls_ca=PATH (link_security.hpp).
    LinkSecurity security() const {
        LinkSecurity s;
        s.key_file = text("key", "");
        s.certificates = {text("tls_cert", ""), text("tls_key", ""), text("tls_ca", "")};
        s.validate();
        return s;
    }
    std::string text(const std::string& key, const std::string& fallback) const {
        const auto it = values_.find(key);
        return it == values_.end() ? fallback : it->second;
    }

private:
    std::map<std::string, std::string> values_;
};

protocol::StreamHeader header_of(Backend& backend) {
    protocol::StreamHeader header;
    header.backend = backend.kind();
    header.regions = backend.memory().regions();
    return header;
}

// How long `save` waits for a guest that suspends itself, as a migration does.
constexpr std::chrono::milliseconds kSaveSuspendTimeout{10000};

// The guest config plus what only the backend knows of the running guest (Backend::domain_config),
// so the receiver's create_incoming can build the same guest.
GuestConfig config_for_receiver(GuestConfig config, Backend& backend) {
    config.domain_config = backend.domain_config();
    return config;
}

std::string now_text() {
    const std::time_t now = std::time(nullptr);
    char text[40];
    std::tm utc{};
    (void)gmtime_r(&now, &utc);
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &utc);
    return text;
}

LogFn notice_log(const std::string& guest) {
    return [guest](LogLevel level, std::string_view text) {
        if (level == LogLevel::notice) std::cerr << "colo-replicate[" << guest << "]: " << text << std::endl;
    };
}

}  // namespace

PrimarySide::PrimarySide(control::GuestService& service, Arrival arrival)
    : service_(service), arrival_(std::move(arrival)) {
    // A caveat goes first, as "caveat TEXT": the command prints it as a warning.
    service_.add_command("protect", [this](const auto& args, control::Reply& reply, UniqueFd&) {
        protect(args);
        if (auto caveat = service_.backend().replication_caveat(); !caveat.empty()) reply.data.push_back("caveat " + caveat);
    });
    service_.add_command("migrate", [this](const auto& args, control::Reply&, UniqueFd& client) {
        migrate(args, client);
    });
    service_.add_command("status", [this](const auto& args, control::Reply& reply, UniqueFd&) {
        if (!args.empty()) throw Error("usage: status");
        for (const auto& [key, value] : status()) reply.data.push_back(key + " " + value);
    });
    // Here, not where the guest was made: a guest that arrived by migration or takeover (a
    // `receive` process) is saved like one made by `create` or `restore`.
    service_.add_command("save", [this](const auto& args, control::Reply& reply, UniqueFd&) { save(args, reply); });
    // The config's protection keys, for a `protect NAME` that names no secondary itself.
    service_.add_command("protection", [this](const auto& args, control::Reply& reply, UniqueFd&) {
        if (!args.empty()) throw Error("usage: protection");
        reply.data = protection_lines(service_.config().protection);
    });
    service_.add_command("handover", [this](const auto& args, control::Reply& reply, UniqueFd&) {
        if (!args.empty()) throw Error("usage: handover");
        hand_over(reply);
    });
    service_.set_owner_check([this] { return owner(); });
}

void PrimarySide::save(const std::vector<std::string>& args, control::Reply& reply) {
    if (args.empty() || args.size() > 2 || (args.size() == 2 && args[1] != "keep")) {
        throw Error("usage: save ABSOLUTE-PATH [keep]");
    }
    // A save while the pipeline owns the guest would copy memory that a checkpoint's early
    // resume lets the guest change under it.
    service_.refuse_unless_operator_owns();
    Backend& guest = service_.backend();
    const bool keep = args.size() == 2;
    const bool was_paused = guest.paused();
    // A guest that suspends itself is saved suspended, as it migrates: the restored image's own
    // resume rebuilds what the hypervisor held for it (backends/guest_suspend.hpp); an image taken
    // from outside would wait for ever once restored.
    GuestSuspend* suspend = guest.cooperative_suspend();
    // Resumed as cancelled by its destructor whatever fails before continue_here does it.
    std::optional<suspend_device::SuspendedGuest> suspended;
    if (suspend != nullptr) {
        if (was_paused) {
            throw Error(guest.name() + " is paused, and a guest that suspends itself for a save (" + suspend->how() +
                        ") must run to do it: unpause it first");
        }
        suspended.emplace(*suspend, kSaveSuspendTimeout);
    }
    guest.pause();
    // Back to how it was: a suspended guest is told its suspend was cancelled (with the pause
    // held, as after a checkpoint), then runs unless it was paused before.
    const auto continue_here = [&] {
        if (suspended) suspended->resume();
        if (!was_paused) guest.resume();
    };
    try {
        FileSink sink(args[0]);
        // With the backend's own description of the guest (a Xen domain's libxl configuration),
        // which `restore` builds the guest from, as a receiver does.
        const auto stats = write_guest_image(guest, config_for_receiver(service_.config(), guest), sink);
        sink.sync();
        reply.data.push_back(std::to_string(stats.pages) + " pages, " + std::to_string(stats.state_records) +
                             " state records");
        if (!keep) {
            guest.destroy_after_save();
            if (suspended) suspended->release();
        }
    } catch (const Error& e) {
        // A failed save must not cost the guest anything. The save's own error (with its errno)
        // is what the operator gets; a failed resume on top goes to the guest's log.
        try {
            continue_here();
        } catch (const Error& inner) {
            notice_log(service_.config().name)(LogLevel::notice, std::string("after a failed save (") + e.what() +
                                                                     "), resuming the guest failed: " + inner.what());
        }
        throw;
    }
    if (keep) continue_here();
    else service_.request_stop();
}

std::string PrimarySide::owner() const {
    if (arrival_.not_yet_primary && !arrival_.not_yet_primary().empty()) {
        return "a secondary (its primary runs it); it can be paused, unpaused or saved once it runs here";
    }
    if (migrating_) return "being migrated; wait for the migration to end";
    if (protecting()) return "protected (" + service_.mode() + "); destroy its secondary to end protection first";
    if (primary_ && primary_->arbitrating()) return "waiting for the witness after losing its secondary (status: arbitration)";
    return {};
}

void PrimarySide::hand_over(control::Reply& reply) {
    if (!primary_ || primary_->role() != Role::protecting) {
        throw Error("the guest is not protected (status: state): there is no secondary to hand it to");
    }
    primary_->request_handover();
    // One checkpoint (its pause and acknowledgement) and the link's close; the deadline only
    // guards against a pipeline that never answers.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (primary_->role() == Role::protecting && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!primary_->handed_over()) {
        const std::string why = primary_->status().protection_lost_reason;
        throw Error("handover failed" + (why.empty() ? std::string() : ": " + why) + "; the guest runs on here");
    }
    reply.data.push_back("epoch " + std::to_string(primary_->status().epoch));
    service_.request_stop();  // this copy ends: the secondary is the guest now
}

StatusFields PrimarySide::status() const {
    StatusFields fields = migrating_ ? StatusFields{{"role", "primary"}, {"state", "migrating"}, {"mode", "-"}}
                          : primary_ ? status_fields(primary_->status())
                                     : StatusFields{{"role", "primary"}, {"state", "unprotected"}, {"mode", "-"}};
    if (migrating_) {
        // The progress `migrate` shows: the pre-copy's counters (atomic), while it runs.
        std::lock_guard lock(migration_mutex_);
        if (migration_sender_ != nullptr) {
            fields.emplace_back("migration_rounds", std::to_string(migration_sender_->passes()));
            fields.emplace_back("pages_migrated", std::to_string(migration_sender_->pages_sent()));
            fields.emplace_back("bytes_sent", std::to_string(migration_sender_->bytes_sent()));
            fields.emplace_back("sync_throttle_percent", std::to_string(migration_sender_->throttle_percent()));
        }
    }
    if (primary_) fields.emplace_back("link_security", link_security_);
    // How a checkpoint stops the guest, known before it is protected (backends/guest_suspend.hpp).
    if (const GuestSuspend* suspend = service_.backend().cooperative_suspend()) {
        fields.emplace_back("checkpoint_style", "cooperative (" + suspend->how() + ")");
    } else {
        fields.emplace_back("checkpoint_style", "transparent");
    }
    if (auto caveat = service_.backend().replication_caveat(); !caveat.empty()) fields.emplace_back("caveat", caveat);
    add_disk_fields(service_.backend(), fields);
    for (auto& field : service_.backend().guest_report()) fields.push_back(std::move(field));
    return fields;
}

void PrimarySide::refuse_unless_primary() const {
    if (!arrival_.not_yet_primary) return;
    if (const std::string why = arrival_.not_yet_primary(); !why.empty()) throw Error(why);
}

PrimarySide::~PrimarySide() {
    stop_migration();
    if (worker_.joinable()) {
        worker_.request_stop();
        worker_.join();
    }
}

void PrimarySide::forget_marker_unless_secondary_may_run() noexcept {
    if (primary_ && primary_->secondary_may_run()) return;
    try {
        control::clear_primary_marker(service_.config().name);
    } catch (const std::exception& e) {
        std::cerr << "colo-replicate[" << service_.config().name << "]: " << e.what() << std::endl;
    }
}

bool PrimarySide::protecting() const {
    return primary_ && (primary_->role() == Role::syncing || primary_->role() == Role::protecting);
}

void PrimarySide::protect(const std::vector<std::string>& args) {
    if (args.empty()) throw Error("usage: protect HOST[:PORT] [key=value...]");
    refuse_unless_primary();
    if (protecting()) throw Error("the guest is already protected");
    if (primary_ && primary_->arbitrating())
        throw Error("the guest lost its secondary and waits for the witness to say whether it may go on (status: arbitration)");
    if (migrating_) throw Error("the guest is being migrated");
    const Options options(args, {"mode", "interval", "stream", "stream_period", "stream_threshold",
                                 "heartbeat_timeout", "cache_backup", "early_resume", "realtime_pause", "auto_converge",
                                 "key", "tls_cert", "tls_key", "tls_ca", "witness", "compress"});
    const Endpoint peer = parse_endpoint(args[0]);
    PrimaryConfig config;
    const std::string mode = options.text("mode", "colo");
    if (mode != "colo" && mode != "remus") throw Error("mode must be colo or remus, not '" + mode + "'");
    config.mode = mode == "remus" ? ProtectionMode::remus : ProtectionMode::colo;
    const Millis interval{options.number("interval", 100)};
    if (interval.count() == 0) throw Error("interval must be at least 1 ms");
    if (config.mode == ProtectionMode::remus) config.checkpoint_interval = interval;
    else config.max_checkpoint_interval = interval;
    config.stream = options.flag("stream", true);
    config.stream_period = Millis{options.number("stream_period", 20)};
    config.stream_min_pages = options.number("stream_threshold", 64);
    config.link.peer_timeout = Millis{options.number("heartbeat_timeout", 800)};
    config.link.heartbeat_period = std::max(Millis{10}, config.link.peer_timeout / 8);
    config.early_resume = options.flag("early_resume", true);
    config.realtime_pause = options.flag("realtime_pause", true);
    config.precopy.auto_converge = options.flag("auto_converge", true);
    config.log = notice_log(service_.config().name);
    const bool cache_backup = options.flag("cache_backup", true);
    config.compress_sync = options.flag("compress", false);
    const auto tls = options.security().context(TlsRole::client);
    std::shared_ptr<OwnershipArbiter> arbiter;
    if (const std::string url = options.text("witness", ""); !url.empty()) {
        arbiter = std::make_shared<OwnershipArbiter>(open_witness(url), service_.config().name,
                                                     OwnershipArbiter::owner_id("primary", service_.config().name));
    }
    // Every value is checked before anything is connected, sent or paused: a refusal leaves the
    // guest and the would-be secondary exactly as they were.
    validate(config);

    // A previous, finished protection (the secondary was lost) gives way to the new one.
    if (worker_.joinable()) {
        worker_.request_stop();
        worker_.join();
    }
    Backend& guest = service_.backend();
    const auto publish = [this](std::uint64_t offset, std::span<const std::byte> bytes) { service_.console().publish(offset, bytes); };
    if (primary_) {
        primary_.reset();  // its output gate no longer takes the console: publish it directly
        service_.release_console_directly();
    }
    link_.reset();

    const std::string guest_config = format_guest_config(config_for_receiver(service_.config(), guest));
    if (arbiter) {
        // This copy runs the guest: it is the owner the secondary will have to find unchanged
        // before it may take over. No witness answer, no protection.
        arbiter->claim_at_protect();
        config.arbiter = arbiter;
        // Lost to a takeover: this copy must not run again. The service ends (the guest with it).
        config.fenced = [this](const std::string&) { service_.request_stop(); };
    }
    // Before anything reaches the secondary: from the moment it could hold a replica, a crash
    // of this process must leave the mark that keeps `create` from starting a second copy.
    control::set_primary_marker(service_.config().name, "protected to " + to_string(peer) + " since " + now_text());
    struct ForgetUnlessStarted {  // a protect that fails before its pipeline runs leaves nothing behind
        PrimarySide& side;
        bool started = false;
        ~ForgetUnlessStarted() {
            if (!started) side.forget_marker_unless_secondary_may_run();
        }
    } forget{*this};
    link_ = ReplicationLink::connect(peer, header_of(guest), config.link.peer_timeout, tls);
    link_security_ = tls != nullptr ? "tls1.3 " + tls->describe() : "none (in clear)";
    link_->channel().send(protocol::GuestConfigText{guest_config});
    link_->channel().send(protocol::ReplicationSetup{
        config.mode == ProtectionMode::remus ? protocol::ReplicationPurpose::remus : protocol::ReplicationPurpose::colo,
        cache_backup});
    if (arrival_.console_offset) {
        // The console's owner changes here (the Primary's output gate replaces the secondary's
        // console): paused, so the gate's first offset is exactly where the guest's stream stands.
        const bool was_paused = guest.paused();
        guest.pause();
        try {
            // Where the stream stands: what the console published so far, or (a secondary that
            // took over and releases through its own console) where that one stands, whichever
            // is further; after an earlier protection here the arrival's count is stale.
            config.console_offset = std::max(arrival_.console_offset(), service_.console().next_offset());
            primary_ = std::make_unique<Primary>(guest, link_->channel(), config, publish);
        } catch (...) {
            if (!was_paused) guest.resume();
            throw;
        }
        if (!was_paused) guest.resume();
    } else {
        primary_ = std::make_unique<Primary>(guest, link_->channel(), config, publish);
    }
    service_.set_mode(mode + " primary");
    forget.started = true;
    worker_ = std::jthread([this](std::stop_token stop) {
        // run() ends protection itself whatever fails (the reason is in status); it never throws.
        primary_->run(stop);
        forget_marker_unless_secondary_may_run();
        service_.set_mode(primary_->role() == Role::unprotected ? "unprotected" : "-");
    });
}

void PrimarySide::migrate(const std::vector<std::string>& args, UniqueFd& client) {
    if (args.empty()) throw Error("usage: migrate HOST[:PORT] [heartbeat_timeout=MS] [auto_converge=0|1]");
    refuse_unless_primary();
    if (protecting()) throw Error("the guest is protected; stop protection before migrating it");
    if (migrating_) throw Error("the guest is already being migrated");
    const Options options(args, {"heartbeat_timeout", "auto_converge", "key", "tls_cert", "tls_key", "tls_ca", "compress"});
    const auto tls = options.security().context(TlsRole::client);
    const Endpoint peer = parse_endpoint(args[0]);
    MigrateConfig config;
    config.precopy.auto_converge = options.flag("auto_converge", true);
    config.compress = options.flag("compress", false);
    config.link.peer_timeout = Millis{options.number("heartbeat_timeout", 800)};
    config.link.heartbeat_period = std::max(Millis{10}, config.link.peer_timeout / 8);
    config.log = notice_log(service_.config().name);
    config.watch = [this](const PrecopySender* sender) {
        std::lock_guard lock(migration_mutex_);
        migration_sender_ = sender;
    };
    // The fan-out knows where the stream stands once anything was released here; a survivor that
    // has released nothing yet knows it from its secondary (which is stale once a protection of
    // its own has come and gone: the larger of the two is right in every case).
    config.console_offset = [this] {
        return std::max(service_.console().next_offset(), arrival_.console_offset ? arrival_.console_offset() : 0);
    };

    // A migration that failed earlier has ended; its thread is joined before the next starts.
    if (migration_.joinable()) migration_.join();
    // From here the migration owns the guest (owner()): pause, unpause, save and protect are
    // refused until it fails; a migration that succeeds ends this process.
    migrating_ = true;
    const std::string mode_before = service_.mode();
    service_.set_mode("migrating");
    migration_ = std::jthread([this, peer, config, tls, mode_before, client = std::move(client)] {
        std::vector<std::string> lines;
        std::string failure;
        try {
            Backend& guest = service_.backend();
            if (const std::string caveat = guest.replication_caveat(); !caveat.empty()) lines.push_back("caveat " + caveat);
            const std::string guest_config = format_guest_config(config_for_receiver(service_.config(), guest));
            auto link = ReplicationLink::connect(peer, header_of(guest), config.link.peer_timeout, tls);
            {
                std::lock_guard lock(migration_mutex_);
                if (migration_cancelled_) throw Error("the guest is being destroyed");
                migration_channel_ = &link->channel();
            }
            try {
                link->channel().send(protocol::GuestConfigText{guest_config});
                link->channel().send(protocol::ReplicationSetup{protocol::ReplicationPurpose::migrate, false});
                const MigrationResult result = colo::migrate(guest, link->channel(), config);
                lines.push_back("downtime_us=" + std::to_string(result.downtime.count()) +
                                " passes=" + std::to_string(result.passes) + " pages=" + std::to_string(result.pages_sent) +
                                " pages_final=" + std::to_string(result.pages_final) +
                                " bytes=" + std::to_string(result.bytes_sent) + " total_us=" + std::to_string(result.total.count()) +
                                " throttle_percent=" + std::to_string(result.throttle_percent) +
                                (config.compress ? " page_bytes=" + std::to_string(result.page_bytes) +
                                                       " compressed_bytes=" + std::to_string(result.compressed_bytes)
                                                 : std::string()) +
                                (guest.disks().empty() ? std::string()
                                                       : " disk_sync_bytes=" + std::to_string(result.disk_sync_bytes) +
                                                             " disk_sync_ms=" + std::to_string(result.disk_sync_ms) +
                                                             " disk_write_bytes=" + std::to_string(result.disk_write_bytes)));
            } catch (...) {
                std::lock_guard lock(migration_mutex_);
                migration_channel_ = nullptr;
                throw;
            }
            std::lock_guard lock(migration_mutex_);
            migration_channel_ = nullptr;
        } catch (const std::exception& e) {
            failure = e.what();
        }
        if (failure.empty()) {
            service_.request_stop();  // the guest runs on the destination now
        } else {
            service_.set_mode(mode_before);
            migrating_ = false;
        }
        try {
            for (const auto& line : lines) control::write_line(client.get(), "data " + line);
            control::write_line(client.get(), failure.empty() ? "ok" : "error " + failure);
        } catch (const Error&) {
            // The client went away; the outcome is in the guest's log and in `list`.
        }
        if (!failure.empty()) {
            std::cerr << "colo-replicate[" << service_.config().name << "]: migration failed: " << failure << std::endl;
        }
    });
}

void PrimarySide::stop_migration() {
    {
        // A migration still running when the guest is destroyed ends now: closing its link makes
        // it fail, and a failed migration leaves the guest running here (migration.hpp).
        std::lock_guard lock(migration_mutex_);
        migration_cancelled_ = true;
        if (migration_channel_ != nullptr) migration_channel_->close();
    }
    if (migration_.joinable()) migration_.join();
}

}  // namespace colo
