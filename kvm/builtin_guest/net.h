/* The built-in guest's network service (net.c): a virtio-net driver for the NIC in the
 * parameters page, answering ARP, ICMP echo and UDP requests on port 7777. The unit tests build
 * it for the host too, against a device simulated in plain memory. */
#ifndef COLO_KVM_BUILTIN_GUEST_NET_H
#define COLO_KVM_BUILTIN_GUEST_NET_H

#include <stdint.h>

#include "kvm/builtin_guest/params.h"

#define COLO_BUILTIN_UDP_PORT 7777

#ifdef __cplusplus
extern "C" {
#endif

/* Brings the NIC up. use_interrupt: route its interrupt to COLO_BUILTIN_NIC_VECTOR (the LAPIC
 * is enabled: TIMER_SETUP ran). Returns 0, or a short reason the NIC cannot be used. */
const char* net_start(const struct colo_builtin_params* params, int use_interrupt);

/* Answers every frame the device has received so far. after_interrupt: acknowledge the
 * device's interrupt first (so its next one is a new edge). */
void net_poll(int after_interrupt);

#ifdef __cplusplus
}
#endif

#endif
