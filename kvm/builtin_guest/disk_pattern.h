/* The blocks the built-in guest's disk workload writes (disk.c), as the guest, the C++ tests
 * (tests/kvm) and the Python checker (tests/disk_pattern.py, which mirrors this file: keep them
 * in step) compute them. Little-endian throughout.
 *
 * Block b of generation g >= 1 (the g-th write of b), 4096 bytes:
 *   0   u32 COLO_DISK_MAGIC
 *   4   u32 b
 *   8   u64 g
 *   16  u64 seed
 *   24  509 u64 words: word i = mix(base + i * COLO_DISK_WORD_STEP),
 *       base = mix(seed ^ mix(b * COLO_DISK_BLOCK_STEP + g))
 * Generation 0 is a block never written: all zero.
 *
 * The digest of a disk's state: FNV-1a 64 over, for b = 0 .. blocks-1, the 8 bytes of b then the
 * 8 bytes of generation[b], both little-endian. */
#ifndef COLO_KVM_BUILTIN_GUEST_DISK_PATTERN_H
#define COLO_KVM_BUILTIN_GUEST_DISK_PATTERN_H

#include <stdint.h>

#include "kvm/builtin_guest/mix.h"

#define COLO_DISK_BLOCK_BYTES 4096u
#define COLO_DISK_SECTORS_PER_BLOCK 8u
#define COLO_DISK_MAGIC 0x42445243u /* "CRDB" */
#define COLO_DISK_HEADER_BYTES 24u
#define COLO_DISK_WORDS ((COLO_DISK_BLOCK_BYTES - COLO_DISK_HEADER_BYTES) / 8u)
#define COLO_DISK_BLOCK_STEP 0xd6e8feb86659fd93ull
#define COLO_DISK_WORD_STEP 0x9e3779b97f4a7c15ull
#define COLO_DISK_FNV_OFFSET 0xcbf29ce484222325ull
#define COLO_DISK_FNV_PRIME 0x100000001b3ull

/* What colo_disk_check finds in a block. */
enum colo_disk_verdict {
    COLO_DISK_OK = 0,      /* generation g's content (or all zero: g = 0) */
    COLO_DISK_FOREIGN = 1, /* a header of this pattern, but another block's or seed's */
    COLO_DISK_TORN = 2,    /* this block's header, but the payload is not all of that generation */
    COLO_DISK_GARBLED = 3, /* neither zero nor a header of this pattern */
};

static inline uint64_t colo_disk_mix(uint64_t x) { return colo_mix64(x); }

static inline uint64_t colo_disk_base(uint64_t seed, uint64_t block, uint64_t generation) {
    return colo_disk_mix(seed ^ colo_disk_mix(block * COLO_DISK_BLOCK_STEP + generation));
}

static inline uint64_t colo_disk_load64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
    return v;
}

static inline void colo_disk_store64(uint8_t* p, uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = (uint8_t)(v >> (8 * i));
}

/* Fills `out` (COLO_DISK_BLOCK_BYTES) with generation `generation` (>= 1) of `block`. */
static inline void colo_disk_fill(uint8_t* out, uint64_t seed, uint64_t block, uint64_t generation) {
    colo_disk_store64(out, (uint64_t)COLO_DISK_MAGIC | (block & 0xffffffffull) << 32);
    colo_disk_store64(out + 8, generation);
    colo_disk_store64(out + 16, seed);
    const uint64_t base = colo_disk_base(seed, block, generation);
    for (uint32_t i = 0; i < COLO_DISK_WORDS; ++i) {
        colo_disk_store64(out + COLO_DISK_HEADER_BYTES + 8 * i, colo_disk_mix(base + i * COLO_DISK_WORD_STEP));
    }
}

/* What `bytes` (COLO_DISK_BLOCK_BYTES read from block `block`) holds; *generation is its
 * header's generation (0 for an all-zero block or a garbled one). */
static inline enum colo_disk_verdict colo_disk_check(const uint8_t* bytes, uint64_t seed, uint64_t block,
                                                     uint64_t* generation) {
    *generation = 0;
    const uint64_t first = colo_disk_load64(bytes);
    if ((uint32_t)first != COLO_DISK_MAGIC) {
        for (uint32_t i = 0; i < COLO_DISK_BLOCK_BYTES; ++i)
            if (bytes[i] != 0) return COLO_DISK_GARBLED;
        return COLO_DISK_OK;
    }
    const uint64_t g = colo_disk_load64(bytes + 8);
    *generation = g;
    if ((first >> 32) != (block & 0xffffffffull) || colo_disk_load64(bytes + 16) != seed || g == 0) return COLO_DISK_FOREIGN;
    const uint64_t base = colo_disk_base(seed, block, g);
    for (uint32_t i = 0; i < COLO_DISK_WORDS; ++i) {
        if (colo_disk_load64(bytes + COLO_DISK_HEADER_BYTES + 8 * i) != colo_disk_mix(base + i * COLO_DISK_WORD_STEP)) {
            return COLO_DISK_TORN;
        }
    }
    return COLO_DISK_OK;
}

/* One (block, generation) pair into an FNV-1a 64 digest that starts at COLO_DISK_FNV_OFFSET. */
static inline uint64_t colo_disk_digest_step(uint64_t digest, uint64_t block, uint64_t generation) {
    for (int i = 0; i < 8; ++i) digest = (digest ^ (uint8_t)(block >> (8 * i))) * COLO_DISK_FNV_PRIME;
    for (int i = 0; i < 8; ++i) digest = (digest ^ (uint8_t)(generation >> (8 * i))) * COLO_DISK_FNV_PRIME;
    return digest;
}

#endif
