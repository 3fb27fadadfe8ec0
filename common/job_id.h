// Job ids: 128 bits, ULID-shaped (48-bit unix milliseconds, then 80 random
// bits from getrandom), written as 26 Crockford base32 characters. Unique
// across hosts and Redis instances, and sorted by creation time, so that
// `ZRANGE` and `dropqctl` listings read in order. Thread: any.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dropq {

std::string NewJobId();

// Encodes the given time and 10 random bytes (exposed for tests).
std::string EncodeJobId(uint64_t unix_ms, const uint8_t random[10]);

// True if `s` has the form NewJobId() produces (26 Crockford base32 chars).
bool IsJobId(std::string_view s);

}  // namespace dropq
