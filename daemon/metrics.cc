#include "daemon/metrics.h"

#include <exception>
#include <vector>

namespace dropq {

// One queue's metrics, and the totals they were last brought up to.
struct Metrics::Series {
  prometheus::Counter *seen, *enqueued, *done, *failed, *retried, *interrupted, *dirs_by_scan;
  prometheus::Gauge *pending, *active, *scheduled, *depth, *watched_dirs, *polled_dirs;
  prometheus::Histogram* duration;
  std::map<std::string, prometheus::Counter*> skipped;       // by reason
  std::map<std::string, prometheus::Counter*> anomalies;     // by kind
  std::map<std::string, prometheus::Counter*> watch_errors;  // by reason
  std::map<std::string, prometheus::Counter*> holds;         // by limit
  prometheus::Gauge *rate_limit, *rate_window, *max_active, *throttled;
  prometheus::Gauge* serve_processes = nullptr;                // made for a serve handler
  std::map<std::string, prometheus::Counter*> serve_replaced;  // by reason
  QueueTotals last;
};

namespace {

// Handler run times from 5 ms (a builtin) to 10 minutes (the default timeout).
const prometheus::Histogram::BucketBoundaries kDurationBuckets = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

}  // namespace

Result<std::unique_ptr<Metrics>> Metrics::Start(const std::string& listen) {
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // civetweb's options: one listening port, two serving threads.
    exposer = std::make_unique<prometheus::Exposer>(listen, 2);
  } catch (const std::exception& e) {
    return Error{Errc::kIo, "metrics.listen " + listen + ": " + e.what()};
  }
  auto registry = std::make_shared<prometheus::Registry>();
  exposer->RegisterCollectable(registry);
  return std::unique_ptr<Metrics>(new Metrics(std::move(exposer), std::move(registry)));
}

