// Errors as exceptions (STYLE §7). A SystemError carries the errno and the name of the one
// operation that failed ("KVM_GET_DIRTY_LOG", "xc_shadow_control(CLEAN)"), so the message that
// reaches the operator names what the kernel refused and why. Higher layers wrap with context;
// only main() and the checkpoint transaction catch.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>

namespace colo {

// A failure the user caused or can fix: bad config, bad command line, bad image, bad stream.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A failed system or hypervisor call.
class SystemError : public Error {
public:
    SystemError(std::string operation, int error_number);
    SystemError(std::string operation, int error_number, const std::string& context);

    [[nodiscard]] int error_number() const noexcept { return errno_; }
    [[nodiscard]] const std::string& operation() const noexcept { return operation_; }

private:
    std::string operation_;
    int errno_;
};

// Throws SystemError(operation, errno) when result < 0; returns result otherwise.
template <typename T>
T check_syscall(T result, const char* operation) {
    if (result < 0) throw SystemError(operation, errno);
    return result;
}

}  // namespace colo
