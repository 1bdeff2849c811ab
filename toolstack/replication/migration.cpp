#include "toolstack/replication/migration.hpp"

#include <string>
#include <variant>

#include "toolstack/replication/last_words.hpp"
#include "toolstack/replication/message_log.hpp"
#include "toolstack/replication/pipeline_clock.hpp"
#include "toolstack/replication/precopy_sender.hpp"

namespace colo {

namespace {

using Clock = PipelineClock;

// Waits for the receiver's CheckpointLoaded{0}; heartbeats are only signs of life here.
void await_receiver(Channel& channel, const MigrateConfig& config) {
    auto deadline = Clock::now() + config.link.peer_timeout;
    for (;;) {
        auto message = channel.receive(deadline);
        if (!message) {
            throw LinkDown("migration: the receiver did not acknowledge within " +
                           std::to_string(config.link.peer_timeout.count()) + " ms");
        }
        log_received(config.log, "migrate", *message);
        deadline = Clock::now() + config.link.peer_timeout;
        if (const auto* loaded = std::get_if<protocol::CheckpointLoaded>(&*message)) {
            if (loaded->epoch != 0) {
                throw Error("migration: receiver acknowledged epoch " + std::to_string(loaded->epoch) +
                            ", expected 0");
            }
            return;
        }
        if (const auto* failure = std::get_if<protocol::Failure>(&*message)) {
            throw Error("migration: the receiver failed: " + failure->message);
        }
        if (!std::holds_alternative<protocol::Heartbeat>(*message) &&
            !std::holds_alternative<protocol::SecondaryOutput>(*message)) {
            throw Error(std::string("migration: unexpected ") + protocol::message_name(*message) +
                        " from the receiver");
        }
    }
}

}  // namespace

MigrationResult migrate(Backend& backend, Channel& channel, const MigrateConfig& config) {
    const auto start = Clock::now();
    PrecopySender sender(backend, channel, config.precopy, config.log, "migrate");
    MigrationResult result;
    try {
        sender.send_live();
        const auto paused_at = Clock::now();
        sender.send_final();
        // Paused for good unless this fails: the destination (maybe this very host) takes the
        // guest's TAP names over. Taken back below if the migration fails.
        for (GuestNic* nic : backend.nics()) nic->detach_host();
        if (config.console_offset) {
            const protocol::Message released = protocol::ReleasedOutput{config.console_offset()};
            log_sent(config.log, "migrate", released);
            channel.send(released);
        }
        const protocol::Message goodbye = protocol::Goodbye{"migration complete"};
        log_sent(config.log, "migrate", goodbye);
        channel.send(goodbye);
        await_receiver(channel, config);
        result.downtime = elapsed_since(paused_at);
    } catch (const Error& e) {
        // The receiver never confirmed it runs the guest, so it keeps running here.
        std::string why = e.what();
        if (auto words = last_words(channel)) {
            if (const auto* failure = std::get_if<protocol::Failure>(&*words)) {
                why = "migration: the receiver failed: " + failure->message;
            }
        }
        try {
            for (GuestNic* nic : backend.nics()) {
                if (!nic->attached()) nic->attach_host();
            }
            backend.stop_dirty_log();
            backend.resume();
        } catch (const Error& inner) {
            throw Error(why + "; and resuming the guest here failed: " + inner.what());
        }
        channel.close();
        if (dynamic_cast<const LinkDown*>(&e) && why == e.what()) throw LinkDown(why + " (the guest continues here)");
        throw Error(why + " (the guest continues here)");
    }
    backend.stop_dirty_log();
    result.passes = sender.passes();
    result.pages_sent = sender.pages_sent();
    result.pages_final = sender.pages_final();
    result.bytes_sent = sender.bytes_sent();
    result.throttle_percent = sender.throttle_percent();
    result.total = elapsed_since(start);
    return result;
}

}  // namespace colo
