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
  uint64_t duplicate_claims = 0;    // a claim handed back a job held here (Redis lost a write)
  uint64_t bad_replies = 0;         // a reply not of its script's shape
  uint64_t unconfirmed_claims = 0;  // claims given back: no replica had them, a failover may be on
  uint64_t acked = 0;               // jobs acknowledged here (bench/measure)
  uint64_t round_trips = 0;         // their sequential Redis round trips (HeldJob)
  uint64_t throttled = 0;           // a server's Retry-After held the queue back (THROTTLE sent)
  // Claims that started nothing because the queue was at a limit.
  uint64_t held_rate = 0, held_active = 0, held_throttled = 0;
};

}  // namespace dropq
