// Metrics serves Prometheus text exposition on http://<metrics.listen>/metrics
// with prometheus-cpp: its Registry and metric types, its text serializer and
// its pull Exposer (a small embedded HTTP server on threads of its own).
//
//   dropq_files_seen_total{queue}               regular files the watcher took up
//   dropq_files_skipped_total{queue,reason}     not taken: excluded, fifo, symlink,
//                                               directory, ..., vanished, replaced
//   dropq_jobs_enqueued_total{queue}            jobs this instance enqueued
//   dropq_jobs_done_total{queue}                runs that succeeded
//   dropq_jobs_failed_total{queue}              jobs that ended failed
//   dropq_jobs_retried_total{queue}             failed runs scheduled to run again
//   dropq_jobs_interrupted_total{queue}         runs cut short (drain, fence)
//   dropq_jobs_pending / _active / _scheduled   the queue in Redis (all instances)
//   dropq_queue_depth{queue}                    jobs waiting in this instance's memory
//   dropq_redis_connected                       1 while Redis is reachable
//   dropq_redis_primary{addr}                   1 for the server in use (with Sentinel,
//                                               the primary last found)
//   dropq_redis_failovers_total                 new primaries found (Sentinel)
//   dropq_redis_down_seconds_total              time without a Redis connection, after
//                                               the first one (outages, failovers)
//   dropq_redis_replica_waits_total{result}     claims and heartbeat renewals that waited
//                                               for a replica (redis.replica_wait):
//                                               acked, missed (timed out or refused)
//   dropq_redis_anomalies_total{queue,kind}     what Redis answered that cannot be
//                                               (duplicate_claim, bad_reply, lost_outcome,
//                                               unconfirmed_claim: given back, see
//                                               RedisConn::suspect())
//   dropq_job_duration_seconds{queue}           histogram of handler run times
//   dropq_watched_dirs{queue}                   directories with an inotify watch
//   dropq_polled_dirs{queue}                    directories scanned every poll_interval
//                                               instead (no watch could be added)
//   dropq_watch_errors_total{queue,reason}      directories left unwatched: limit
//                                               (fs.inotify.max_user_watches),
//                                               permission, open, other
//   dropq_dirs_found_by_scan_total{queue}       directories a scan found before inotify
//   dropq_queue_limit{queue,limit}              the queue's limits, while set: rate_limit,
//                                               rate_window_seconds, max_active
//   dropq_claims_held_total{queue,limit}        claims a limit held back: rate, active,
//                                               throttle
//   dropq_queue_throttled{queue}                1 while a server's Retry-After holds it
//   dropq_serve_processes{queue}                a serve handler's processes running
//   dropq_serve_replaced_total{queue,reason}    its processes replaced: max_jobs, max_rss
//                                               (recycled), exit, signal (died on their
//                                               own), timeout, protocol, start_timeout,
//                                               interrupted, spawn_failed
//
// The counters are this instance's since it started (a Prometheus counter
// may restart); the same events are counted for the whole queue, across
// instances and restarts, in Redis' stats hash (docs/redis-keys.md).
//
// Thread: the loop updates (Sync, Observe); the exposer's threads read. The
// prometheus-cpp metric types are safe for that.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/result.h"

namespace dropq {

class Metrics {
 public:
  // What one queue did so far in this process (the runner's and the
  // watcher's counters), and its state now.
  struct QueueTotals {
    uint64_t seen = 0, enqueued = 0, done = 0, failed = 0, retried = 0, interrupted = 0;
    std::map<std::string, uint64_t> skipped;    // by reason
    std::map<std::string, uint64_t> anomalies;  // by kind
    int64_t depth = 0;
    uint64_t dirs_by_scan = 0;
    std::map<std::string, uint64_t> watch_errors;  // by reason
    int64_t watched_dirs = 0, polled_dirs = 0;
    std::map<std::string, uint64_t> holds;   // claims held back, by limit: rate, active, throttle
    int64_t rate_limit = 0, max_active = 0;  // the queue's limits (0: none)
    double rate_window_s = 0;                // rate_limit's `per`, in seconds
    bool serve = false;                      // a serve handler: the two below mean something
    int64_t serve_processes = 0;             // its processes running now
    std::map<std::string, uint64_t> serve_replaced;  // processes replaced, by reason
    bool throttled = false;  // claims held back by a server's Retry-After now
  };

  // Listens on `listen` ("host:port"); an Error if it cannot (port taken...).
  static Result<std::unique_ptr<Metrics>> Start(const std::string& listen);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Brings queue `queue`'s counters up to `t` (they only grow: a total
  // below the last one, after a reload restarted the queue, counts anew).
  void Sync(const std::string& queue, const QueueTotals& t);
  // The queue in Redis; -1 leaves a gauge as it is (Redis did not answer).
  void SetRedisCounts(const std::string& queue, int64_t pending, int64_t active, int64_t scheduled);
  void SetRedisConnected(bool up);
  // The connection's history (RedisConn::Stats) and the server in use.
  struct RedisTotals {
    std::string addr;
    uint64_t failovers = 0, down_ms = 0, replica_waits = 0, replica_wait_misses = 0;
  };
  void SyncRedis(const RedisTotals& t);
  // One handler run of `queue` took `seconds`.
  void ObserveDuration(const std::string& queue, double seconds);

  // The port it listens on (useful with port 0).
  int port() const;

 private:
  struct Series;
  Metrics(std::unique_ptr<prometheus::Exposer> exposer,
          std::shared_ptr<prometheus::Registry> registry);
  Series& For(const std::string& queue);
  void Add(prometheus::Counter& c, uint64_t* last, uint64_t total);

  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& seen_;
  prometheus::Family<prometheus::Counter>& skipped_;
  prometheus::Family<prometheus::Counter>& anomalies_;
  prometheus::Family<prometheus::Counter>& enqueued_;
  prometheus::Family<prometheus::Counter>& done_;
  prometheus::Family<prometheus::Counter>& failed_;
  prometheus::Family<prometheus::Counter>& retried_;
  prometheus::Family<prometheus::Counter>& interrupted_;
  prometheus::Family<prometheus::Gauge>& pending_;
  prometheus::Family<prometheus::Gauge>& active_;
  prometheus::Family<prometheus::Gauge>& scheduled_;
  prometheus::Family<prometheus::Gauge>& depth_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Gauge>& watched_dirs_;
  prometheus::Family<prometheus::Gauge>& polled_dirs_;
  prometheus::Family<prometheus::Counter>& watch_errors_;
  prometheus::Family<prometheus::Counter>& dirs_by_scan_;
  prometheus::Family<prometheus::Counter>& holds_;
  prometheus::Family<prometheus::Gauge>& limits_;
  prometheus::Family<prometheus::Gauge>& throttled_;
  prometheus::Family<prometheus::Gauge>& serve_processes_;
  prometheus::Family<prometheus::Counter>& serve_replaced_;
  prometheus::Gauge& redis_connected_;
  prometheus::Family<prometheus::Gauge>& redis_primary_;
  prometheus::Counter& redis_failovers_;
  prometheus::Counter& redis_down_seconds_;
  prometheus::Family<prometheus::Counter>& replica_waits_;
  prometheus::Gauge* primary_gauge_ = nullptr;  // redis_primary_'s series for primary_addr_
  std::string primary_addr_;
  RedisTotals redis_last_;                                 // what SyncRedis() counted so far
  std::map<std::string, std::unique_ptr<Series>> series_;  // by queue name
};

}  // namespace dropq
