// A guest configuration file in xl.cfg style (man colo-replicate.cfg(5)):
//
//     name = "demo"
//     memory = 256          # MiB
//     vcpus = 1
//     guest = "builtin"     # or "linux"
//     kernel = "/path/vmlinux"; ramdisk = "/path/initrd"; extra = "console=ttyS0"
//     working_set = 64      # built-in guest: MiB it writes to
//     dirty_rate = 1000     # built-in guest: pages per second
//     seed = 1              # built-in guest: PRNG seed
//
// Keys are `key = value`; a value is a number, a "string" or 'string'; `#` starts a comment;
// `;` or a newline ends an assignment. Unknown keys and bad values are errors naming the line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace colo {

enum class GuestKind { builtin, linux_kernel };

struct GuestConfig {
    std::string name;
    std::string backend = "kvm";
    std::uint64_t memory_mib = 128;
    unsigned vcpus = 1;
    GuestKind guest = GuestKind::builtin;
    std::filesystem::path kernel;
    std::filesystem::path ramdisk;
    std::string extra;
    // Built-in test guest.
    std::uint64_t working_set_mib = 16;
    std::uint64_t dirty_rate = 1000;       // pages per second
    std::uint64_t seed = 1;
    std::uint64_t print_interval_ms = 100;  // one `seq=N` line per interval
    // Filled in by a sender for its receiver, never written by hand: the backend's description
    // of the guest (Backend::domain_config; Xen: libxl's JSON). Hex-encoded in the text, since
    // config strings hold no newlines or quotes.
    std::string domain_config;
};

inline constexpr std::uint64_t kMaxMemoryMib = 64 * 1024;
inline constexpr unsigned kMaxVcpus = 8;
inline constexpr std::size_t kMaxGuestNameLength = 64;
inline constexpr std::size_t kMaxGuestConfigBytes = 1024 * 1024;  // a config is a few lines

// Parses config text; `origin` names it in errors ("demo.cfg:3: ..."). Checks every value's range
// and the cross-field rules (a linux guest needs a kernel, the working set fits in memory).
[[nodiscard]] GuestConfig parse_guest_config(const std::string& text, const std::string& origin);
// Reads at most kMaxGuestConfigBytes (a larger file is refused, not read to its end).
[[nodiscard]] GuestConfig load_guest_config(const std::filesystem::path& file);

// Throws colo::Error ("ORIGIN: name ... must ...") unless `name` starts with a letter or digit,
// holds only letters, digits, '-', '_' and '.', and has at most kMaxGuestNameLength characters.
void validate_guest_name(const std::string& name, const std::string& origin);

// Renders a config that parse_guest_config reads back to the same value (sent to a secondary).
[[nodiscard]] std::string format_guest_config(const GuestConfig& config);

}  // namespace colo
