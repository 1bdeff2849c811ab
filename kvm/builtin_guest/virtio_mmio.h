/* What the built-in guest's virtio drivers share (net.c: the NIC, disk.c: the disk): the
 * virtio-mmio version 2 registers (virtio 1.x spec, 4.2.2), the split virtqueue's structures
 * (2.7), and device initialisation up to FEATURES_OK as virtio 1.x 3.1.1 orders it. Static
 * inline, so the host build of net.c (tests/unit/builtin_guest_net_test.cpp) needs nothing more. */
#ifndef COLO_KVM_BUILTIN_GUEST_VIRTIO_MMIO_H
#define COLO_KVM_BUILTIN_GUEST_VIRTIO_MMIO_H

#include <stdint.h>

#define MMIO_MAGIC 0x000
#define MMIO_VERSION 0x004
#define MMIO_DEVICE_ID 0x008
#define MMIO_DEVICE_FEATURES 0x010
#define MMIO_DEVICE_FEATURES_SEL 0x014
#define MMIO_DRIVER_FEATURES 0x020
#define MMIO_DRIVER_FEATURES_SEL 0x024
#define MMIO_QUEUE_SEL 0x030
#define MMIO_QUEUE_NUM_MAX 0x034
#define MMIO_QUEUE_NUM 0x038
#define MMIO_QUEUE_READY 0x044
#define MMIO_QUEUE_NOTIFY 0x050
#define MMIO_INTERRUPT_ACK 0x064
#define MMIO_STATUS 0x070
#define MMIO_QUEUE_DESC 0x080
#define MMIO_QUEUE_DRIVER 0x090
#define MMIO_QUEUE_DEVICE 0x0a0
#define MMIO_CONFIG 0x100

#define VIRTIO_MAGIC 0x74726976u /* "virt" */
#define STATUS_ACKNOWLEDGE 1u
#define STATUS_DRIVER 2u
#define STATUS_DRIVER_OK 4u
#define STATUS_FEATURES_OK 8u
#define STATUS_NEEDS_RESET 64u
#define STATUS_FAILED 128u
#define FEATURE_VERSION_1 (1u << 0) /* word 1: bit 32 */

#define DESC_F_NEXT 1u
#define DESC_F_WRITE 2u
#define AVAIL_F_NO_INTERRUPT 1u

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[];
};

static inline uint32_t vmmio_read(volatile uint8_t* regs, uint32_t offset) { return *(volatile uint32_t*)(regs + offset); }
static inline void vmmio_write(volatile uint8_t* regs, uint32_t offset, uint32_t value) {
    *(volatile uint32_t*)(regs + offset) = value;
}
static inline void vmmio_write64(volatile uint8_t* regs, uint32_t offset, uint64_t value) {
    vmmio_write(regs, offset, (uint32_t)value);
    vmmio_write(regs, offset + 4, (uint32_t)(value >> 32));
}

/* Resets the device at `regs`, checks it is a virtio-mmio v2 device of `device_id`, and
 * negotiates VIRTIO_F_VERSION_1 plus what it offers of `want_low` (feature bits 0..31), which it
 * returns in *offered_low (all of word 0). Leaves Status at ACKNOWLEDGE|DRIVER|FEATURES_OK.
 * Returns 0, or a short reason the device cannot be used (Status then FAILED). */
static inline const char* vmmio_negotiate(volatile uint8_t* regs, uint32_t device_id, const char* wrong_device,
                                          uint32_t want_low, uint32_t* offered_low) {
    if (vmmio_read(regs, MMIO_MAGIC) != VIRTIO_MAGIC || vmmio_read(regs, MMIO_VERSION) != 2) return "no virtio-mmio v2 device";
    if (vmmio_read(regs, MMIO_DEVICE_ID) != device_id) return wrong_device;
    vmmio_write(regs, MMIO_STATUS, 0);
    vmmio_write(regs, MMIO_STATUS, STATUS_ACKNOWLEDGE);
    vmmio_write(regs, MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    vmmio_write(regs, MMIO_DEVICE_FEATURES_SEL, 0);
    *offered_low = vmmio_read(regs, MMIO_DEVICE_FEATURES);
    vmmio_write(regs, MMIO_DEVICE_FEATURES_SEL, 1);
    const uint32_t offered_high = vmmio_read(regs, MMIO_DEVICE_FEATURES);
    if (!(offered_high & FEATURE_VERSION_1)) {
        vmmio_write(regs, MMIO_STATUS, STATUS_FAILED);
        return "device lacks VIRTIO_F_VERSION_1";
    }
    vmmio_write(regs, MMIO_DRIVER_FEATURES_SEL, 0);
    vmmio_write(regs, MMIO_DRIVER_FEATURES, *offered_low & want_low);
    vmmio_write(regs, MMIO_DRIVER_FEATURES_SEL, 1);
    vmmio_write(regs, MMIO_DRIVER_FEATURES, FEATURE_VERSION_1);
    vmmio_write(regs, MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    if (!(vmmio_read(regs, MMIO_STATUS) & STATUS_FEATURES_OK)) {
        vmmio_write(regs, MMIO_STATUS, STATUS_FAILED);
        return "device refused the features";
    }
    return 0;
}

#endif
