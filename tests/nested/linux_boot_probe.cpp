// Boots one guest from a config file through the backend registry, exactly as colo-replicate
// would create it, mirrors its console to stdout and stops at the first console line that
// starts with the given text (e.g. "seq=5 "). Used by the nested tier inside L1, where KVM
// can run an unmodified Linux guest.
//
//   linux_boot_probe CONFIG TIMEOUT_SECONDS UNTIL_PREFIX
//
// Exit status: 0 when the line appeared, 1 on timeout, 2 on a usage or setup error (message on
// stderr). The last stdout line is always "probe: ..." saying which, with the time taken.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <mutex>
#include <span>
#include <string>

#include "backends/error.hpp"
#include "backends/guest_config.hpp"
#include "toolstack/backends_available.hpp"

namespace {

// Splits console bytes into lines and remembers whether the awaited one went by.
class ConsoleWatch {
public:
    explicit ConsoleWatch(std::string prefix) : prefix_(std::move(prefix)) {}

    void feed(std::span<const std::byte> bytes) {
        std::lock_guard lock(mutex_);
        for (const std::byte b : bytes) {
            const char c = static_cast<char>(b);
            std::fputc(c, stdout);
            if (c == '\n') {
                if (line_.rfind(prefix_, 0) == 0) found_ = true;
                line_.clear();
            } else if (c != '\r') {
                line_ += c;
            }
        }
        std::fflush(stdout);
        if (found_) seen_.notify_all();
    }

    bool wait(std::chrono::seconds timeout) {
        std::unique_lock lock(mutex_);
        return seen_.wait_for(lock, timeout, [&] { return found_; });
    }

private:
    std::string prefix_;
    std::mutex mutex_;
    std::condition_variable seen_;
    std::string line_;
    bool found_ = false;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s CONFIG TIMEOUT_SECONDS UNTIL_PREFIX\n", argv[0]);
        return 2;
    }
    const auto started = std::chrono::steady_clock::now();
    const auto elapsed = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    };
    try {
        const colo::GuestConfig config = colo::load_guest_config(argv[1]);
        const long timeout = std::stol(argv[2]);
        ConsoleWatch watch(argv[3]);
        auto backend = colo::backends_available().find(config.backend).create(config);
        backend->set_console_sink([&](std::span<const std::byte> bytes) { watch.feed(bytes); });
        std::printf("probe: guest %s created in %.1f s, starting\n", config.name.c_str(), elapsed());
        std::fflush(stdout);
        backend->resume();
        const bool found = watch.wait(std::chrono::seconds(timeout));
        backend->pause();
        std::printf("\nprobe: %s \"%s\" after %.1f s\n", found ? "saw" : "timed out waiting for", argv[3], elapsed());
        return found ? 0 : 1;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "probe: %s\n", e.what());
        std::printf("\nprobe: error after %.1f s: %s\n", elapsed(), e.what());
        return 2;
    }
}
