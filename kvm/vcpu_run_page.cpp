#include "kvm/vcpu_run_page.hpp"

#include <sys/mman.h>

#include <utility>

#include "backends/error.hpp"

namespace colo::kvm {

VcpuRunPage::VcpuRunPage(int vcpu_fd, std::size_t size) : size_(size) {
    void* mapping = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
    if (mapping == MAP_FAILED) throw SystemError("mmap(kvm_run)", errno);
    run_ = static_cast<kvm_run*>(mapping);
}

VcpuRunPage::VcpuRunPage(VcpuRunPage&& other) noexcept
    : run_(std::exchange(other.run_, nullptr)), size_(std::exchange(other.size_, 0)) {}

VcpuRunPage& VcpuRunPage::operator=(VcpuRunPage&& other) noexcept {
    if (this != &other) {
        unmap();
        run_ = std::exchange(other.run_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

VcpuRunPage::~VcpuRunPage() { unmap(); }

void VcpuRunPage::unmap() noexcept {
    if (run_ != nullptr) ::munmap(run_, size_);
    run_ = nullptr;
}

}  // namespace colo::kvm
