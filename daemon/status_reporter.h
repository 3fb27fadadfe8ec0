// StatusReporter fetches the counts of the queues this instance runs from
// Redis, once per tick and in one round (LLEN of :pending, ZCARD of :active
// and :scheduled per queue, pipelined on the one connection), and hands the
// whole round to its consumer, which feeds systemd's STATUS=, the summary
// line and /metrics from it: one set of reads per tick, whatever shows them.
//
// Thread: loop. Replies arriving after its destruction do nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon/loop.h"
#include "daemon/redis_conn.h"

namespace dropq {

class StatusReporter {
 public:
  // A queue's counts in Redis, every instance's jobs included; -1: unknown
  // (no answer, or a key edited into another type).
  struct Counts {
    int64_t pending = -1, active = -1, scheduled = -1;
  };
  // The round's counts, by queue name.
  using Done = std::function<void(const std::map<std::string, Counts>& counts)>;
  struct QueueRef {
    std::string name;
    std::string pending, active, scheduled;  // their keys
  };

  // `loop` and `redis` must outlive it.
  StatusReporter(Loop* loop, RedisConn* redis, Done done);
  ~StatusReporter();

  // Starts a round over `queues` unless the last one is still out (then
  // does nothing: the next tick asks again). Redis must be up.
  void Fetch(const std::vector<QueueRef>& queues);

 private:
  struct Round {
    std::map<std::string, Counts> counts;
    size_t left = 0;  // replies still to come
  };

  Loop* const loop_;
  RedisConn* const redis_;
  const Done done_;
  bool in_flight_ = false;
  const std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dropq
