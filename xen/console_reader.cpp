#include "xen/console_reader.hpp"

namespace colo::xen {

ConsoleReader::ConsoleReader(ForeignMapping ring, ConsoleSink sink, std::chrono::milliseconds period)
    : ring_(std::move(ring)), sink_(std::move(sink)), period_(period) {
    (void)reader_.take_new(ring_.page(0));  // notes where the guest's output is now
    thread_ = std::thread([this] { run(); });
}

ConsoleReader::~ConsoleReader() {
    {
        std::lock_guard lock(stop_mutex_);
        stopping_ = true;
    }
    stop_signal_.notify_all();
    thread_.join();
}

void ConsoleReader::poll() {
    std::lock_guard lock(mutex_);
    if (!sink_) return;
    const std::vector<std::byte> bytes = reader_.take_new(ring_.page(0));
    if (bytes.empty()) return;
    try {
        sink_(bytes);
    } catch (...) {
        // See the header: nobody to report to on the reader thread.
    }
}

void ConsoleReader::set_sink(ConsoleSink sink) {
    std::lock_guard lock(mutex_);
    sink_ = std::move(sink);
}

void ConsoleReader::rebase_around(const std::function<void()>& write) {
    std::lock_guard lock(mutex_);
    write();
    reader_.forget();
    (void)reader_.take_new(ring_.page(0));
}

std::uint64_t ConsoleReader::lost_bytes() const {
    std::lock_guard lock(mutex_);
    return reader_.lost_bytes();
}

void ConsoleReader::run() {
    std::unique_lock lock(stop_mutex_);
    while (!stop_signal_.wait_for(lock, period_, [this] { return stopping_; })) {
        lock.unlock();
        poll();
        lock.lock();
    }
}

}  // namespace colo::xen
