// The one exception type inside libmvdseg: a status from mvdseg.h and a one-line message saying what was wrong
// and what to do. The C API boundary (mvdseg.cpp) turns it, and anything else thrown, into a return code.
#pragma once

#include <stdexcept>
#include <string>

#include "mvdseg.h"

namespace mvdseg {

struct SegError : std::runtime_error {
  mvd_status status;
  SegError(mvd_status code, const std::string& message) : std::runtime_error(message), status(code) {}
};

}  // namespace mvdseg
