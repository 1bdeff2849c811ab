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
//     vif = [ 'mac=52:54:00:12:34:56,bridge=br0,ip=10.0.0.2/24' ]   # NICs, xl.cfg style
//     disk = [ '/var/lib/images/demo.img,raw,xvda,rw' ]              # disks, xl.cfg style
//     peer = "hostb:8471"; protection = "colo"; link_key = "/etc/colo-replicate/demo.key"  # ProtectionConfig
//
// Keys are `key = value`; a value is a number, a "string" or 'string', or (vif) a list of strings
// [ '...', ... ] that may span lines; `#` starts a comment;
// `;` or a newline ends an assignment. Unknown keys and bad values are errors naming the line.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace colo {

enum class GuestKind { builtin, linux_kernel };

using MacAddress = std::array<std::uint8_t, 6>;

// An IPv4 address with its prefix length, as in `ip=10.0.0.2/24`. Bytes in network order.
struct Ipv4Cidr {
    std::array<std::uint8_t, 4> address{};
    unsigned prefix = 32;
    bool operator==(const Ipv4Cidr&) const = default;
};

// One virtual NIC: an element of `vif = [ '...', ... ]`, in xl.cfg's vif syntax (comma-separated
// key=value; man colo-replicate.cfg(5)). The host side is a TAP device that colo-replicate opens
// (IFF_TAP|IFF_NO_PI) and, with `bridge`, adds to that bridge.
struct VifConfig {
    MacAddress mac{};         // mac=52:54:00:..; default: 52:54:00 followed by 3 bytes of a hash of name and index
    std::string bridge;       // bridge=br0: add the TAP to this bridge; empty: leave it unbridged
    std::string vifname;      // vifname=tap-demo: the TAP's name; empty: the kernel picks one (crtap%d)
    // (bridge and vifname: 1 to 15 letters, digits, '_', '.', '-'; xl's type=vif and
    // model=virtio-net are accepted and mean nothing more; any other key is an error)
    std::optional<Ipv4Cidr> ip;  // ip=10.0.0.2/24 (no prefix: /24): the guest's address (the built-in guest uses it)
    bool operator==(const VifConfig&) const = default;
};

inline constexpr std::size_t kMaxVifs = 4;

// One virtual disk: an element of `disk = [ '...', ... ]`, in xl's disk syntax
// (xl-disk-configuration: positional `target,format,vdev,access` or key=value `target=..,
// format=raw,vdev=xvda,access=rw`; man colo-replicate.cfg(5)). The image is a raw file that the
// guest's device reads and writes (KVM: virtio-blk, kvm/devices/virtio_blk.hpp).
struct DiskConfig {
    std::filesystem::path target;  // the raw image file
    std::string vdev;              // xvda, xvdb, ... (sda/hda/vda accepted): the disk's name, unique per guest
    bool read_only = false;        // access=ro (r, ro) or rw (w, rw; the default)
    bool operator==(const DiskConfig&) const = default;
};

inline constexpr std::size_t kMaxDisks = 4;
inline constexpr std::uint64_t kMaxDiskBlocks = std::uint64_t{1} << 20;  // disk_blocks: 4 GiB of 4 KiB blocks
// One disk element as parse_guest_config reads it back: "format=raw,vdev=..,access=..,target=.."
// (target last: xl's target= takes the rest of the element, so a path may hold commas).
[[nodiscard]] std::string format_disk(const DiskConfig& disk);
inline constexpr std::size_t kMaxInterfaceName = 15;  // IFNAMSIZ - 1

// The MAC a vif without `mac=` gets: 52:54:00 and three bytes of FNV-1a("NAME/INDEX").
[[nodiscard]] MacAddress default_mac(const std::string& guest_name, std::size_t index);
[[nodiscard]] std::string format_mac(const MacAddress& mac);  // 52:54:00:12:34:56
// One vif element as parse_guest_config reads it back: "mac=..,bridge=..,vifname=..,ip=../N".
[[nodiscard]] std::string format_vif(const VifConfig& vif);

// Protection as the guest's config declares it (man colo-replicate.cfg(5), PROTECTION): what
// `protect NAME` and `receive CONFIG` use where the command line says nothing. Each host keeps its
// own file (peer names the other host); none of it crosses the link: a receiver takes only its
// own file's. Unset fields are empty.
struct ProtectionConfig {
    std::string peer;                    // "HOST[:PORT]": where the secondary receives (protect)
    std::string listen;                  // "HOST[:PORT]": where receive listens
    std::string mode;                    // "colo" or "remus"
    std::optional<std::uint64_t> interval_ms;          // checkpoint_interval
    std::optional<std::uint64_t> heartbeat_timeout_ms;  // heartbeat_timeout (both sides)
    std::filesystem::path link_key;      // --key on both sides
    std::filesystem::path tls_cert, tls_key, tls_ca;    // x509 instead of link_key
    std::string witness;                 // etcd://HOST:PORT[/PREFIX] (both sides)
    std::string takeover;                // "auto" or "manual" (receive)
    std::filesystem::path disk_dir;      // receive --disk-dir
    // Whether the guest is meant to be protected: a peer to protect to or an address to listen on.
    [[nodiscard]] bool declared() const { return !peer.empty() || !listen.empty(); }
    bool operator==(const ProtectionConfig&) const = default;
};

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
    // Built-in guest with a disk: its workload on the first disk (kvm/builtin_guest/disk.c).
    std::uint64_t disk_rate = 200;          // 4 KiB blocks written per second
    std::uint64_t disk_blocks = 0;          // blocks it uses; 0: min(disk size / 4096, 1024)
    std::uint64_t disk_writes = 0;          // stop writing after this many; 0: never stop
    std::uint64_t disk_flush_every = 8;     // a FLUSH after every N writes; 0: never
    std::vector<VifConfig> vifs;            // vif = [ ... ]: at most kMaxVifs
    std::vector<DiskConfig> disks;          // disk = [ ... ]: at most kMaxDisks
    // How a checkpoint stops the guest: "auto" (cooperatively when the backend finds the guest
    // can: a Xen domain with PV drivers), "cooperative" (always; refused when it cannot) or
    // "transparent" (paused from outside, never asked). Only Xen has cooperative checkpoints.
    std::string checkpoint_style = "auto";
    ProtectionConfig protection;            // never sent to a receiver (format_guest_config leaves it out)
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
