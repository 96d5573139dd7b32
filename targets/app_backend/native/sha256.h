// SHA-256 (FIPS 180-4) of a file: the bundle reader's checksum, so an edited or truncated artifact is refused
// before a runtime parses it (the same check as mobilevit_deploy/bundle/reader.py).
#pragma once

#include <string>

namespace mvdseg {

// Lower-case hex digest of the file at `path`; throws std::runtime_error when it cannot be read.
std::string sha256_file(const std::string& path);

// Lower-case hex digest of `size` bytes (exported for the known-answer tests).
std::string sha256_hex(const void* data, size_t size);

}  // namespace mvdseg
