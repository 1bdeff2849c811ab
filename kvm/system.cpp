#include "kvm/system.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <cstring>
#include <string>

#include "backends/error.hpp"
#include "kvm/kvm_abi.hpp"
#include "kvm/vm.hpp"

namespace colo::kvm {

namespace {
constexpr int kApiVersion = 12;
}

System::System() {
    const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) throw SystemError("open(/dev/kvm)", errno);
    fd_ = UniqueFd(fd);
    if (const int version = get_api_version(); version != kApiVersion) {
        throw Error("/dev/kvm speaks API version " + std::to_string(version) + ", expected " +
                    std::to_string(kApiVersion));
    }
}

int System::get_api_version() const {
    return check_syscall(::ioctl(fd_.get(), KVM_GET_API_VERSION, 0), "KVM_GET_API_VERSION");
}

int System::check_extension(unsigned capability) const {
    return check_syscall(::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability), "KVM_CHECK_EXTENSION");
}

void System::require_extension(unsigned capability, const char* name) const {
    if (check_extension(capability) <= 0) throw Error(std::string("KVM lacks ") + name);
}

CpuidEntries System::get_supported_cpuid() const {
    // The kernel says E2BIG until the buffer is big enough; grow until it fits.
    for (std::size_t n = 64;; n *= 2) {
        std::vector<std::byte> buffer(abi::kCpuid2Header + n * sizeof(kvm_cpuid_entry2));
        auto nent = static_cast<std::uint32_t>(n);
        std::memcpy(buffer.data(), &nent, sizeof nent);
        if (::ioctl(fd_.get(), abi::kGetSupportedCpuid, buffer.data()) == 0) {
            std::memcpy(&nent, buffer.data(), sizeof nent);
            CpuidEntries entries(nent);
            std::memcpy(entries.data(), buffer.data() + abi::kCpuid2Header, nent * sizeof(kvm_cpuid_entry2));
            return entries;
        }
        if (errno != E2BIG || n > 4096) throw SystemError("KVM_GET_SUPPORTED_CPUID", errno);
    }
}

std::vector<std::uint32_t> System::get_msr_index_list() const {
    std::uint32_t count = 0;
    // With nmsrs = 0 the kernel fails with E2BIG and reports how many there are.
    if (::ioctl(fd_.get(), abi::kGetMsrIndexList, &count) < 0 && errno != E2BIG) {
        throw SystemError("KVM_GET_MSR_INDEX_LIST", errno);
    }
    std::vector<std::uint32_t> buffer(1 + count);
    buffer[0] = count;
    check_syscall(::ioctl(fd_.get(), abi::kGetMsrIndexList, buffer.data()), "KVM_GET_MSR_INDEX_LIST");
    return std::vector<std::uint32_t>(buffer.begin() + 1, buffer.begin() + 1 + buffer[0]);
}

std::size_t System::get_vcpu_mmap_size() const {
    return static_cast<std::size_t>(
        check_syscall(::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE"));
}

Vm System::create_vm() const {
    // Retried on EINTR: KVM_CREATE_VM can be interrupted while the kernel sets up the MMU.
    int fd;
    do {
        fd = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
    } while (fd < 0 && errno == EINTR);
    check_syscall(fd, "KVM_CREATE_VM");
    return Vm(UniqueFd(fd), get_vcpu_mmap_size());
}

}  // namespace colo::kvm
