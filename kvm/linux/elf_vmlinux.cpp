#include "kvm/linux/elf_vmlinux.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "backends/error.hpp"
#include "kvm/linux/little_endian.hpp"

namespace colo::kvm {

namespace {

// ELF64 layout (System V gABI + x86-64 psABI): the fields we read, by offset.
constexpr std::size_t kEhdrSize = 64;
constexpr std::size_t kEiClass = 4, kEiData = 5, kEiVersion = 6;
constexpr std::size_t kEType = 16, kEMachine = 18, kEEntry = 24, kEPhoff = 32, kEPhentsize = 54, kEPhnum = 56;
constexpr std::size_t kPhdrSize = 56;
constexpr std::size_t kPType = 0, kPOffset = 8, kPVaddr = 16, kPPaddr = 24, kPFilesz = 32, kPMemsz = 40;
constexpr std::uint8_t kElfClass64 = 2, kElfData2Lsb = 1, kEvCurrent = 1;
constexpr std::uint16_t kEtExec = 2, kEmX86_64 = 62;
constexpr std::uint32_t kPtLoad = 1;
// A vmlinux has about five program headers; anything far beyond is not a kernel.
constexpr std::uint16_t kMaxProgramHeaders = 64;

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
    return buf;
}

// a + b, or nullopt-like failure through the flag: overflow is how hostile headers escape checks.
bool add_overflows(std::uint64_t a, std::uint64_t b, std::uint64_t& sum) { return __builtin_add_overflow(a, b, &sum); }

}  // namespace

std::uint64_t ElfVmlinux::lowest_address() const { return segments.empty() ? 0 : segments.front().paddr; }

std::uint64_t ElfVmlinux::end_address() const {
    std::uint64_t end = 0;
    for (const auto& s : segments) end = std::max(end, s.paddr + s.mem_size);
    return end;
}

bool looks_like_elf(std::span<const std::byte> image) {
    return image.size() >= 4 && std::memcmp(image.data(), "\x7f" "ELF", 4) == 0;
}

