#include "toolstack/replication/migration.hpp"

#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "toolstack/replication/disk_mirror.hpp"
#include "toolstack/replication/guest_suspend_device.hpp"
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

using Mirrors = std::vector<std::unique_ptr<disk::DiskMirror>>;

// Brings the receiver's copy of every disk up to date (disk_mirror.hpp) before memory moves.
void sync_disks(const Mirrors& mirrors, Channel& channel, const MigrateConfig& config, const DeviceSend& send) {
    for (const auto& mirror : mirrors) mirror->start(send);
    auto deadline = Clock::now() + config.link.peer_timeout;
    for (;;) {
        bool synced = true, sent = false;
        for (const auto& mirror : mirrors) {
            if (mirror->synced()) continue;
            sent = mirror->send_some(send, 4 * 1024 * 1024) || sent;
            synced = synced && mirror->synced();
        }
        if (synced) return;
        // Whatever the receiver sent; when nothing could be sent, wait a moment for its hashes.
        for (auto wait = Clock::now() + (sent ? Millis{0} : Millis{10});;) {
            auto message = channel.receive(wait);
            if (!message) break;
            wait = Clock::now();
            log_received(config.log, "migrate", *message);
            deadline = Clock::now() + config.link.peer_timeout;
            if (const auto* hashes = std::get_if<protocol::DiskHashes>(&*message)) {
                if (hashes->disk >= mirrors.size()) throw Error("migration: disk-hashes for disk " + std::to_string(hashes->disk) + ", the guest has " + std::to_string(mirrors.size()));
                mirrors[hashes->disk]->take_hashes(*hashes);
            } else if (const auto* failure = std::get_if<protocol::Failure>(&*message)) {
                throw Error("migration: the receiver failed: " + failure->message);
            } else if (!std::holds_alternative<protocol::Heartbeat>(*message)) {
                throw Error(std::string("migration: unexpected ") + protocol::message_name(*message) +
                            " from the receiver while the disks are synced");
            }
        }
        if (!sent && Clock::now() > deadline) {
            throw LinkDown("migration: the receiver did not answer for " +
                           std::to_string(config.link.peer_timeout.count()) + " ms while the disks are synced");
        }
    }
}

}  // namespace

MigrationResult migrate(Backend& backend, Channel& channel, const MigrateConfig& config) {
    const auto start = Clock::now();
    PrecopySender sender(backend, channel, config.precopy, config.log, "migrate");
    struct Watched {  // the sender is shown while it exists, whichever way migrate() ends
        const MigrateConfig& config;
        Watched(const MigrateConfig& c, const PrecopySender& sender) : config(c) {
            if (config.watch) config.watch(&sender);
        }
        ~Watched() {
            if (config.watch) config.watch(nullptr);
        }
    } watched(config, sender);
    channel.set_compress_pages(config.compress);
    MigrationResult result;
    const DeviceSend send = [&](const protocol::Message& message) {
        log_sent(config.log, "migrate", message);
        channel.send(message);
    };
    Mirrors mirrors;
    const auto disks = backend.disks();
    for (std::uint32_t i = 0; i < disks.size(); ++i) {
        mirrors.push_back(std::make_unique<disk::DiskMirror>(*disks[i], i, [&channel] { channel.wake(); }));
    }
    const auto send_disk_writes = [&] {
        for (const auto& mirror : mirrors) mirror->send_queued(send);
    };
    sender.set_between_batches(send_disk_writes);
    // Held until the receiver runs the guest; resumed here as cancelled if the migration fails.
    std::optional<suspend_device::SuspendedGuest> suspended;
    try {
        sync_disks(mirrors, channel, config, send);
        sender.send_live();
        // A guest that suspends itself moves suspended, so the destination's resume rebinds what
        // the hypervisor held for it (guest_suspend_device.hpp).
        if (GuestSuspend* guest = backend.cooperative_suspend()) suspended.emplace(*guest, config.suspend_timeout);
        const auto paused_at = Clock::now();
        sender.send_final(send_disk_writes);
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
        if (suspended) suspended->release();  // it runs at the destination now
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
            if (suspended) {
                backend.pause();  // resumed with the pause held, as after a checkpoint
                suspended->resume();
            }
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
    if (config.compress) {
        const auto compression = channel.page_compression();
        result.page_bytes = compression.bytes_in;
        result.compressed_bytes = compression.bytes_out;
    }
    result.throttle_percent = sender.throttle_percent();
    for (const auto& mirror : mirrors) {
        const disk::MirrorStats d = mirror->stats();
        result.disk_sync_bytes += d.sync_bytes_sent;
        result.disk_sync_ms = std::max(result.disk_sync_ms, d.sync_ms);
        result.disk_write_bytes += d.write_bytes;
    }
    result.total = elapsed_since(start);
    return result;
}

}  // namespace colo
