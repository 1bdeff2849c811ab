#include "xen/hvm_params.hpp"

#include <algorithm>
#include <cstring>
#include <set>

#include "backends/error.hpp"

namespace colo::xen {

namespace {

constexpr std::size_t kHeaderSize = 8;  // u32 count, u32 reserved
constexpr std::size_t kEntrySize = 16;  // u64 index, u64 value

[[noreturn]] void bad(const std::string& why) { throw Error("HVM params: " + why); }

template <typename T>
T load(std::span<const std::byte> bytes, std::size_t at) {
    T value;
    std::memcpy(&value, bytes.data() + at, sizeof value);  // x86 only: little-endian
    return value;
}

template <typename T>
void put(std::vector<std::byte>& out, T value) {
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    out.insert(out.end(), p, p + sizeof value);
}

// Refuses an index that is not carried or that `seen` has already.
void check_index(std::uint64_t index, std::set<std::uint64_t>& seen) {
    if (index > UINT32_MAX || carried_hvm_param(static_cast<std::uint32_t>(index)) == nullptr) {
        bad("param " + std::to_string(index) + " is not one the record carries");
    }
    if (!seen.insert(index).second) bad("param " + std::to_string(index) + " appears twice");
}

}  // namespace

const CarriedHvmParam* carried_hvm_param(std::uint32_t index) {
    const auto* it = std::find_if(std::begin(kCarriedHvmParams), std::end(kCarriedHvmParams),
                                  [&](const CarriedHvmParam& p) { return p.index == index; });
    return it == std::end(kCarriedHvmParams) ? nullptr : it;
}

std::vector<std::byte> encode_hvm_params(std::span<const HvmParam> params) {
    std::set<std::uint64_t> seen;
    std::vector<std::byte> out;
    out.reserve(kHeaderSize + params.size() * kEntrySize);
    put(out, static_cast<std::uint32_t>(params.size()));
    put(out, std::uint32_t{0});
    for (const HvmParam& p : params) {
        check_index(p.index, seen);
        put(out, std::uint64_t{p.index});
        put(out, p.value);
    }
    return out;
}

std::vector<HvmParam> decode_hvm_params(std::span<const std::byte> body) {
    if (body.size() < kHeaderSize) bad(std::to_string(body.size()) + " bytes is too short for the header");
    const auto count = load<std::uint32_t>(body, 0);
    if (load<std::uint32_t>(body, 4) != 0) bad("the reserved field is not 0");
    // Checked before anything is allocated: count comes from the stream.
    if ((body.size() - kHeaderSize) % kEntrySize != 0 || (body.size() - kHeaderSize) / kEntrySize != count) {
        bad("the header counts " + std::to_string(count) + " params but the record holds " +
            std::to_string(body.size() - kHeaderSize) + " bytes of them");
    }
    std::set<std::uint64_t> seen;
    std::vector<HvmParam> params;
    params.reserve(count);
    for (std::size_t at = kHeaderSize; at < body.size(); at += kEntrySize) {
        const auto index = load<std::uint64_t>(body, at);
        check_index(index, seen);
        params.push_back(HvmParam{static_cast<std::uint32_t>(index), load<std::uint64_t>(body, at + 8)});
    }
    return params;
}

}  // namespace colo::xen
