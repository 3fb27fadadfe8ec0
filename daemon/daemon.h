// Daemon is dropqd: it owns the loop, the Redis connection, the inotify
// descriptor and one QueueWatcher + QueueRunner per configured queue, and it
// runs the life cycle:
//
//   start:    watches in place (files arriving from now on are safe on disk),
//             worker threads up, connect to Redis;
//   Redis up: register the instance, requeue own leftovers, resend held
//             outcomes, scan every directory (first time, or after an outage);
//   SIGTERM/SIGINT: stop watching, return queued jobs to pending, one stop
//             sentinel per worker, let running handlers finish up to
//             drain_timeout (then kill them and return their jobs), flush
//             Redis, exit 0. A second signal exits at once.
//
// Thread: loop (Run() makes the calling thread the loop thread).
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "daemon/inotify.h"
#include "daemon/instance_lock.h"
#include "daemon/loop.h"
#include "daemon/queue_runner.h"
#include "daemon/queue_watcher.h"
#include "daemon/redis_conn.h"
#include "daemon/uv_handle.h"

namespace dropq {

class Daemon {
 public:
  explicit Daemon(Config cfg);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs until shut down; returns the process exit status.
  int Run();

 private:
  Status Setup();
  void OnRedisUp();
  void OnSignal(int signum);
  void BeginShutdown();
  void FinishShutdown(bool forced);
  void Heartbeat();
  // Fences this instance off when its heartbeat went unrenewed for longer
  // than heartbeat_ttl: its running handlers are killed.
  void CheckFence();
  // Finds registered instances whose heartbeat expired and reclaims their
  // active jobs: orphaned handlers on this host killed first, then every
  // job they owned back to pending, marked interrupted if it had started.
  void Reap();
  void ReclaimFrom(const std::string& other);
  void Summary();
  // Rescans the queues whose new files Redis refused while it was up.
  void RescanRefused();

  const Config cfg_;
  std::unique_ptr<InstanceLock> lock_;  // held until the process exits
  Loop loop_;
  std::unique_ptr<RedisConn> redis_;
  std::unique_ptr<Inotify> inotify_;
  std::vector<std::unique_ptr<QueueRunner>> runners_;
  std::vector<std::unique_ptr<QueueWatcher>> watchers_;  // parallel to runners_; null: role consume
  UvHandle<uv_signal_t> sigint_, sigterm_;
  UvHandle<uv_check_t> flush_;        // sends each turn's batches
  UvHandle<uv_timer_t> tick_;         // heartbeat and summary, every few seconds
  UvHandle<uv_timer_t> drain_timer_;  // drain_timeout, then the final deadline
  bool first_up_ = true;
  bool shutting_down_ = false;
  bool finished_ = false;
  int drained_ = 0;
  int exit_code_ = 0;
  int64_t started_ms_ = 0;
  int64_t last_summary_ms_ = 0;        // monotonic
  int64_t rescan_refused_due_ms_ = 0;  // monotonic: next RescanRefused() may scan
  int64_t heartbeat_ok_ms_ = 0;        // monotonic: when the last renewal Redis took was sent
  bool fenced_ = false;
  std::vector<uint64_t> last_done_;
  std::set<std::string>
      reaping_;  // expired instances being reclaimed now  // per queue, for the summary rate
};

}  // namespace dropq