ElfVmlinux parse_elf_vmlinux(std::span<const std::byte> image, const std::string& origin) {
    const auto fail = [&](const std::string& why) -> Error { return Error(origin + ": " + why); };
    const auto byte_at = [&](std::size_t i) { return std::to_integer<std::uint8_t>(image[i]); };

    if (!looks_like_elf(image)) throw fail("not an ELF file (no \\x7fELF magic)");
    if (image.size() < kEhdrSize) throw fail("ELF header is truncated (" + std::to_string(image.size()) + " bytes)");
    if (byte_at(kEiClass) != kElfClass64 || byte_at(kEiData) != kElfData2Lsb) {
        throw fail("not a 64-bit little-endian ELF file");
    }
    if (byte_at(kEiVersion) != kEvCurrent) throw fail("unknown ELF version " + std::to_string(byte_at(kEiVersion)));
    if (load_le<std::uint16_t>(image, kEMachine) != kEmX86_64) {
        throw fail("ELF machine " + std::to_string(load_le<std::uint16_t>(image, kEMachine)) + " is not x86-64");
    }
    if (load_le<std::uint16_t>(image, kEType) != kEtExec) throw fail("ELF file is not an executable (ET_EXEC)");

    const std::uint64_t phoff = load_le<std::uint64_t>(image, kEPhoff);
    const std::uint16_t phentsize = load_le<std::uint16_t>(image, kEPhentsize);
    const std::uint16_t phnum = load_le<std::uint16_t>(image, kEPhnum);
    if (phentsize != kPhdrSize) throw fail("program header size " + std::to_string(phentsize) + " is not 56");
    if (phnum == 0 || phnum > kMaxProgramHeaders) {
        throw fail(std::to_string(phnum) + " program headers (expected 1.." + std::to_string(kMaxProgramHeaders) + ")");
    }
    std::uint64_t table_end = 0;
    if (add_overflows(phoff, std::uint64_t{phnum} * kPhdrSize, table_end) || table_end > image.size()) {
        throw fail("program header table (offset " + hex(phoff) + ") lies outside the file");
    }

    ElfVmlinux elf;
    std::vector<std::uint64_t> vaddrs;  // parallel to elf.segments, for a virtual e_entry
    for (std::uint16_t i = 0; i < phnum; ++i) {
        const std::size_t ph = static_cast<std::size_t>(phoff) + std::size_t{i} * kPhdrSize;
        if (load_le<std::uint32_t>(image, ph + kPType) != kPtLoad) continue;
        ElfSegment seg;
        seg.file_offset = load_le<std::uint64_t>(image, ph + kPOffset);
        seg.file_size = load_le<std::uint64_t>(image, ph + kPFilesz);
        seg.paddr = load_le<std::uint64_t>(image, ph + kPPaddr);
        seg.mem_size = load_le<std::uint64_t>(image, ph + kPMemsz);
        const std::string which = "segment " + std::to_string(i);
        std::uint64_t end = 0;
        if (add_overflows(seg.file_offset, seg.file_size, end) || end > image.size()) {
            throw fail(which + " (file offset " + hex(seg.file_offset) + ", " + std::to_string(seg.file_size) +
                       " bytes) lies outside the file");
        }
        if (seg.file_size > seg.mem_size) throw fail(which + " has more file bytes than memory bytes");
        if (add_overflows(seg.paddr, seg.mem_size, end)) throw fail(which + " wraps around the address space");
        if (seg.mem_size == 0) continue;
        elf.segments.push_back(seg);
        vaddrs.push_back(load_le<std::uint64_t>(image, ph + kPVaddr));
    }
    if (elf.segments.empty()) throw fail("ELF file has nothing to load (no PT_LOAD segment)");

    // e_entry of a vmlinux is physical (phys_startup_64); translate a virtual one through the
    // segment that holds it, in case a kernel was linked the other way.
    const std::uint64_t e_entry = load_le<std::uint64_t>(image, kEEntry);
    bool found = false;
    for (std::size_t i = 0; i < elf.segments.size() && !found; ++i) {
        const auto& s = elf.segments[i];
        if (e_entry >= s.paddr && e_entry - s.paddr < s.mem_size) {
            elf.entry = e_entry;
            found = true;
        } else if (e_entry >= vaddrs[i] && e_entry - vaddrs[i] < s.mem_size) {
            elf.entry = s.paddr + (e_entry - vaddrs[i]);
            found = true;
        }
    }
    if (!found) throw fail("entry point " + hex(e_entry) + " lies in no loaded segment");

    std::sort(elf.segments.begin(), elf.segments.end(),
              [](const ElfSegment& a, const ElfSegment& b) { return a.paddr < b.paddr; });
    for (std::size_t i = 1; i < elf.segments.size(); ++i) {
        const auto& prev = elf.segments[i - 1];
        if (prev.paddr + prev.mem_size > elf.segments[i].paddr) {
            throw fail("segments at " + hex(prev.paddr) + " and " + hex(elf.segments[i].paddr) + " overlap");
        }
    }
    return elf;
}

void load_elf_segments(const ElfVmlinux& elf, std::span<const std::byte> image, std::span<std::byte> ram,
                       const std::string& origin) {
    for (const auto& s : elf.segments) {
        if (s.paddr > ram.size() || ram.size() - s.paddr < s.mem_size) {
            throw Error(origin + ": kernel segment at " + hex(s.paddr) + " (" + std::to_string(s.mem_size) +
                        " bytes) does not fit in the guest's " + std::to_string(ram.size() >> 20) +
                        " MiB of low memory");
        }
        if (s.file_offset > image.size() || image.size() - s.file_offset < s.file_size) {
            throw Error(origin + ": kernel segment at " + hex(s.paddr) + " lies outside the file");
        }
        auto dest = ram.subspan(static_cast<std::size_t>(s.paddr), static_cast<std::size_t>(s.mem_size));
        std::memcpy(dest.data(), image.data() + s.file_offset, static_cast<std::size_t>(s.file_size));
        std::memset(dest.data() + s.file_size, 0, static_cast<std::size_t>(s.mem_size - s.file_size));
    }
}

}  // namespace colo::kvm
