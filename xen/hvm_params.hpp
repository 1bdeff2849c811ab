// The HVM params record: the HVM params Xen's own migration stream carries for an HVM or PVH
// guest (write_hvm_params in libxenguest's xg_sr_save_x86_hvm.c, the same list), as the Xen
// backend's second StateRecord next to the HVM context (hvm_context.hpp). Like Xen's, it holds
// only the params that are not 0.
//
// Body (StateRecord version kHvmParamsVersion), little-endian:
//   u32 count, u32 reserved (0), then count x {u64 index, u64 value}
// Each index is one of kCarriedHvmParams, at most once. Anything else is refused with one line
// before Xen sees it.
//
// A receiver treats the params two ways (HvmParamUse):
//   same_page  a page a dom0 service already uses for the receiving domain, which libxl built
//              from the same configuration: xenstored's store ring, xenconsoled's console ring,
//              the device model's ioreq pages, the paging/monitor/sharing rings. Moving one under
//              its service would cut the guest off from it, so the value must already be the
//              receiver's own, and a difference is an error naming the param.
//   set        the rest: set on the receiving domain (xc_hvm_param_set) where it differs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace colo::xen {

enum class HvmParamUse { same_page, set };

struct CarriedHvmParam {
    std::uint32_t index;  // HVM_PARAM_* (xen/hvm/params.h; this header must not need it)
    const char* name;     // without the HVM_PARAM_ prefix, for messages
    HvmParamUse use;
};

// The params the record carries, in Xen's order.
inline constexpr CarriedHvmParam kCarriedHvmParams[] = {
    {1, "STORE_PFN", HvmParamUse::same_page},
    {5, "IOREQ_PFN", HvmParamUse::same_page},
    {6, "BUFIOREQ_PFN", HvmParamUse::same_page},
    {27, "PAGING_RING_PFN", HvmParamUse::same_page},
    {28, "MONITOR_RING_PFN", HvmParamUse::same_page},
    {29, "SHARING_RING_PFN", HvmParamUse::same_page},
    {37, "VM86_TSS_SIZED", HvmParamUse::set},
    {17, "CONSOLE_PFN", HvmParamUse::same_page},
    {19, "ACPI_IOPORTS_LOCATION", HvmParamUse::set},
    {9, "VIRIDIAN", HvmParamUse::set},
    {12, "IDENT_PT", HvmParamUse::set},
    {34, "VM_GENERATION_ID_ADDR", HvmParamUse::set},
    {32, "IOREQ_SERVER_PFN", HvmParamUse::same_page},
    {33, "NR_IOREQ_SERVER_PAGES", HvmParamUse::same_page},
    {36, "X87_FIP_WIDTH", HvmParamUse::set},
    {38, "MCA_CAP", HvmParamUse::set},
};

struct HvmParam {
    std::uint32_t index = 0;
    std::uint64_t value = 0;
    friend bool operator==(const HvmParam&, const HvmParam&) = default;
};

// The carried param with this index, or nullptr.
[[nodiscard]] const CarriedHvmParam* carried_hvm_param(std::uint32_t index);

// The record's body. Throws colo::Error for an index that is not carried or given twice.
[[nodiscard]] std::vector<std::byte> encode_hvm_params(std::span<const HvmParam> params);
// Throws colo::Error ("HVM params: ...") for a body that is too short or long for its count,
// a non-zero reserved field, an index that is not carried or appears twice.
[[nodiscard]] std::vector<HvmParam> decode_hvm_params(std::span<const std::byte> body);

}  // namespace colo::xen
