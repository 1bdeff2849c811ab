#include "kvm/linux/linux_loader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "backends/error.hpp"
#include "kvm/layout.hpp"
#include "kvm/linux/acpi_tables.hpp"
#include "kvm/linux/boot_layout.hpp"
#include "kvm/linux/boot_params.hpp"
#include "kvm/linux/bzimage.hpp"
#include "kvm/linux/elf_vmlinux.hpp"
#include "kvm/linux/mp_table.hpp"

namespace colo::kvm {

namespace {

// What an ELF vmlinux cannot tell us (it has no setup header): the x86-64 defaults.
constexpr std::uint64_t kVmlinuxInitrdAddrMax = 0x7fffffff;
constexpr std::uint64_t kVmlinuxCmdlineSize = 2047;  // COMMAND_LINE_SIZE - 1

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string mib(std::uint64_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB"; }

// Closes the descriptor it owns (STYLE §1), so an error half way through leaks nothing.
class ReadOnlyFile {
public:
    ReadOnlyFile(const std::string& path, const std::string& what)
        : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
        if (fd_ < 0) throw SystemError("open", errno, what + " " + path);
    }
    ~ReadOnlyFile() { ::close(fd_); }
    ReadOnlyFile(const ReadOnlyFile&) = delete;
    ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;
    [[nodiscard]] int fd() const { return fd_; }

private:
    int fd_;
};

// Reads a whole regular file, refusing one larger than `limit` before reading it.
std::vector<std::byte> read_file(const std::string& path, const std::string& what, std::uint64_t limit,
                                 std::uint64_t ram_bytes) {
    ReadOnlyFile file(path, what);
    struct stat st {};
    if (::fstat(file.fd(), &st) != 0) throw SystemError("fstat", errno, what + " " + path);
    if (!S_ISREG(st.st_mode)) throw Error(what + " " + path + ": not a regular file");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > limit) {
        throw Error(what + " " + path + " (" + mib(size) + ") is too big for the guest's " + mib(ram_bytes) +
                    " of memory");
    }
    std::vector<std::byte> bytes(static_cast<std::size_t>(size));
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::read(file.fd(), bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw SystemError("read", errno, what + " " + path);
        if (n == 0) throw Error(what + " " + path + ": file shrank while being read");
        done += static_cast<std::size_t>(n);
    }
    return bytes;
}

void copy_to_guest(std::span<std::byte> ram, std::uint64_t gpa, std::span<const std::byte> bytes,
                   const std::string& what) {
    if (gpa > ram.size() || ram.size() - gpa < bytes.size()) {
        throw Error(what + " at " + hex(gpa) + " (" + std::to_string(bytes.size()) +
                    " bytes) does not fit in low memory (" + mib(ram.size()) + ")");
    }
    std::memcpy(ram.data() + gpa, bytes.data(), bytes.size());
}

struct LoadedKernel {
    std::uint64_t entry = 0;
    std::uint64_t end = 0;  // first byte the kernel does not claim while it boots
    std::vector<std::byte> setup_header;
    std::uint64_t initrd_addr_max = 0;
    std::uint64_t cmdline_size = 0;
};

LoadedKernel load_kernel(const std::string& path, std::span<std::byte> low_ram, std::uint64_t ram_bytes) {
    const auto image = read_file(path, "kernel", low_ram.size(), ram_bytes);
    LoadedKernel k;
    if (looks_like_elf(image)) {
        const ElfVmlinux elf = parse_elf_vmlinux(image, path);
        if (elf.lowest_address() < boot_layout::kHighMemoryStart.value) {
            throw Error(path + ": kernel segment at " + hex(elf.lowest_address()) +
                        " overlaps the boot data below 1 MiB");
        }
        if (elf.end_address() > low_ram.size()) {
            throw Error(path + ": kernel needs memory up to " + hex(elf.end_address()) + ", more than the guest's " +
                        mib(ram_bytes) + " of low memory");
        }
        load_elf_segments(elf, image, low_ram, path);
        k.entry = elf.entry;
        k.end = elf.end_address();
        k.initrd_addr_max = kVmlinuxInitrdAddrMax;
        k.cmdline_size = kVmlinuxCmdlineSize;
    } else if (looks_like_bzimage(image)) {
        const BzImage bz = parse_bzimage(image, path);
        const std::uint64_t load = bz.load_address();
        if (load + bz.init_size > low_ram.size()) {
            throw Error(path + ": kernel needs memory up to " + hex(load + bz.init_size) + " to boot, more than the guest's " +
                        mib(ram_bytes) + " of low memory");
        }
        copy_to_guest(low_ram, load, std::span(image).subspan(bz.kernel_offset, bz.kernel_size), "kernel");
        k.entry = bz.entry64();
        k.end = load + bz.init_size;
        k.setup_header = bz.header;
        k.initrd_addr_max = bz.initrd_addr_max;
        k.cmdline_size = bz.cmdline_size;
    } else {
        throw Error(path + ": not a Linux kernel (neither an ELF vmlinux nor a bzImage)");
    }
    return k;
}

}  // namespace

