// The kvm_run structure the kernel shares with a vCPU's user-space thread (mmapped from the vCPU
// fd). Owned here so the mapping is undone exactly once, by the destructor (STYLE §1).
#pragma once

#include <linux/kvm.h>

#include <cstddef>

namespace colo::kvm {

class VcpuRunPage {
public:
    VcpuRunPage(int vcpu_fd, std::size_t size);
    VcpuRunPage(VcpuRunPage&& other) noexcept;
    VcpuRunPage& operator=(VcpuRunPage&& other) noexcept;
    VcpuRunPage(const VcpuRunPage&) = delete;
    VcpuRunPage& operator=(const VcpuRunPage&) = delete;
    ~VcpuRunPage();

    [[nodiscard]] kvm_run* get() const noexcept { return run_; }
    kvm_run* operator->() const noexcept { return run_; }
    // The bytes of a KVM_EXIT_IO's data, which live at run + io.data_offset.
    [[nodiscard]] std::byte* io_data() const noexcept {
        return reinterpret_cast<std::byte*>(run_) + run_->io.data_offset;
    }

private:
    void unmap() noexcept;

    kvm_run* run_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace colo::kvm
