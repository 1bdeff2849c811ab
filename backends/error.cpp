#include "backends/error.hpp"

#include <cstring>

namespace colo {

namespace {
std::string describe(const std::string& operation, int error_number, const std::string& context) {
    std::string message = operation + ": " + std::strerror(error_number) + " (errno " +
                          std::to_string(error_number) + ")";
    if (!context.empty()) message = context + ": " + message;
    return message;
}
}  // namespace

SystemError::SystemError(std::string operation, int error_number)
    : SystemError(std::move(operation), error_number, std::string{}) {}

SystemError::SystemError(std::string operation, int error_number, const std::string& context)
    : Error(describe(operation, error_number, context)),
      operation_(std::move(operation)),
      errno_(error_number) {}

}  // namespace colo
