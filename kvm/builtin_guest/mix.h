/* The built-in guest's 64-bit mixer, murmur3's finaliser (good avalanche, no tables): its memory
 * workload (guest.c) and its disk blocks (disk_pattern.h, mirrored by tests/disk_pattern.py)
 * derive their content with it. */
#ifndef COLO_KVM_BUILTIN_GUEST_MIX_H
#define COLO_KVM_BUILTIN_GUEST_MIX_H

#include <stdint.h>

static inline uint64_t colo_mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

#endif
