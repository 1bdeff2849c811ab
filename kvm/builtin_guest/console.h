/* The built-in guest's console (guest.c): a line is built up and written whole when it ends. */
#ifndef COLO_KVM_BUILTIN_GUEST_CONSOLE_H
#define COLO_KVM_BUILTIN_GUEST_CONSOLE_H

#include <stdint.h>

void console_char(char c);
void console_string(const char* s);
void console_decimal(uint64_t value);
void console_hex(uint64_t value); /* 16 digits */

#endif
