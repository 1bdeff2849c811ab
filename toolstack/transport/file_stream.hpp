// Save and restore files as byte streams: a save file is a replication stream written to disk
// (stream header, then records), so `save` and `restore` reuse the codec unchanged.
// Both buffer through a fixed buffer; errors name the file.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backends/unique_fd.hpp"
#include "toolstack/protocol/byte_stream.hpp"

namespace colo {

// Opens `path` for writing (`flags` adds O_CREAT, O_TRUNC, ...), as root may safely do with a path
// an operator gave: a symbolic link is followed only when root or this user owns it (one planted
// by someone else in /tmp could point at any file), and a regular file of ours gets no more than
// `mode` allows, whatever the umask or an earlier mode gave it. Throws colo::Error naming the path.
[[nodiscard]] UniqueFd open_output_file(const std::string& path, int flags, mode_t mode);

class FileSink final : public protocol::ByteSink {
public:
    static constexpr std::size_t kBuffer = 1024 * 1024;

    // Creates or truncates `path` (open_output_file), readable by its owner only (it holds guest
    // memory).
    explicit FileSink(std::string path);

    void write_all(std::span<const std::byte> bytes) override;
    void flush() override;
    // Flushes and fsyncs: the file is on disk when this returns.
    void sync();

    [[nodiscard]] const std::string& path() const noexcept { return path_; }

private:
    void write_out(std::span<const std::byte> bytes);

    std::string path_;
    UniqueFd fd_;
    std::vector<std::byte> buffer_;
};

class FileSource final : public protocol::ByteSource {
public:
    static constexpr std::size_t kBuffer = 1024 * 1024;

    explicit FileSource(std::string path);

    // Throws protocol::StreamTruncated ("truncated stream: <path> ends at byte N") when the file ends first.
    void read_exact(std::span<std::byte> out) override;
    // True when every byte of the file has been read.
    [[nodiscard]] bool at_end();
    [[nodiscard]] std::uint64_t position() const noexcept { return position_; }

private:
    std::size_t read_some(std::span<std::byte> out);

    std::string path_;
    UniqueFd fd_;
    std::vector<std::byte> buffer_;
    std::size_t begin_ = 0;  // unread bytes are buffer_[begin_, end_)
    std::size_t end_ = 0;
    std::uint64_t position_ = 0;  // bytes handed out so far
};

}  // namespace colo
