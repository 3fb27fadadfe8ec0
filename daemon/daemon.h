// Daemon is dropqd: it owns the loop, the Redis connection, the inotify
// descriptor and one QueueWatcher + QueueRunner per configured queue, and it
// runs the life cycle:
//
//   start:    watches in place (files arriving from now on are safe on disk),
//             worker threads up, connect to Redis;
//   Redis up: register the instance, check the layout of the keys (another
//             version's instance running, or a queue of a later layout: exit
//             76, EX_PROTOCOL; a queue of the previous layout is upgraded),
//             requeue own leftovers, resend held outcomes, scan every
//             directory (first time, or after an outage);
//   SIGHUP:   re-read the config (Reload()): added queues start, removed
//             ones drain and stop, changed ones drain and start again with
//             their new settings; an invalid config changes nothing;
//   SIGTERM/SIGINT: stop watching, return queued jobs to pending, one stop
//             sentinel per worker, let running handlers finish up to
//             drain_timeout (then kill them and return their jobs), flush
//             Redis, exit 0. A second signal exits at once.
//
// Thread: loop (Run() makes the calling thread the loop thread).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "daemon/inotify.h"
#include "daemon/instance_lock.h"
#include "daemon/layout_gate.h"
#include "daemon/loop.h"
#include "daemon/membership.h"
#include "daemon/metrics.h"
#include "daemon/queue_runner.h"
#include "daemon/queue_watcher.h"
#include "daemon/redis_conn.h"
#include "daemon/retry_requests.h"
#include "daemon/sentinel_watch.h"
#include "daemon/service_notifier.h"
#include "daemon/status_reporter.h"
#include "daemon/uv_handle.h"
#include "workers/queue_setup.h"

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
  // One queue this instance runs: its config (which the runner and watcher
  // point into), its runner and its watcher (none with role consume). A
  // reload retires a slot: it stops watching and drains, and is destroyed
  // once drained (and, if its config changed, a new slot starts the queue
  // again). The shutdown drains every slot, retiring ones included.
  struct QueueSlot {
    std::unique_ptr<QueueConfig> cfg;
    std::unique_ptr<QueueRunner> runner;
    std::unique_ptr<QueueWatcher> watcher;  // null: role consume
    bool retiring = false;                  // stopped by a reload, draining
    bool drained = false;                   // its drain is over
    bool scanned = false;                   // its first scan ran
    StatusReporter::Counts counts;          // from the last status round
    uint64_t last_done = 0;                 // done + failed at the last summary
    // The runner's enqueued, done and failed counts the last RATES call had.
    uint64_t rated_enqueued = 0, rated_done = 0, rated_failed = 0;
  };

  Status Setup();
  // Creates queue `q`'s slot (runner, and watcher unless it only consumes)
  // from its set-up (workers/queue_setup.h). `live`: the daemon runs already
  // (a reload): start the workers, and reconcile and scan if Redis is up.
  Status InstallQueue(const QueueConfig& q, QueueSetup setup, bool live);
  // A reload adds (or restarts) queue `q`: its set-up is made on the
  // threadpool, then it is installed live; `done` gets the outcome (not
  // called if the shutdown began meanwhile: the set-up is dropped).
  void AddQueueLive(const QueueConfig& q, std::function<void(Status)> done);
  // What a reload did, for its reload.done line once its queues are in.
  struct ReloadTally {
    size_t added = 0, removed = 0, changed = 0, failed = 0;
    size_t left = 0;  // queues still being set up
  };
  void FinishReload(const ReloadTally& t);
  // The slot running `r`, or null (retired and gone).
  QueueSlot* SlotOf(const QueueRunner* r);
  // Calls `f(slot)` for every slot, or only the live ones (not retiring).
  template <typename F>
  void ForEachSlot(bool live_only, F f);
  // Stops slot `s` watching and drains it (a reload removed or changed it).
  void RetireQueue(QueueSlot* s);
  void OnRetired(QueueSlot* s);
  // SIGHUP: see the class comment. Redis, prefix, instance and
  // heartbeat_ttl cannot change without a restart: a config that changes
  // them is refused as a whole, like an invalid one.
  void Reload();
  // Redis is up for runner `r` (reconciled): its first scan, or the scan
  // of what arrived while Redis was away.
  void OnQueueReady(QueueRunner* r);
  void OnRedisUp();
  // Runs the LayoutGate over every queue; the queues start on Redis once it
  // passes (StartQueues()). A refusal shuts dropqd down with 76, an error
  // Redis may get over (LOADING) tries again after a second.
  void CheckLayout();
  std::vector<std::string> QueueBases();
  void StartQueues();
  // Brings queue `r`, added by a reload, to the layout and starts it on Redis.
  void StartAddedQueue(QueueRunner* r);
  void OnSignal(int signum);
  void BeginShutdown();
  void FinishShutdown(bool forced);
  // Every few seconds: heartbeat, fencing, reaping, refused rescans, the
  // status round, the watchers' counters.
  void Tick();
  // Rescans the queues whose new files Redis refused while it was up.
  void RescanRefused();
  // A status round is in: STATUS=, /metrics' Redis counts and (every
  // kTickMs) the summary line.
  void OnCounts(const std::map<std::string, StatusReporter::Counts>& counts);
  // One line for systemd's STATUS=: queues, pending, active, Redis.
  std::string StatusLine();
  // Starts a status round, or with Redis away sends StatusLine() at once.
  void RefreshStatus();
  // metrics.listen: brings /metrics' counters up to date (every second);
  // the Redis counts come with each status round.
  void SyncMetrics();
  // The watchers' counters (files seen, skipped by reason) in the stats hash
  // of their queue, so that redis-cli shows what /metrics shows, for every
  // instance together. Take adds what `w` counted since its last take to
  // unpushed_stats_; Push sends all of that (if Redis is up) with HINCRBY.
  // Both run every tick, when a queue is retired and when the shutdown
  // begins. Lost: what a crash, or a stop while Redis is down, catches
  // unpushed, and a push whose connection drops before its answer.
  void TakeWatcherStats(QueueWatcher* w, const QueueRunner& runner);
  // Subscribes notices_ to the `freed` channel of every live queue with
  // max_active, and no other: after a queue is installed or retired, and
  // after a reload changed limits. A message ends the max_active hold of its
  // queue's runner, as does notices_ (re)connecting, when messages may have
  // been missed.
  void SyncSubscriptions();
  void PushStats();
  // Adds each live queue's jobs enqueued, done and failed since the last
  // call to the current minute's counters in Redis (RATES; at most one call
  // per queue, none for a queue with nothing new). Lost if Redis is down.
  void PushRates();
  // With Sentinel: warns (once per value) when the sentinels' down-after-
  // milliseconds is too long for heartbeat_ttl (docs/scaling.md).
  void CheckSentinelTiming(const PrimaryFound& f);
  int64_t warned_down_after_ms_ = -1;

  // Replaced in part by a reload: log_level, drain_timeout and the queues
  // (whose configs live in the slots, where runners point).
  Config cfg_;
  std::unique_ptr<InstanceLock> lock_;  // held until the process exits
  Loop loop_;
  ServiceNotifier notifier_{loop_.get()};
  std::unique_ptr<RedisConn> redis_;
  // Subscribed to the `freed` channel of each queue with max_active (it
  // runs no other command); made with the first such queue.
  std::unique_ptr<RedisConn> notices_;
  std::set<std::string> freed_channels_;  // what notices_ is subscribed to
  // With Sentinel: the +switch-master subscription that moves redis_ and
  // notices_ to a new primary as soon as it is announced.
  std::unique_ptr<SentinelWatch> sentinel_watch_;
  std::unique_ptr<Inotify> inotify_;
  std::unique_ptr<LayoutGate> gate_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<RetryRequests> retry_requests_;  // retries other processes ask of us
  std::unique_ptr<StatusReporter> status_;
  bool layout_open_ = false;         // the gate passed since Redis last came up
  int64_t layout_retry_due_ms_ = 0;  // monotonic: CheckLayout() again then; 0: not due
  std::vector<std::unique_ptr<QueueSlot>> queues_;        // live ones in config order
  std::unique_ptr<Metrics> metrics_;                      // null: metrics.listen not set
  UvHandle<uv_timer_t> metrics_timer_;                    // SyncMetrics(), every second
  std::map<std::string, QueueConfig> start_after_drain_;  // changed queues, waiting for the old
  UvHandle<uv_signal_t> sigint_, sigterm_, sighup_;
  UvHandle<uv_signal_t> test_block_;  // DROPQD_TEST_BLOCK_ON_SIGUSR2: tests of the watchdog
  UvHandle<uv_check_t> flush_;        // sends each turn's batches
  UvHandle<uv_timer_t> tick_;         // Tick(), every few seconds
  UvHandle<uv_timer_t> drain_timer_;  // drain_timeout, then the final deadline
  int setting_up_ = 0;                // queue set-ups on the threadpool (AddQueueLive())
  bool reload_again_ = false;         // a SIGHUP came during them: reload once they are in
  bool shutting_down_ = false;
  bool finished_ = false;
  int drained_ = 0;
  int expected_drains_ = 0;  // queues (running and retiring) the shutdown waits for
  int exit_code_ = 0;
  int64_t started_ms_ = 0;
  int64_t last_summary_ms_ = 0;        // monotonic
  int64_t summary_elapsed_ms_ = 0;     // since the summary before: one is due with the round
  int64_t rescan_refused_due_ms_ = 0;  // monotonic: next RescanRefused() may scan
  // stats hash key -> field -> count taken from a watcher, not yet pushed
  // (Redis is down); a queue a reload removed keeps its entry until pushed.
  std::map<std::string, std::map<std::string, uint64_t>> unpushed_stats_;
};

}  // namespace dropq
