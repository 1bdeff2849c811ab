// The two byte-stream interfaces the codec reads from and writes to, and their in-memory forms.
// A transport (TCP, a save file) implements them; the in-memory ones serve tests and let the
// primary build a whole checkpoint in a local buffer before it sends a byte of it.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "backends/error.hpp"

namespace colo::protocol {

// The stream stopped delivering bytes, as opposed to delivering bytes that are wrong (a plain
// colo::Error): it ended early (the peer closed, the file is short) or the peer went silent past
// the transport's timeout. On a replication link both mean "the peer is gone"; StreamChannel
// decides that by these types, never by the words of the message.
class StreamStopped : public Error {
public:
    using Error::Error;
};

// The stream ended before the bytes asked for.
class StreamTruncated final : public StreamStopped {
public:
    using StreamStopped::StreamStopped;
};

// Nothing moved for the transport's whole timeout (cable cut, process frozen).
class PeerSilent final : public StreamStopped {
public:
    using StreamStopped::StreamStopped;
};

class ByteSource {
public:
    virtual ~ByteSource() = default;
    // Fills `out` completely or throws colo::Error; a stream that ends first throws
    // StreamTruncated ("truncated stream: ..."). Never returns short.
    virtual void read_exact(std::span<std::byte> out) = 0;
};

class ByteSink {
public:
    virtual ~ByteSink() = default;
    // Takes all of `bytes` or throws colo::Error. May buffer; flush() pushes buffered bytes out.
    virtual void write_all(std::span<const std::byte> bytes) = 0;
    virtual void flush() {}
};

// Appends everything written to a growing buffer.
class MemorySink final : public ByteSink {
public:
    void write_all(std::span<const std::byte> bytes) override;

    [[nodiscard]] const std::vector<std::byte>& bytes() const noexcept { return bytes_; }
    // Hands the buffer over and leaves the sink empty, ready for the next checkpoint.
    [[nodiscard]] std::vector<std::byte> take() noexcept;

private:
    std::vector<std::byte> bytes_;
};

// Reads from a span it does not own; the bytes must outlive the source.
class MemorySource final : public ByteSource {
public:
    explicit MemorySource(std::span<const std::byte> bytes) noexcept : bytes_(bytes) {}

    void read_exact(std::span<std::byte> out) override;

    [[nodiscard]] std::size_t position() const noexcept { return position_; }
    [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - position_; }
    [[nodiscard]] bool at_end() const noexcept { return remaining() == 0; }

private:
    std::span<const std::byte> bytes_;
    std::size_t position_ = 0;
};

}  // namespace colo::protocol