std::string linux_command_line(const GuestConfig& config) {
    std::string line = kDefaultLinuxCommandLine;
    if (!config.extra.empty()) line += " " + config.extra;
    return line;
}

EntryState load_linux(const GuestConfig& config, std::span<std::byte> low_ram, std::uint64_t ram_bytes) {
    using namespace boot_layout;
    if (low_ram.size() != low_ram_bytes(ram_bytes)) {
        throw Error("load_linux: low RAM mapping is " + std::to_string(low_ram.size()) + " bytes, expected " +
                    std::to_string(low_ram_bytes(ram_bytes)) + " for " + mib(ram_bytes));
    }
    if (config.kernel.empty()) throw Error("guest " + config.name + ": no kernel given");
    const std::vector<E820Entry> e820 = guest_e820_map(ram_bytes);

    const LoadedKernel kernel = load_kernel(config.kernel.string(), low_ram, ram_bytes);

    const std::string cmdline = linux_command_line(config);
    if (cmdline.size() > kernel.cmdline_size || cmdline.size() + 1 > kCommandLineCapacity) {
        throw Error("kernel command line is " + std::to_string(cmdline.size()) + " bytes; " + config.kernel.string() +
                    " accepts at most " + std::to_string(std::min(kernel.cmdline_size, kCommandLineCapacity - 1)));
    }
    std::vector<std::byte> cmdline_bytes(cmdline.size() + 1, std::byte{0});
    std::memcpy(cmdline_bytes.data(), cmdline.data(), cmdline.size());
    copy_to_guest(low_ram, kCommandLine.value, cmdline_bytes, "command line");

    BootParamsInput params;
    params.setup_header = kernel.setup_header;
    params.cmd_line_gpa = kCommandLine.value;
    params.e820 = e820;
    if (!config.ramdisk.empty()) {
        const std::string path = config.ramdisk.string();
        const auto initrd = read_file(path, "initramfs", low_ram.size(), ram_bytes);
        // As high as allowed, so the kernel's own early allocations below it have room.
        const std::uint64_t top = std::min<std::uint64_t>(low_ram.size(), kernel.initrd_addr_max + 1);
        const std::uint64_t floor = (kernel.end + kPageSize - 1) / kPageSize * kPageSize;
        if (initrd.size() > top || (top - initrd.size()) / kPageSize * kPageSize < floor) {
            throw Error("initramfs " + path + " (" + mib(initrd.size()) + ") is too big: only " +
                        std::to_string(top > floor ? (top - floor) >> 20 : 0) + " MiB are free between the kernel and " + hex(top));
        }
        const std::uint64_t at = (top - initrd.size()) / kPageSize * kPageSize;
        copy_to_guest(low_ram, at, initrd, "initramfs");
        params.ramdisk_gpa = at;
        params.ramdisk_size = initrd.size();
    }
    // NIC N of the config is virtio-mmio slot N, disk N slot kMaxVifs + N, as KvmBackend maps
    // them (kvm/layout.hpp).
    std::vector<AcpiMmioDevice> mmio_devices;
    const auto add_slot = [&](std::size_t slot) {
        mmio_devices.push_back({static_cast<std::uint32_t>(layout::kVirtioMmioBase.value + slot * layout::kVirtioMmioSlotBytes),
                                static_cast<std::uint32_t>(layout::kVirtioMmioSlotBytes),
                                layout::kVirtioFirstGsi + static_cast<std::uint32_t>(slot)});
    };
    for (std::size_t i = 0; i < config.vifs.size(); ++i) add_slot(i);
    for (std::size_t i = 0; i < config.disks.size(); ++i) add_slot(kMaxVifs + i);
    const std::vector<std::byte> acpi = build_acpi_tables(config.vcpus, mmio_devices, kAcpiTables.value);
    if (acpi.size() > kAcpiTablesCapacity) {
        throw Error("ACPI tables for " + std::to_string(config.vcpus) + " vCPUs (" + std::to_string(acpi.size()) +
                    " bytes) exceed their " + std::to_string(kAcpiTablesCapacity) + "-byte slot");
    }
    copy_to_guest(low_ram, kAcpiTables.value, acpi, "ACPI tables");
    params.acpi_rsdp = kAcpiTables.value;

    const ZeroPage zero_page = build_boot_params(params);
    copy_to_guest(low_ram, kZeroPage.value, zero_page, "zero page");

    const std::vector<std::byte> mp = build_mp_table(config.vcpus, kMpTable.value);
    if (mp.size() > kMpTableCapacity) {
        throw Error("MP table for " + std::to_string(config.vcpus) + " vCPUs (" + std::to_string(mp.size()) +
                    " bytes) exceeds its " + std::to_string(kMpTableCapacity) + "-byte slot");
    }
    copy_to_guest(low_ram, kMpTable.value, mp, "MP table");

    EntryState entry;
    entry.rip = kernel.entry;
    entry.rsp = kBootStackTop.value;
    entry.rsi = kZeroPage.value;
    entry.rflags = 0x2;  // interrupts off, as the boot protocol requires
    entry.user_mode = false;
    entry.identity_map_bytes = std::max<std::uint64_t>(entry.identity_map_bytes, low_ram.size());
    return entry;
}

}  // namespace colo::kvm
