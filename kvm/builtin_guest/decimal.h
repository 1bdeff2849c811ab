/* Decimal formatting for the built-in guest (freestanding: no printf). */
#ifndef COLO_KVM_BUILTIN_GUEST_DECIMAL_H
#define COLO_KVM_BUILTIN_GUEST_DECIMAL_H

#include <stdint.h>

/* Writes `value` in decimal at `out` (at most 20 digits, no terminator); returns how many. */
static inline uint32_t format_decimal(char* out, uint64_t value) {
    char reversed[20];
    uint32_t n = 0;
    do {
        reversed[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (uint32_t i = 0; i < n; ++i) out[i] = reversed[n - 1 - i];
    return n;
}

#endif
