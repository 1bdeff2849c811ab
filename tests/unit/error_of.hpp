// Test helper: the one-line message of the colo::Error a callable throws, or "(no error)". Any
// other exception escapes and fails the test.
#pragma once

#include <string>

#include "backends/error.hpp"

namespace colo::test {

inline std::string error_of(auto&& fn) {
    try {
        fn();
    } catch (const colo::Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace colo::test
