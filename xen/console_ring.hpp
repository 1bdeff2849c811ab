// Reads what a guest writes to its Xen PV console ring (struct xencons_interface in
// public/io/console.h: in[1024], out[2048], then the in_cons, in_prod, out_cons, out_prod
// indices) without consuming it. xenconsoled in dom0 stays the ring's consumer and owns out_cons;
// we only follow out_prod. So replication never steals the console from `xl console`, at a price:
// if more than the ring's 2048 bytes were written between two reads, the oldest are already
// overwritten. Those bytes are counted as lost, never made up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace colo::xen {

inline constexpr std::size_t kConsoleOutOffset = 1024;
inline constexpr std::size_t kConsoleOutSize = 2048;
inline constexpr std::size_t kConsoleOutProdOffset = 3084;

class ConsoleRing {
public:
    // The bytes written since the previous call. The first call only notes where the guest is:
    // output from before we attached is not ours to replay.
    [[nodiscard]] std::vector<std::byte> take_new(const std::byte* ring_page);

    [[nodiscard]] std::uint64_t lost_bytes() const noexcept { return lost_; }
    void forget() noexcept { started_ = false; }  // the next take_new starts afresh

private:
    bool started_ = false;
    std::uint32_t seen_ = 0;  // out_prod at the last read (free-running, wraps at 2^32)
    std::uint64_t lost_ = 0;
};

}  // namespace colo::xen
