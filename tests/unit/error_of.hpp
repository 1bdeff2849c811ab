// Test helper: the one-line message of the colo::Error a callable throws, or "(no error)". Any
// other exception escapes and fails the test.
#pragma once

#include <doctest/doctest.h>

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

// The colo::SystemError a callable throws (errno and operation name intact); fails the test if
// it throws none.
inline colo::SystemError system_error_of(auto&& fn) {
    try {
        fn();
    } catch (const colo::SystemError& e) {
        return e;
    }
    FAIL("no SystemError thrown");
    return colo::SystemError("none", 0);
}

}  // namespace colo::test
