// Released console output goes to everyone who may see it: the foreground terminal (create -F),
// the --console-log file and every attached `colo-replicate console` client.
//
// Every released byte carries its offset in the guest's console stream (OutputSink), and the log
// is written by position: byte k goes to file position k. A byte released twice (by a primary
// that died before its report arrived, then by the survivor) so lands at the same position in
// each host's log: a reader that overlays the hosts' logs by position sees it once. A guest
// created or restored here starts its stream at the log's end (start_at_log_end: 0 for a new
// file; a restore that names its guest's log goes on where it stopped); a guest that arrives by a
// replication stream keeps the offsets its sender gave it. The terminal and console clients get
// the bytes as they come, and so does a log that cannot seek (a pipe, a terminal).
//
// A failed log write is not swallowed: one notice line on stderr when the log starts failing
// (and one when it works again), and log_error() says which offsets are missing, for `status`.
// The other readers are served as usual.
//
// Threading: publish() is called from whichever thread releases output (a vCPU thread for an
// unprotected guest, the pipeline for a protected one) and never blocks on a client: a client
// that cannot keep up is dropped rather than stalling the guest.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backends/unique_fd.hpp"

namespace colo::control {

class ConsoleFanout {
public:
    // Prefix of the notice lines ("colo-replicate[NAME]").
    void set_owner(std::string name) { std::lock_guard lock(mutex_); owner_ = std::move(name); }
    void copy_to_stdout(bool on) { std::lock_guard lock(mutex_); to_stdout_ = on; }
    // Opens (creates) the log. Throws when it cannot be opened.
    void open_log(const std::filesystem::path& file);
    // Before anything is published: the stream starts at the log's size when it was opened.
    void start_at_log_end();
    void add_client(UniqueFd client);

    // `offset`: the console-stream offset of bytes[0].
    void publish(std::uint64_t offset, std::span<const std::byte> bytes);
    // For output released as it is produced (an unprotected guest): at next_offset().
    void publish_next(std::span<const std::byte> bytes);
    // Closes every client (a guest that ends ends its console sessions).
    void close_clients();

    [[nodiscard]] std::uint64_t published_bytes() const;
    // The console-stream offset after the last byte published.
    [[nodiscard]] std::uint64_t next_offset() const;
    // "" while every byte reached the log; otherwise the last failure and the offsets missing.
    [[nodiscard]] std::string log_error() const;

private:
    void publish_locked(std::uint64_t offset, std::span<const std::byte> bytes);
    void write_log_locked(std::uint64_t offset, std::span<const std::byte> bytes);

    mutable std::mutex mutex_;
    std::string owner_ = "colo-replicate";
    bool to_stdout_ = false;
    UniqueFd log_;
    std::filesystem::path log_path_;
    std::uint64_t log_size_at_open_ = 0;
    bool log_seekable_ = true;  // false: a pipe or terminal, written in release order
    std::vector<UniqueFd> clients_;
    std::uint64_t published_ = 0;
    std::uint64_t next_offset_ = 0;
    // Log failures: the first offset that did not reach the log, the bytes missing, the last errno.
    struct LogLoss {
        std::uint64_t first_offset = 0;
        std::uint64_t bytes = 0;
        int error = 0;
        bool failing = false;  // the last write failed
    };
    std::optional<LogLoss> log_loss_;
};

}  // namespace colo::control
