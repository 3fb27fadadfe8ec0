// Membership is this instance's place among the instances of a Redis
// namespace: it renews the heartbeat (registry set + a key with a TTL), fences
// this instance off when its heartbeat went unrenewed past heartbeat_ttl
// (another instance may be running its jobs by then), and reaps instances
// whose heartbeat expired: their orphaned handlers on this host are killed
// first, then every active job they owned goes back to pending.
//
// Thread: loop. Every reply it waits for is guarded by a shared flag
// cleared on destruction; the orphan hunt on the threadpool holds only its
// own state, and its completion checks the same flag.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "daemon/loop.h"
#include "daemon/redis_conn.h"

namespace dropq {

class Membership {
 public:
  struct Hooks {
    // Jobs held by this instance's queues (live and draining).
    std::function<size_t()> held;
    // Fences every queue (QueueRunner::Fence()).
    std::function<void()> fence;
    // The queues to reclaim a dead instance's jobs from: name and key base.
    std::function<std::vector<std::pair<std::string, std::string>>()> queues;
    // The instance takes part: Redis layout checked, not shutting down.
    std::function<bool()> active;
    // The live queues' roles ("both", "produce", "consume") by queue name,
    // published in the heartbeat for the console.
    std::function<std::map<std::string, std::string>()> roles;
  };

  // `cfg`, `loop` and `redis` must outlive it. `started_ms`: unix ms of the
  // start, published in the heartbeat.
  Membership(const Config& cfg, Loop* loop, RedisConn* redis, int64_t started_ms, Hooks hooks);
  ~Membership();

  // Registers the instance and renews its heartbeat (if Redis is up).
  void Heartbeat();
  // Fences this instance off when its heartbeat went unrenewed for longer
  // than heartbeat_ttl while it holds jobs: its running
  // handlers are killed (hooks.fence) and the connection is made anew.
  void CheckFence();
  // Looks at a random sample of registered instances and reclaims the jobs
  // of those whose heartbeat expired.
  void Reap();
  bool fenced() const { return fenced_; }

 private:
  void ReclaimFrom(const std::string& other);

  const Config& cfg_;
  Loop* const loop_;
  RedisConn* const redis_;
  const int64_t started_ms_;
  const Hooks hooks_;
  // Monotonic: when the last renewal Redis took (with replica waits: once a
  // replica had it too, or the wait missed) was sent.
  int64_t heartbeat_ok_ms_;
  bool fenced_ = false;
  std::set<std::string> reaping_;  // expired instances being reclaimed now
  const std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dropq
