// Boots one guest from a config file through the backend registry, exactly as colo-replicate
// would create it, mirrors its console to stdout and stops at the first console line that
// starts with the given text (e.g. "seq=5 "). Used by the nested tier inside L1, where KVM
// can run an unmodified Linux guest.
//
//   linux_boot_probe CONFIG TIMEOUT_SECONDS UNTIL_PREFIX [MOVE_AT_PREFIX]
//
// With MOVE_AT_PREFIX, the guest is moved once that line has appeared: paused, its state saved
// and all its memory copied into a fresh backend made with create_incoming (a new VM, as a
// restore or a failover makes it), which is resumed and must then print UNTIL_PREFIX. The old
// VM is destroyed first, so every later console byte comes from the copy.
//
// Exit status: 0 when the line appeared, 1 on timeout, 2 on a usage or setup error (message on
// stderr). The last stdout line is always "probe: ..." saying which, with the time taken.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "backends/error.hpp"
#include "backends/guest_config.hpp"
#include "toolstack/backends_available.hpp"

namespace {

// Splits console bytes into lines and lets the main thread wait for a line with a given start.
class ConsoleWatch {
public:
    void feed(std::span<const std::byte> bytes) {
        std::lock_guard lock(mutex_);
        for (const std::byte b : bytes) {
            const char c = static_cast<char>(b);
            std::fputc(c, stdout);
            if (c == '\n') {
                lines_.push_back(line_);
                line_.clear();
            } else if (c != '\r') {
                line_ += c;
            }
        }
        std::fflush(stdout);
        changed_.notify_all();
    }

    bool wait_for(const std::string& prefix, std::chrono::steady_clock::time_point deadline) {
        std::unique_lock lock(mutex_);
        return changed_.wait_until(lock, deadline, [&] {
            for (const auto& l : lines_) {
                if (l.rfind(prefix, 0) == 0) return true;
            }
            return false;
        });
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::string line_;
    std::vector<std::string> lines_;
};

// Copies every page of `from` into `to` (same regions, as both come from one config).
std::uint64_t copy_memory(colo::GuestMemory& from, colo::GuestMemory& to) {
    constexpr std::uint64_t kBatch = 256;
    std::vector<colo::Pfn> frames;
    std::vector<std::byte> buffer(kBatch * colo::kPageSize);
    std::uint64_t copied = 0;
    for (const auto& region : from.regions()) {
        for (std::uint64_t i = 0; i < region.pages; i += kBatch) {
            const std::uint64_t n = std::min(kBatch, region.pages - i);
            frames.clear();
            for (std::uint64_t k = 0; k < n; ++k) frames.push_back(region.first + i + k);
            const std::span<std::byte> bytes(buffer.data(), n * colo::kPageSize);
            from.read_pages(frames, bytes);
            to.write_pages(frames, bytes);
            copied += n;
        }
    }
    return copied;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4 && argc != 5) {
        std::fprintf(stderr, "usage: %s CONFIG TIMEOUT_SECONDS UNTIL_PREFIX [MOVE_AT_PREFIX]\n", argv[0]);
        return 2;
    }
    const auto started = std::chrono::steady_clock::now();
    const auto elapsed = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    };
    try {
        const colo::GuestConfig config = colo::load_guest_config(argv[1]);
        const auto deadline = started + std::chrono::seconds(std::stol(argv[2]));
        const std::string until = argv[3];
        const auto& factory = colo::backends_available().find(config.backend);
        ConsoleWatch watch;
        const auto sink = [&](std::span<const std::byte> bytes) { watch.feed(bytes); };

        auto backend = factory.create(config);
        backend->set_console_sink(sink);
        std::printf("probe: guest %s created in %.1f s, starting\n", config.name.c_str(), elapsed());
        std::fflush(stdout);
        backend->resume();

        if (argc == 5) {
            const std::string move_at = argv[4];
            if (!watch.wait_for(move_at, deadline)) {
                backend->pause();
                std::printf("\nprobe: timed out waiting for \"%s\" after %.1f s\n", move_at.c_str(), elapsed());
                return 1;
            }
            const auto move_started = std::chrono::steady_clock::now();
            backend->pause();
            const std::vector<colo::StateRecord> state = backend->save_state();
            auto copy = factory.create_incoming(config);
            const std::uint64_t pages = copy_memory(backend->memory(), copy->memory());
            backend.reset();  // the original VM is gone: what follows can only come from the copy
            copy->restore_state(state);
            copy->set_console_sink(sink);
            copy->resume();
            backend = std::move(copy);
            std::printf("\nprobe: moved to a new VM after \"%s\": %zu state records, %llu pages, %.2f s\n",
                        move_at.c_str(), state.size(), static_cast<unsigned long long>(pages),
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - move_started).count());
            std::fflush(stdout);
        }

        const bool found = watch.wait_for(until, deadline);
        backend->pause();
        std::printf("\nprobe: %s \"%s\" after %.1f s\n", found ? "saw" : "timed out waiting for", until.c_str(),
                    elapsed());
        return found ? 0 : 1;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "probe: %s\n", e.what());
        std::printf("\nprobe: error after %.1f s: %s\n", elapsed(), e.what());
        return 2;
    }
}