Metrics::Metrics(std::unique_ptr<prometheus::Exposer> exposer,
                 std::shared_ptr<prometheus::Registry> registry)
    : exposer_(std::move(exposer)),
      registry_(std::move(registry)),
      seen_(prometheus::BuildCounter()
                .Name("dropq_files_seen_total")
                .Help("Regular files the watcher took up")
                .Register(*registry_)),
      skipped_(prometheus::BuildCounter()
                   .Name("dropq_files_skipped_total")
                   .Help("Entries not processed, by reason")
                   .Register(*registry_)),
      anomalies_(prometheus::BuildCounter()
                     .Name("dropq_redis_anomalies_total")
                     .Help("Replies Redis should not have given: a job claimed twice (a lost "
                           "write), a reply of the wrong shape, a late outcome refused, a claim "
                           "no replica acknowledged during a possible failover (given back)")
                     .Register(*registry_)),
      enqueued_(prometheus::BuildCounter()
                    .Name("dropq_jobs_enqueued_total")
                    .Help("Jobs this instance enqueued")
                    .Register(*registry_)),
      done_(prometheus::BuildCounter()
                .Name("dropq_jobs_done_total")
                .Help("Handler runs that succeeded")
                .Register(*registry_)),
      failed_(prometheus::BuildCounter()
                  .Name("dropq_jobs_failed_total")
                  .Help("Jobs that ended failed (dead letters)")
                  .Register(*registry_)),
      retried_(prometheus::BuildCounter()
                   .Name("dropq_jobs_retried_total")
                   .Help("Failed runs scheduled to run again")
                   .Register(*registry_)),
      interrupted_(prometheus::BuildCounter()
                       .Name("dropq_jobs_interrupted_total")
                       .Help("Runs cut short (drain timeout, fencing)")
                       .Register(*registry_)),
      pending_(prometheus::BuildGauge()
                   .Name("dropq_jobs_pending")
                   .Help("Jobs waiting in Redis, all instances")
                   .Register(*registry_)),
      active_(prometheus::BuildGauge()
                  .Name("dropq_jobs_active")
                  .Help("Jobs claimed by an instance, all instances")
                  .Register(*registry_)),
      scheduled_(prometheus::BuildGauge()
                     .Name("dropq_jobs_scheduled")
                     .Help("Retries waiting for their time, all instances")
                     .Register(*registry_)),
      depth_(prometheus::BuildGauge()
                 .Name("dropq_queue_depth")
                 .Help("Jobs waiting in this instance's in-memory queue")
                 .Register(*registry_)),
      duration_(prometheus::BuildHistogram()
                    .Name("dropq_job_duration_seconds")
                    .Help("Handler run time")
                    .Register(*registry_)),
      watched_dirs_(prometheus::BuildGauge()
                        .Name("dropq_watched_dirs")
                        .Help("Directories with an inotify watch")
                        .Register(*registry_)),
      polled_dirs_(prometheus::BuildGauge()
                       .Name("dropq_polled_dirs")
                       .Help("Directories scanned every poll_interval: no watch could be added")
                       .Register(*registry_)),
      watch_errors_(prometheus::BuildCounter()
                        .Name("dropq_watch_errors_total")
                        .Help("Directories left unwatched, by reason (limit: "
                              "fs.inotify.max_user_watches; permission; open; other)")
                        .Register(*registry_)),
      dirs_by_scan_(prometheus::BuildCounter()
                        .Name("dropq_dirs_found_by_scan_total")
                        .Help("Directories a scan found before inotify reported them")
                        .Register(*registry_)),
      holds_(prometheus::BuildCounter()
                 .Name("dropq_claims_held_total")
                 .Help("Claims that found the queue at a limit and started nothing, by limit "
                       "(rate: rate_limit; active: max_active; throttle: a server's Retry-After)")
                 .Register(*registry_)),
      limits_(prometheus::BuildGauge()
                  .Name("dropq_queue_limit")
                  .Help("The queue's limits across instances, by limit (rate_limit: starts per "
                        "window; rate_window_seconds; max_active); absent when not set")
                  .Register(*registry_)),
      throttled_(prometheus::BuildGauge()
                     .Name("dropq_queue_throttled")
                     .Help("1 while a server's Retry-After holds the queue's claims back")
                     .Register(*registry_)),
      serve_processes_(prometheus::BuildGauge()
                           .Name("dropq_serve_processes")
                           .Help("A serve handler's long-lived processes running now")
                           .Register(*registry_)),
      serve_replaced_(prometheus::BuildCounter()
                          .Name("dropq_serve_replaced_total")
                          .Help("A serve handler's processes replaced, by reason (max_jobs, "
                                "max_rss: recycled; exit, signal: died on their own; timeout; "
                                "protocol; start_timeout; interrupted; spawn_failed)")
                          .Register(*registry_)),
      redis_connected_(prometheus::BuildGauge()
                           .Name("dropq_redis_connected")
                           .Help("1 while Redis is reachable")
                           .Register(*registry_)
                           .Add({})),
      redis_primary_(prometheus::BuildGauge()
                         .Name("dropq_redis_primary")
                         .Help("1 for the Redis server in use (with Sentinel: the primary)")
                         .Register(*registry_)),
      redis_failovers_(prometheus::BuildCounter()
                           .Name("dropq_redis_failovers_total")
                           .Help("New primaries found through the sentinels")
                           .Register(*registry_)
                           .Add({})),
      redis_down_seconds_(prometheus::BuildCounter()
                              .Name("dropq_redis_down_seconds_total")
                              .Help("Time without a Redis connection after the first one "
                                    "(an outage under way included)")
                              .Register(*registry_)
                              .Add({})),
      replica_waits_(prometheus::BuildCounter()
                         .Name("dropq_redis_replica_waits_total")
                         .Help("Claims and heartbeat renewals that waited for a replica, by "
                               "result (acked; missed: timed out or refused)")
                         .Register(*registry_)) {}

Metrics::~Metrics() = default;

