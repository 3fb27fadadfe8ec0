// Wall-clock and monotonic time in the units dropq stores and logs.
#pragma once

#include <chrono>
#include <cstdint>

namespace dropq {

// Unix time in milliseconds (what job records and sorted-set scores hold).
inline int64_t NowUnixMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Unix time in nanoseconds (CLOCK_REALTIME; what the manifest records).
inline int64_t NowUnixNs() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
}

// Monotonic milliseconds, for deadlines and durations.
inline int64_t MonoMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace dropq
