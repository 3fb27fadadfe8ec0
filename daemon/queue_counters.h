// The counters of one queue's runner, for the summary line, /metrics and
// tests; all monotonic. Thread: loop.
#pragma once

#include <cstdint>

namespace dropq {

struct QueueCounters {
  uint64_t enqueued = 0, done = 0, failed = 0, interrupted = 0;
  uint64_t skipped = 0;  // vanished or replaced before their run
  uint64_t retries = 0;  // failed runs scheduled to run again
  uint64_t dispose_errors = 0, lost_outcomes = 0;
  uint64_t duplicate_claims = 0;  // a claim handed back a job held here (Redis lost a write)
  uint64_t bad_replies = 0;       // a reply not of its script's shape
  uint64_t acked = 0;             // jobs acknowledged here (bench/measure)
  uint64_t round_trips = 0;       // their sequential Redis round trips (HeldJob)
};

}  // namespace dropq
