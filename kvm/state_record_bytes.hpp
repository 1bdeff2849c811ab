// Fixed-size KVM structs to and from StateRecord bodies, size-checked (kvm/state_tags.hpp).
#pragma once

#include <cstring>
#include <string>
#include <type_traits>

#include "backends/backend.hpp"
#include "backends/error.hpp"
#include "kvm/state_tags.hpp"

namespace colo::kvm {

template <typename T>
[[nodiscard]] StateRecord record_of(std::uint32_t tag, const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    StateRecord record{tag, state_tags::kVersion, std::vector<std::byte>(sizeof(T))};
    std::memcpy(record.data.data(), &value, sizeof(T));
    return record;
}

// Throws colo::Error naming the record unless its version is ours and its body is `size` bytes.
inline void check_record_shape(const StateRecord& record, std::size_t size) {
    if (record.version != state_tags::kVersion) {
        throw Error("KVM state: " + state_tags::describe(record.tag) + " has version " +
                    std::to_string(record.version) + ", this build reads version " +
                    std::to_string(state_tags::kVersion));
    }
    if (record.data.size() != size) {
        throw Error("KVM state: " + state_tags::describe(record.tag) + " is " + std::to_string(record.data.size()) +
                    " bytes, expected " + std::to_string(size));
    }
}

template <typename T>
[[nodiscard]] T body_as(const StateRecord& record) {
    static_assert(std::is_trivially_copyable_v<T>);
    check_record_shape(record, sizeof(T));
    T value;
    std::memcpy(&value, record.data.data(), sizeof(T));
    return value;
}

}  // namespace colo::kvm
