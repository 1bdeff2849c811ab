// A Linux bzImage as the x86 boot protocol describes it (Documentation/arch/x86/boot.rst): a
// real-mode setup part of (setup_sects + 1) sectors whose setup header says how to load the rest,
// then the protected-mode kernel (which, in a bzImage, is the decompressor plus its payload).
//
// We only ever use the 64-bit entry, at the protected-mode kernel's load address + 0x200, so a
// kernel must speak boot protocol 2.12 or later and set XLF_KERNEL_64. Everything is validated
// against the file's real size before use: an image is untrusted input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace colo::kvm {

// Offsets of setup-header fields, counted from the start of the image (= the zero page, which
// carries a copy of the header at the same offsets).
namespace setup_header {
inline constexpr std::size_t kStart = 0x1f1;  // the header begins with setup_sects
inline constexpr std::size_t kSetupSects = 0x1f1;
inline constexpr std::size_t kBootFlag = 0x1fe;
inline constexpr std::size_t kJump = 0x200;  // 2-byte jmp; its second byte gives the header's end
inline constexpr std::size_t kMagic = 0x202;
inline constexpr std::size_t kVersion = 0x206;
inline constexpr std::size_t kTypeOfLoader = 0x210;
inline constexpr std::size_t kLoadFlags = 0x211;
inline constexpr std::size_t kCode32Start = 0x214;
inline constexpr std::size_t kRamdiskImage = 0x218;
inline constexpr std::size_t kRamdiskSize = 0x21c;
inline constexpr std::size_t kCmdLinePtr = 0x228;
inline constexpr std::size_t kInitrdAddrMax = 0x22c;
inline constexpr std::size_t kKernelAlignment = 0x230;
inline constexpr std::size_t kRelocatableKernel = 0x234;
inline constexpr std::size_t kXLoadFlags = 0x236;
inline constexpr std::size_t kCmdlineSize = 0x238;
inline constexpr std::size_t kPayloadOffset = 0x248;
inline constexpr std::size_t kPayloadLength = 0x24c;
inline constexpr std::size_t kPrefAddress = 0x258;
inline constexpr std::size_t kInitSize = 0x260;
inline constexpr std::size_t kEnd = 0x264;    // end of the last field we read (protocol 2.12)
inline constexpr std::size_t kLimit = 0x290;  // where the zero page's next field begins

inline constexpr std::uint16_t kBootFlagValue = 0xaa55;
inline constexpr std::uint32_t kMagicValue = 0x53726448;  // "HdrS"
inline constexpr std::uint16_t kMinVersion = 0x020c;      // 2.12: xloadflags
inline constexpr std::uint16_t kXlfKernel64 = 1u << 0;
inline constexpr std::uint16_t kXlfCanBeLoadedAbove4G = 1u << 1;
inline constexpr std::uint8_t kLoadedHigh = 1u << 0;
}  // namespace setup_header

struct BzImage {
    std::uint16_t protocol_version = 0;   // 0x020f = 2.15
    unsigned setup_sects = 0;             // real-mode sectors after the boot sector (0 means 4)
    std::size_t kernel_offset = 0;        // file offset of the protected-mode kernel
    std::size_t kernel_size = 0;          // its length in the file
    std::uint32_t payload_offset = 0;     // compressed payload, relative to kernel_offset
    std::uint32_t payload_length = 0;
    std::uint64_t pref_address = 0;       // where the kernel wants to be loaded
    std::uint32_t init_size = 0;          // bytes it needs from its load address while booting
    std::uint32_t kernel_alignment = 0;   // required load alignment when relocatable
    bool relocatable = false;
    std::uint16_t xloadflags = 0;
    std::uint32_t initrd_addr_max = 0;    // highest byte address an initramfs may occupy
    std::uint32_t cmdline_size = 0;       // longest command line, without the NUL
    std::vector<std::byte> header;        // image bytes [kStart, end of header): copied to the zero page

    // Where to put the protected-mode kernel: pref_address when it is usable (at or above 1 MiB
    // and suitably aligned), otherwise (relocatable kernels only) the next aligned address from
    // 16 MiB. Throws colo::Error for a fixed kernel whose pref_address is unusable.
    [[nodiscard]] std::uint64_t load_address() const;
    // The 64-bit entry point for a kernel loaded at load_address().
    [[nodiscard]] std::uint64_t entry64() const { return load_address() + 0x200; }
};

// True when the image carries the boot flag and "HdrS" (so it claims to be a bzImage).
[[nodiscard]] bool looks_like_bzimage(std::span<const std::byte> image);

// Parses and validates; `origin` (the file name) starts every error message, e.g.
// "/x/y: not a Linux bzImage (no HdrS signature)".
[[nodiscard]] BzImage parse_bzimage(std::span<const std::byte> image, const std::string& origin);

}  // namespace colo::kvm
