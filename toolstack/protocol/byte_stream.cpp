#include "toolstack/protocol/byte_stream.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace colo::protocol {

void MemorySink::write_all(std::span<const std::byte> bytes) {
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
}

std::vector<std::byte> MemorySink::take() noexcept {
    return std::exchange(bytes_, {});
}

void MemorySource::read_exact(std::span<std::byte> out) {
    if (out.size() > remaining())
        throw StreamTruncated("truncated stream: needed " + std::to_string(out.size()) + " bytes at offset " +
                    std::to_string(position_) + ", only " + std::to_string(remaining()) + " left");
    std::copy_n(bytes_.begin() + static_cast<std::ptrdiff_t>(position_), out.size(), out.begin());
    position_ += out.size();
}

}  // namespace colo::protocol
