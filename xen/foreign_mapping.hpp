// A batch of another domain's frames mapped into our address space (xenforeignmemory_map), owned:
// the destructor unmaps it (STYLE §1). Move-only; made only by XenCalls::map_foreign.
#pragma once

#include <cstddef>
#include <utility>

#include "backends/guest_address.hpp"
#include "xen/xen_calls.hpp"

namespace colo::xen {

class ForeignMapping {
public:
    ForeignMapping() = default;
    ForeignMapping(ForeignMapping&& other) noexcept
        : calls_(std::exchange(other.calls_, nullptr)),
          address_(std::exchange(other.address_, nullptr)),
          pages_(std::exchange(other.pages_, 0)) {}
    ForeignMapping& operator=(ForeignMapping&& other) noexcept {
        if (this != &other) {
            reset();
            calls_ = std::exchange(other.calls_, nullptr);
            address_ = std::exchange(other.address_, nullptr);
            pages_ = std::exchange(other.pages_, 0);
        }
        return *this;
    }
    ForeignMapping(const ForeignMapping&) = delete;
    ForeignMapping& operator=(const ForeignMapping&) = delete;
    ~ForeignMapping() { reset(); }

    [[nodiscard]] bool mapped() const noexcept { return address_ != nullptr; }
    [[nodiscard]] std::size_t pages() const noexcept { return pages_; }
    // Page i of the batch (the frame that was frames[i] in the map call).
    [[nodiscard]] std::byte* page(std::size_t i) const noexcept { return address_ + i * kPageSize; }

    void reset() noexcept {
        if (address_ != nullptr) calls_->unmap_foreign(address_, pages_);
        calls_ = nullptr;
        address_ = nullptr;
        pages_ = 0;
    }

private:
    friend class XenCalls;
    ForeignMapping(XenCalls* calls, std::byte* address, std::size_t pages)
        : calls_(calls), address_(address), pages_(pages) {}

    XenCalls* calls_ = nullptr;
    std::byte* address_ = nullptr;
    std::size_t pages_ = 0;
};

}  // namespace colo::xen
