// The ioctls whose argument ends in a flexible array, as the kernel (built from C) numbers them.
//
// Why this file exists: <linux/kvm.h> and <asm/kvm.h> declare those arrays with
// __DECLARE_FLEX_ARRAY, which wraps them in a struct holding an empty struct. In C that member
// has size 0; in C++ it has size 1, so sizeof(kvm_cpuid2), sizeof(kvm_msrs), sizeof(kvm_xsave)
// and the ioctl numbers built from them (the size is part of the number) differ from the
// kernel's, and the ioctls fail with EINVAL or ENOTTY. The same wrapper also moves the array's
// offset. So for these ioctls we lay the buffer out by hand and use the C numbers below.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstddef>

namespace colo::kvm::abi {

// Header sizes before the array (C layout): kvm_cpuid2 {u32 nent, u32 padding}, kvm_msrs
// {u32 nmsrs, u32 pad}, kvm_msr_list {u32 nmsrs}; kvm_xsave is a fixed 4 KiB region.
inline constexpr std::size_t kCpuid2Header = 8;
inline constexpr std::size_t kMsrsHeader = 8;
inline constexpr std::size_t kMsrListHeader = 4;
inline constexpr std::size_t kXsaveLegacyBytes = 4096;

inline constexpr unsigned long kGetMsrIndexList = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x02, kMsrListHeader);
inline constexpr unsigned long kGetSupportedCpuid = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, kCpuid2Header);
inline constexpr unsigned long kGetMsrs = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x88, kMsrsHeader);
inline constexpr unsigned long kSetMsrs = _IOC(_IOC_WRITE, KVMIO, 0x89, kMsrsHeader);
inline constexpr unsigned long kSetCpuid2 = _IOC(_IOC_WRITE, KVMIO, 0x90, kCpuid2Header);
inline constexpr unsigned long kGetXsave = _IOC(_IOC_READ, KVMIO, 0xa4, kXsaveLegacyBytes);
inline constexpr unsigned long kSetXsave = _IOC(_IOC_WRITE, KVMIO, 0xa5, kXsaveLegacyBytes);
inline constexpr unsigned long kGetXsave2 = _IOC(_IOC_READ, KVMIO, 0xcf, kXsaveLegacyBytes);

static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);

}  // namespace colo::kvm::abi
