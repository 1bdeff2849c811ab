/* The built-in guest's disk workload (disk.c): a polled virtio-blk driver for the disk in the
 * parameters page, and a workload that writes numbered, checksummed blocks and checks them. */
#ifndef COLO_KVM_BUILTIN_GUEST_DISK_H
#define COLO_KVM_BUILTIN_GUEST_DISK_H

#include "kvm/builtin_guest/params.h"

/* Brings the disk up. Returns 0, or a short reason it cannot be used. */
const char* disk_start(const struct colo_builtin_params* params);

/* One interval's work: the writes due (each followed by a read-back of another block), a slice
 * of the verification pass, and the console lines that come with them. */
void disk_interval(void);

#endif
