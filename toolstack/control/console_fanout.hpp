// Released console output goes to everyone who may see it: the foreground terminal (create -F),
// the --console-log file and every attached `colo-replicate console` client.
//
// Threading: publish() is called from whichever thread releases output (a vCPU thread for an
// unprotected guest, the pipeline for a protected one) and never blocks on a client: a client
// that cannot keep up is dropped rather than stalling the guest.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <span>
#include <vector>

#include "backends/unique_fd.hpp"

namespace colo::control {

class ConsoleFanout {
public:
    void copy_to_stdout(bool on) { std::lock_guard lock(mutex_); to_stdout_ = on; }
    void open_log(const std::filesystem::path& file);  // appends; throws when it cannot be opened
    void add_client(UniqueFd client);

    void publish(std::span<const std::byte> bytes);
    // Closes every client (a guest that ends ends its console sessions).
    void close_clients();

    [[nodiscard]] std::uint64_t published_bytes() const;

private:
    mutable std::mutex mutex_;
    bool to_stdout_ = false;
    UniqueFd log_;
    std::vector<UniqueFd> clients_;
    std::uint64_t published_ = 0;
};

}  // namespace colo::control
