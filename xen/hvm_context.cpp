#include "xen/hvm_context.hpp"

#include <cstring>
#include <string>

#include "backends/error.hpp"

namespace colo::xen {

namespace {

template <typename T>
T load(std::span<const std::byte> bytes, std::size_t at) {
    T value;
    std::memcpy(&value, bytes.data() + at, sizeof value);  // x86 only: little-endian as Xen writes it
    return value;
}

[[noreturn]] void bad(const std::string& why) { throw Error("HVM context: " + why); }

}  // namespace

void check_hvm_context(std::span<const std::byte> context) {
    if (context.size() < kHvmSaveDescriptorSize + kHvmSaveHeaderSize) {
        bad(std::to_string(context.size()) + " bytes is too short for the header");
    }
    if (load<std::uint16_t>(context, 0) != kHvmSaveCodeHeader) bad("does not start with a header descriptor");
    if (load<std::uint32_t>(context, kHvmSaveDescriptorSize) != kHvmSaveMagic) {
        bad("bad magic (not a Xen HVM save image)");
    }
    std::size_t at = 0;
    while (at + kHvmSaveDescriptorSize <= context.size()) {
        const auto typecode = load<std::uint16_t>(context, at);
        const auto length = load<std::uint32_t>(context, at + 4);
        at += kHvmSaveDescriptorSize;
        if (length > context.size() - at) {
            bad("descriptor type " + std::to_string(typecode) + " of " + std::to_string(length) +
                " bytes runs past the end");
        }
        if (typecode == kHvmSaveCodeEnd) {
            if (at + length != context.size()) bad("bytes after the END descriptor");
            return;
        }
        at += length;
    }
    bad("no END descriptor");
}

}  // namespace colo::xen
