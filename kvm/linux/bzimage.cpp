#include "kvm/linux/bzimage.hpp"

#include <bit>
#include <cstdio>

#include "backends/error.hpp"
#include "kvm/linux/boot_layout.hpp"
#include "kvm/linux/little_endian.hpp"

namespace colo::kvm {

namespace {

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string version_text(std::uint16_t v) {
    return std::to_string(v >> 8) + "." + std::to_string(v & 0xff);
}

}  // namespace

bool looks_like_bzimage(std::span<const std::byte> image) {
    using namespace setup_header;
    return image.size() >= kMagic + 4 && load_le<std::uint16_t>(image, kBootFlag) == kBootFlagValue &&
           load_le<std::uint32_t>(image, kMagic) == kMagicValue;
}

BzImage parse_bzimage(std::span<const std::byte> image, const std::string& origin) {
    using namespace setup_header;
    const auto fail = [&](const std::string& why) -> Error { return Error(origin + ": " + why); };

    if (image.size() < kMagic + 4) {
        throw fail("not a Linux bzImage (only " + std::to_string(image.size()) + " bytes)");
    }
    if (load_le<std::uint16_t>(image, kBootFlag) != kBootFlagValue) {
        throw fail("not a Linux bzImage (no 0xAA55 boot flag)");
    }
    if (load_le<std::uint32_t>(image, kMagic) != kMagicValue) {
        throw fail("not a Linux bzImage (no HdrS signature)");
    }
    BzImage bz;
    bz.protocol_version = load_le<std::uint16_t>(image, kVersion);
    if (bz.protocol_version < kMinVersion) {
        throw fail("boot protocol " + version_text(bz.protocol_version) +
                   " is too old (the 64-bit entry needs 2.12 or later)");
    }
    if (image.size() < kEnd) {
        throw fail("setup header is truncated (" + std::to_string(image.size()) + " bytes)");
    }
    bz.xloadflags = load_le<std::uint16_t>(image, kXLoadFlags);
    if ((bz.xloadflags & kXlfKernel64) == 0) {
        throw fail("kernel has no 64-bit entry point (XLF_KERNEL_64 is not set)");
    }

    // The header's length is given by the 2-byte jump at 0x200: it jumps to just past the header.
    const std::size_t header_end = kJump + 2 + std::to_integer<std::uint8_t>(image[kJump + 1]);
    if (header_end < kEnd) {
        throw fail("setup header ends at " + hex(header_end) + ", before its 2.12 fields");
    }
    // A newer protocol may have fields we do not know; the zero page has room up to kLimit.
    const std::size_t copy_end = header_end < kLimit ? header_end : kLimit;
    if (copy_end > image.size()) throw fail("setup header runs past the end of the file");
    bz.header.assign(image.begin() + kStart, image.begin() + static_cast<std::ptrdiff_t>(copy_end));

    bz.setup_sects = std::to_integer<std::uint8_t>(image[kSetupSects]);
    if (bz.setup_sects == 0) bz.setup_sects = 4;  // the protocol's historical default
    bz.kernel_offset = (std::size_t{bz.setup_sects} + 1) * 512;
    if (bz.kernel_offset >= image.size()) {
        throw fail("setup code (" + std::to_string(bz.setup_sects) + " sectors) runs past the end of the file");
    }
    bz.kernel_size = image.size() - bz.kernel_offset;

    bz.payload_offset = load_le<std::uint32_t>(image, kPayloadOffset);
    bz.payload_length = load_le<std::uint32_t>(image, kPayloadLength);
    if (std::uint64_t{bz.payload_offset} + bz.payload_length > bz.kernel_size) {
        throw fail("compressed payload (offset " + hex(bz.payload_offset) + ", " +
                   std::to_string(bz.payload_length) + " bytes) lies outside the kernel");
    }
    bz.pref_address = load_le<std::uint64_t>(image, kPrefAddress);
    bz.init_size = load_le<std::uint32_t>(image, kInitSize);
    if (bz.init_size < bz.kernel_size) {
        throw fail("init_size (" + std::to_string(bz.init_size) + ") is smaller than the kernel itself (" +
                   std::to_string(bz.kernel_size) + " bytes)");
    }
    bz.kernel_alignment = load_le<std::uint32_t>(image, kKernelAlignment);
    bz.relocatable = std::to_integer<std::uint8_t>(image[kRelocatableKernel]) != 0;
    if (bz.relocatable && (bz.kernel_alignment < 4096 || !std::has_single_bit(bz.kernel_alignment))) {
        throw fail("kernel_alignment " + hex(bz.kernel_alignment) + " is not a power of two of at least 4096");
    }
    bz.initrd_addr_max = load_le<std::uint32_t>(image, kInitrdAddrMax);
    bz.cmdline_size = load_le<std::uint32_t>(image, kCmdlineSize);
    // Rejected here rather than when loading, so the error names the image.
    try {
        (void)bz.load_address();
    } catch (const Error& e) {
        throw fail(e.what());
    }
    return bz;
}

std::uint64_t BzImage::load_address() const {
    const std::uint64_t floor = boot_layout::kHighMemoryStart.value;
    if (!relocatable) {
        if (pref_address < floor) {
            throw Error("non-relocatable kernel wants to be loaded at " + hex(pref_address) + ", below 1 MiB");
        }
        return pref_address;
    }
    if (pref_address >= floor && pref_address % kernel_alignment == 0) return pref_address;
    const std::uint64_t base = boot_layout::kDefaultKernelLoad.value;
    return (base + kernel_alignment - 1) / kernel_alignment * kernel_alignment;
}

}  // namespace colo::kvm
