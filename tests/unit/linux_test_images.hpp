// Synthetic Linux kernel images for the kvm/linux/ unit tests: a bzImage with a real setup header
// layout and an ELF64 vmlinux with chosen program headers. Built byte by byte from the published
// layouts (boot.rst, the ELF gABI), independently of the parsers under test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

namespace linux_test {

inline void put(std::vector<std::byte>& b, std::size_t at, std::uint64_t v, unsigned width) {
    if (b.size() < at + width) b.resize(at + width);
    for (unsigned i = 0; i < width; ++i) b[at + i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}

inline std::uint64_t get(std::span<const std::byte> b, std::size_t at, unsigned width) {
    std::uint64_t v = 0;
    for (unsigned i = 0; i < width; ++i) v |= std::uint64_t{std::to_integer<std::uint8_t>(b[at + i])} << (8 * i);
    return v;
}

// A byte pattern that differs at every offset of a page and between pages, so a misplaced copy shows.
inline std::vector<std::byte> pattern(std::size_t n, std::uint8_t seed) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 31 + (i >> 12) * 7 + seed) & 0xff);
    return v;
}

struct BzImageSpec {
    std::uint8_t setup_sects = 2;
    std::uint16_t version = 0x020f;
    std::uint16_t xloadflags = 0x3;  // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
    std::uint64_t pref_address = 0x1000000;
    std::uint32_t init_size = 0x400000;
    std::uint32_t kernel_alignment = 0x200000;
    std::uint8_t relocatable = 1;
    std::uint32_t initrd_addr_max = 0x7fffffff;
    std::uint32_t cmdline_size = 2047;
    std::size_t kernel_bytes = 0x3000;
    std::uint32_t payload_offset = 0x400;  // payload runs to the end of the file
    std::uint8_t header_end_jump = 0x6a;   // header ends at 0x202 + this = 0x26c (protocol 2.15)
};

inline std::vector<std::byte> make_bzimage(const BzImageSpec& s = {}) {
    const std::size_t kernel_offset = (std::size_t{s.setup_sects == 0 ? 4u : s.setup_sects} + 1) * 512;
    std::vector<std::byte> b(kernel_offset, std::byte{0});
    b[0x1f1] = std::byte{s.setup_sects};
    put(b, 0x1fe, 0xaa55, 2);
    b[0x200] = std::byte{0xeb};
    b[0x201] = std::byte{s.header_end_jump};
    put(b, 0x202, 0x53726448, 4);  // "HdrS"
    put(b, 0x206, s.version, 2);
    put(b, 0x214, 0x100000, 4);    // code32_start
    put(b, 0x22c, s.initrd_addr_max, 4);
    put(b, 0x230, s.kernel_alignment, 4);
    b[0x234] = std::byte{s.relocatable};
    put(b, 0x236, s.xloadflags, 2);
    put(b, 0x238, s.cmdline_size, 4);
    put(b, 0x248, s.payload_offset, 4);
    put(b, 0x24c, s.kernel_bytes - s.payload_offset, 4);
    put(b, 0x258, s.pref_address, 8);
    put(b, 0x260, s.init_size, 4);
    const auto kernel = pattern(s.kernel_bytes, 0x5a);
    b.insert(b.end(), kernel.begin(), kernel.end());
    return b;
}

struct ElfSegmentSpec {
    std::uint32_t type = 1;  // PT_LOAD
    std::uint64_t vaddr = 0;
    std::uint64_t paddr = 0;
    std::uint64_t file_size = 0;
    std::uint64_t mem_size = 0;
};

struct ElfSpec {
    std::uint8_t elf_class = 2;  // ELFCLASS64
    std::uint16_t machine = 62;  // EM_X86_64
    std::uint16_t type = 2;      // ET_EXEC
    std::uint64_t entry = 0x1000000;
    std::vector<ElfSegmentSpec> segments = {
        {1, 0xffffffff81000000, 0x1000000, 0x2000, 0x2000},
        {4, 0xffffffff81002000, 0x1002000, 0x40, 0x40},  // PT_NOTE: not loaded
        {1, 0xffffffff81200000, 0x1200000, 0x1800, 0x5000},
    };
};

// Segment data follow the headers back to back, each filled with pattern(size, 0x10 + index).
inline std::vector<std::byte> make_elf(const ElfSpec& s = {}) {
    constexpr std::size_t kEhdr = 64, kPhdr = 56;
    std::vector<std::byte> b(kEhdr + kPhdr * s.segments.size(), std::byte{0});
    b[0] = std::byte{0x7f}, b[1] = std::byte{'E'}, b[2] = std::byte{'L'}, b[3] = std::byte{'F'};
    b[4] = std::byte{s.elf_class};
    b[5] = std::byte{1};  // little-endian
    b[6] = std::byte{1};  // EV_CURRENT
    put(b, 16, s.type, 2);
    put(b, 18, s.machine, 2);
    put(b, 20, 1, 4);
    put(b, 24, s.entry, 8);
    put(b, 32, kEhdr, 8);  // e_phoff
    put(b, 52, kEhdr, 2);
    put(b, 54, kPhdr, 2);
    put(b, 56, s.segments.size(), 2);
    for (std::size_t i = 0; i < s.segments.size(); ++i) {
        const auto& seg = s.segments[i];
        const std::size_t ph = kEhdr + i * kPhdr;
        const std::size_t offset = b.size();
        put(b, ph + 0, seg.type, 4);
        put(b, ph + 8, offset, 8);
        put(b, ph + 16, seg.vaddr, 8);
        put(b, ph + 24, seg.paddr, 8);
        put(b, ph + 32, seg.file_size, 8);
        put(b, ph + 40, seg.mem_size, 8);
        const auto data = pattern(seg.file_size, static_cast<std::uint8_t>(0x10 + i));
        b.insert(b.end(), data.begin(), data.end());
    }
    return b;
}

// A scratch folder removed with everything in it when the test ends.
class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "colo-linux-test-XXXXXX").string();
        path_ = ::mkdtemp(tmpl.data()) ? std::filesystem::path(tmpl) : std::filesystem::path();
    }
    ~TempDir() {
        std::error_code ec;
        if (!path_.empty()) std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::filesystem::path write(const std::string& name, std::span<const std::byte> bytes) const {
        const auto p = path_ / name;
        std::ofstream out(p, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        return p;
    }
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

}  // namespace linux_test
