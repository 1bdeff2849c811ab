#include "toolstack/secondary_side.hpp"

#include <atomic>
#include <iostream>
#include <thread>
#include <variant>

#include "backends/error.hpp"
#include "toolstack/backends_available.hpp"
#include "toolstack/control/control_socket.hpp"
#include "toolstack/control/guest_service.hpp"
#include "toolstack/primary_side.hpp"
#include "toolstack/replication/colo_secondary.hpp"
#include "toolstack/replication/ownership_arbiter.hpp"
#include "toolstack/status_fields.hpp"

namespace colo {

namespace {

template <typename T>
T expect(Channel& channel, std::chrono::milliseconds timeout) {
    const auto deadline = Channel::Clock::now() + timeout;
    auto message = channel.receive(deadline);
    // The sender's keepalive may speak first (it runs from connect on, while the sender is still
    // describing its guest); a heartbeat says nothing about the stream.
    while (message && std::holds_alternative<protocol::Heartbeat>(*message)) message = channel.receive(deadline);
    if (!message) throw Error("the sender sent nothing for " + std::to_string(timeout.count()) + " ms");
    auto* wanted = std::get_if<T>(&*message);
    if (wanted == nullptr) {
        throw Error(std::string("unexpected ") + protocol::message_name(*message) + " at the start of the stream");
    }
    return std::move(*wanted);
}

const char* mode_name(protocol::ReplicationPurpose purpose) {
    switch (purpose) {
        case protocol::ReplicationPurpose::migrate: return "incoming migration";
        case protocol::ReplicationPurpose::colo: return "colo secondary";
        case protocol::ReplicationPurpose::remus: return "remus secondary";
    }
    return "?";
}

}  // namespace

IncomingRequest read_incoming_request(ReplicationLink& link, std::chrono::milliseconds peer_timeout,
                                      const std::string& guest_name) {
    Channel& channel = link.channel();
    const auto timeout = std::max(peer_timeout * 4, std::chrono::milliseconds(5000));
    IncomingRequest request;
    try {
        request.config = parse_guest_config(expect<protocol::GuestConfigText>(channel, timeout).text,
                                            "guest config from " + link.peer());
        if (!guest_name.empty() && request.config.name != guest_name) {
            throw Error("it sends guest '" + request.config.name + "'; this receive is for '" + guest_name + "' only");
        }
        request.setup = expect<protocol::ReplicationSetup>(channel, timeout);
    } catch (const LinkDown&) {
        throw;
    } catch (const Error& e) {
        try {
            channel.send(protocol::Failure{e.what()});
        } catch (const Error&) {
            // It is gone already; our own error says what was wrong.
        }
        throw;
    }
    return request;
}

namespace {

// Where this host keeps its copies of the guest's disks (the config the guest runs with here).
GuestConfig with_local_disks(GuestConfig config, const ReceiveOptions& options) {
    config.protection = options.protection;
    if (options.disk_dir) {
        for (DiskConfig& disk : config.disks) disk.target = *options.disk_dir / (config.name + "-" + disk.vdev + ".img");
    }
    return config;
}

}  // namespace

int serve_incoming_guest(ReplicationLink& link, const IncomingRequest& request, const ReceiveOptions& options) {
    Channel& channel = link.channel();
    const GuestConfig config = with_local_disks(request.config, options);
    const protocol::ReplicationSetup& setup = request.setup;
    if (control::connect_guest_if_running(config.name)) {
        const std::string message = "a guest named '" + config.name + "' already runs on this host";
        channel.send(protocol::Failure{message});
        throw Error(message);
    }

    std::unique_ptr<Backend> incoming;
    try {
        incoming = backends_available().find(config.backend).create_incoming(config);
    } catch (const Error& e) {
        channel.send(protocol::Failure{e.what()});  // e.g. not enough memory: the sender hears why
        throw;
    }
    control::GuestService service(std::move(incoming), config);
    if (options.console_log) service.console().open_log(*options.console_log);
    service.console().copy_to_stdout(options.console_to_stdout);
    service.set_mode(mode_name(setup.purpose));
    service.bind();
    struct Announce {  // the service as long as it exists, for `receive`'s signal handling
        const ReceiveOptions& options;
        explicit Announce(const ReceiveOptions& o, control::GuestService& s) : options(o) {
            if (options.on_service) options.on_service(&s);
        }
        ~Announce() {
            if (options.on_service) options.on_service(nullptr);
        }
    } announce(options, service);

    SecondaryConfig secondary_config;
    secondary_config.mode = setup.purpose == protocol::ReplicationPurpose::remus ? ProtectionMode::remus
                                                                                  : ProtectionMode::colo;
    secondary_config.cache_backup = setup.cache_backup;
    secondary_config.manual_takeover = options.manual_takeover;
    secondary_config.link.peer_timeout = options.peer_timeout;
    secondary_config.link.heartbeat_period = std::max(std::chrono::milliseconds(10), options.peer_timeout / 8);
    const std::string name = config.name;
    secondary_config.log = [name](LogLevel level, std::string_view text) {
        if (level == LogLevel::notice) std::cerr << "colo-replicate[" << name << "]: " << text << std::endl;
    };
    if (options.witness && setup.purpose != protocol::ReplicationPurpose::migrate) {
        // The primary claimed the guest before it connected: its revision is what a takeover
        // must still find. No witness answer, no protection (nobody could arbitrate a takeover).
        auto arbiter = std::make_shared<OwnershipArbiter>(options.witness, name, OwnershipArbiter::owner_id("secondary", name));
        try {
            arbiter->learn_owner();
        } catch (const Error& e) {
            const std::string message = std::string("the secondary's witness: ") + e.what();
            channel.send(protocol::Failure{message});
            throw Error(message);
        }
        secondary_config.arbiter = std::move(arbiter);
    }
    Secondary secondary(service.backend(), channel, secondary_config,
                        [&service](std::uint64_t offset, std::span<const std::byte> bytes) { service.console().publish(offset, bytes); });
    // Once the guest runs here (migrated, or taken over), it is a primary like any other.
    std::atomic<bool> runs_here{false};
    PrimarySide primary_side(
        service, PrimarySide::Arrival{
                     [&runs_here] {
                         return runs_here ? std::string()
                                          : std::string("this guest is a secondary; it can be protected or migrated "
                                                        "once it runs here (after a takeover or a migration)");
                     },
                     [&secondary] { return secondary.console_offset(); }});

    service.add_command("failover", [&secondary](const auto& args, control::Reply&, UniqueFd&) {
        if (!args.empty()) throw Error("usage: failover");
        if (secondary.role() != Role::protecting && !secondary.awaiting_takeover()) {
            throw Error("this guest is not a protected secondary");
        }
        secondary.request_failover();
    });
    service.add_command("status", [&secondary, &primary_side](const auto& args, control::Reply& reply, UniqueFd&) {
        if (!args.empty()) throw Error("usage: status");
        const StatusFields fields = primary_side.protection_started() ? primary_side.status()
                                                                       : status_fields(secondary.status());
        for (const auto& [key, value] : fields) reply.data.push_back(key + " " + value);
    });

    std::string failure;
    std::jthread worker([&](std::stop_token stop) {
        try {
            const auto outcome = secondary.run(stop);
            if (outcome == Secondary::Outcome::migrated || outcome == Secondary::Outcome::failed_over) {
                // The guest runs here now: the backend makes that final (Xen: the domain's name).
                try {
                    if (const std::string note = service.backend().commit_incoming(); !note.empty()) {
                        std::cerr << "colo-replicate[" << name << "]: " << note << std::endl;
                    }
                } catch (const std::exception& e) {
                    std::cerr << "colo-replicate[" << name << "]: " << e.what() << std::endl;
                }
            }
            switch (outcome) {
                case Secondary::Outcome::migrated:
                    service.set_mode("-");
                    runs_here = true;
                    break;
                case Secondary::Outcome::failed_over:
                    service.set_mode("unprotected (took over)");
                    runs_here = true;
                    break;
                case Secondary::Outcome::stopped:
                case Secondary::Outcome::running: service.request_stop(); break;
            }
        } catch (const std::exception& e) {
            failure = e.what();
            service.request_stop();
        }
    });
    service.serve();
    worker.request_stop();
    worker.join();
    if (!failure.empty()) throw Error(failure);
    return 0;
}

}  // namespace colo
