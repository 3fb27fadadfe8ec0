// Job ids: 128 bits, ULID-shaped (48-bit unix milliseconds, then 80 random
// bits from getrandom), written as 26 Crockford base32 characters. Unique
// across hosts and Redis instances, and sorted by creation time, so that
// `ZRANGE` and `dropqctl` listings read in order. Thread: any.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dropq {

std::string NewJobId();

// Encodes the given time and 10 random bytes (exposed for tests).
std::string EncodeJobId(uint64_t unix_ms, const uint8_t random[10]);

// True if `s` has the form NewJobId() produces (26 Crockford base32 chars).
bool IsJobId(std::string_view s);

// The creation time (unix ms) a job id carries in its first 10 characters,
// or nullopt if `id` is not of the form IsJobId() accepts. A job record keeps
// no enqueue time of its own: this is it.
std::optional<int64_t> JobIdTimeMs(std::string_view id);

}  // namespace dropq