int Metrics::port() const {
  const std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

Metrics::Series& Metrics::For(const std::string& queue) {
  auto& s = series_[queue];
  if (!s) {
    const prometheus::Labels l = {{"queue", queue}};
    s = std::make_unique<Series>();
    s->seen = &seen_.Add(l);
    s->enqueued = &enqueued_.Add(l);
    s->done = &done_.Add(l);
    s->failed = &failed_.Add(l);
    s->retried = &retried_.Add(l);
    s->interrupted = &interrupted_.Add(l);
    s->pending = &pending_.Add(l);
    s->active = &active_.Add(l);
    s->scheduled = &scheduled_.Add(l);
    s->depth = &depth_.Add(l);
    s->duration = &duration_.Add(l, kDurationBuckets);
    s->watched_dirs = &watched_dirs_.Add(l);
    s->polled_dirs = &polled_dirs_.Add(l);
    s->dirs_by_scan = &dirs_by_scan_.Add(l);
    s->throttled = &throttled_.Add(l);
    s->rate_limit = nullptr;
    s->rate_window = nullptr;
    s->max_active = nullptr;
  }
  return *s;
}

void Metrics::Add(prometheus::Counter& c, uint64_t* last, uint64_t total) {
  const uint64_t from = total < *last ? 0 : *last;  // a restarted queue counts anew
  if (total > from) c.Increment(static_cast<double>(total - from));
  *last = total;
}

void Metrics::Sync(const std::string& queue, const QueueTotals& t) {
  Series& s = For(queue);
  Add(*s.seen, &s.last.seen, t.seen);
  Add(*s.enqueued, &s.last.enqueued, t.enqueued);
  Add(*s.done, &s.last.done, t.done);
  Add(*s.failed, &s.last.failed, t.failed);
  Add(*s.retried, &s.last.retried, t.retried);
  Add(*s.interrupted, &s.last.interrupted, t.interrupted);
  for (const auto& [reason, n] : t.skipped) {
    auto& c = s.skipped[reason];
    if (c == nullptr) c = &skipped_.Add({{"queue", queue}, {"reason", reason}});
    Add(*c, &s.last.skipped[reason], n);
  }
  for (const auto& [kind, n] : t.anomalies) {
    auto& c = s.anomalies[kind];
    if (c == nullptr) c = &anomalies_.Add({{"queue", queue}, {"kind", kind}});
    Add(*c, &s.last.anomalies[kind], n);
  }
  for (const auto& [reason, n] : t.watch_errors) {
    auto& c = s.watch_errors[reason];
    if (c == nullptr) c = &watch_errors_.Add({{"queue", queue}, {"reason", reason}});
    Add(*c, &s.last.watch_errors[reason], n);
  }
  Add(*s.dirs_by_scan, &s.last.dirs_by_scan, t.dirs_by_scan);
  for (const auto& [limit, n] : t.holds) {
    auto& c = s.holds[limit];
    if (c == nullptr) c = &holds_.Add({{"queue", queue}, {"limit", limit}});
    Add(*c, &s.last.holds[limit], n);
  }
  // A limit's gauge exists while the limit does (a reload adds and removes them).
  const auto limit = [&](prometheus::Gauge** g, const char* name, double value) {
    if (value > 0 && *g == nullptr) *g = &limits_.Add({{"queue", queue}, {"limit", name}});
    if (value == 0 && *g != nullptr) {
      limits_.Remove(*g);
      *g = nullptr;
    }
    if (*g != nullptr) (*g)->Set(value);
  };
  limit(&s.rate_limit, "rate_limit", static_cast<double>(t.rate_limit));
  limit(&s.rate_window, "rate_window_seconds", t.rate_window_s);
  limit(&s.max_active, "max_active", static_cast<double>(t.max_active));
  s.throttled->Set(t.throttled ? 1 : 0);
  if (t.serve) {
    if (s.serve_processes == nullptr) s.serve_processes = &serve_processes_.Add({{"queue", queue}});
    s.serve_processes->Set(static_cast<double>(t.serve_processes));
    for (const auto& [reason, n] : t.serve_replaced) {
      auto& c = s.serve_replaced[reason];
      if (c == nullptr) c = &serve_replaced_.Add({{"queue", queue}, {"reason", reason}});
      Add(*c, &s.last.serve_replaced[reason], n);
    }
  }
  s.depth->Set(static_cast<double>(t.depth));
  s.watched_dirs->Set(static_cast<double>(t.watched_dirs));
  s.polled_dirs->Set(static_cast<double>(t.polled_dirs));
}

void Metrics::SetRedisCounts(const std::string& queue, int64_t pending, int64_t active,
                             int64_t scheduled) {
  Series& s = For(queue);
  if (pending >= 0) s.pending->Set(static_cast<double>(pending));
  if (active >= 0) s.active->Set(static_cast<double>(active));
  if (scheduled >= 0) s.scheduled->Set(static_cast<double>(scheduled));
}

void Metrics::SetRedisConnected(bool up) { redis_connected_.Set(up ? 1 : 0); }

void Metrics::SyncRedis(const RedisTotals& t) {
  if (t.addr != primary_addr_) {
    if (primary_gauge_ != nullptr) redis_primary_.Remove(primary_gauge_);
    primary_gauge_ = &redis_primary_.Add({{"addr", t.addr}});
    primary_gauge_->Set(1);
    primary_addr_ = t.addr;
  }
  Add(redis_failovers_, &redis_last_.failovers, t.failovers);
  if (t.down_ms > redis_last_.down_ms) {
    redis_down_seconds_.Increment(static_cast<double>(t.down_ms - redis_last_.down_ms) / 1000.0);
    redis_last_.down_ms = t.down_ms;
  }
  const uint64_t acked = t.replica_waits - t.replica_wait_misses;
  uint64_t last_acked = redis_last_.replica_waits - redis_last_.replica_wait_misses;
  Add(replica_waits_.Add({{"result", "acked"}}), &last_acked, acked);
  Add(replica_waits_.Add({{"result", "missed"}}), &redis_last_.replica_wait_misses,
      t.replica_wait_misses);
  redis_last_.replica_waits = t.replica_waits;
}

void Metrics::ObserveDuration(const std::string& queue, double seconds) {
  For(queue).duration->Observe(seconds);
}

}  // namespace dropq
