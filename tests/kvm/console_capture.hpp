// Collects a guest's console output (from vCPU threads) and lets a test wait for a line.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "backends/backend.hpp"

namespace colo::test {

class ConsoleCapture {
public:
    [[nodiscard]] ConsoleSink sink() {
        return [this](std::span<const std::byte> bytes) {
            std::lock_guard lock(mutex_);
            for (const auto b : bytes) text_.push_back(static_cast<char>(b));
            changed_.notify_all();
        };
    }

    // Waits until the output holds `needle`; false after `timeout`.
    bool wait_for(const std::string& needle, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return text_.find(needle) != std::string::npos; });
    }

    // Waits until a whole line (its newline arrived) starts with `prefix`: a line found by its
    // first words may still be half printed.
    bool wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] {
            for (std::size_t at = 0; (at = text_.find(prefix, at)) != std::string::npos; at += prefix.size()) {
                if ((at == 0 || text_[at - 1] == '\n') && text_.find('\n', at) != std::string::npos) return true;
            }
            return false;
        });
    }

    // Waits until at least `count` complete lines have arrived.
    bool wait_for_lines(std::size_t count, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return complete_lines() >= count; });
    }

    [[nodiscard]] std::string text() const {
        std::lock_guard lock(mutex_);
        return text_;
    }

    // Complete lines only (a line still being printed is left out).
    [[nodiscard]] std::vector<std::string> lines() const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        std::size_t start = 0;
        for (std::size_t nl; (nl = text_.find('\n', start)) != std::string::npos; start = nl + 1) {
            out.push_back(text_.substr(start, nl - start));
        }
        return out;
    }

private:
    [[nodiscard]] std::size_t complete_lines() const {
        std::size_t n = 0;
        for (const char c : text_) n += c == '\n';
        return n;
    }

    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::string text_;
};

}  // namespace colo::test
