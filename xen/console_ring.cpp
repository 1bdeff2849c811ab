#include "xen/console_ring.hpp"

namespace colo::xen {

std::vector<std::byte> ConsoleRing::take_new(const std::byte* ring_page) {
    // The guest writes the bytes, then (after a write barrier) advances out_prod; the acquire
    // load pairs with that, so every byte below the loaded index is already visible.
    const auto* prod_ptr = reinterpret_cast<const std::uint32_t*>(ring_page + kConsoleOutProdOffset);
    const std::uint32_t prod = __atomic_load_n(prod_ptr, __ATOMIC_ACQUIRE);
    std::vector<std::byte> out;
    if (!started_) {
        started_ = true;
        seen_ = prod;
        return out;
    }
    std::uint32_t available = prod - seen_;  // unsigned: correct across the 2^32 wrap
    if (available > kConsoleOutSize) {
        lost_ += available - kConsoleOutSize;
        seen_ = prod - static_cast<std::uint32_t>(kConsoleOutSize);
        available = kConsoleOutSize;
    }
    out.reserve(available);
    const std::byte* ring = ring_page + kConsoleOutOffset;
    for (std::uint32_t i = 0; i < available; ++i) out.push_back(ring[(seen_ + i) % kConsoleOutSize]);
    seen_ = prod;
    return out;
}

}  // namespace colo::xen
