#include "daemon/daemon.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "common/check.h"
#include "common/clock.h"
#include "common/log.h"
#include "config/secrets.h"
#include "daemon/instance_lock.h"
#include "daemon/orphans.h"
#include "store/keys.h"
#include "store/protocol.h"
#include "store/scripts.h"

namespace dropq {
namespace {

constexpr uint64_t kTickMs = 5000;         // heartbeat and summary period (at most)
constexpr uint64_t kFinalGraceMs = 10000;  // after drain_timeout: kill, then this long to record

template <typename T, typename Init>
UvHandle<T> MakeHandle(Init init, void* data) {
  auto h = UvHandle<T>::Make(init);
  DROPQ_CHECK(h.ok());
  h->get()->data = data;
  return std::move(*h);
}

}  // namespace

Daemon::Daemon(Config cfg) : cfg_(std::move(cfg)) {}

Daemon::~Daemon() {
  // Watchers feed runners, runners use the connection: tear down in that order.
  for (auto& q : queues_) q->watcher.reset();
  queues_.clear();
  status_.reset();
  membership_.reset();
  retry_requests_.reset();
  inotify_.reset();
  sentinel_watch_.reset();
  notices_.reset();
  redis_.reset();
}

template <typename F>
void Daemon::ForEachSlot(bool live_only, F f) {
  for (auto& q : queues_) {
    if (!live_only || !q->retiring) f(*q);
  }
}

Daemon::QueueSlot* Daemon::SlotOf(const QueueRunner* r) {
  for (auto& q : queues_) {
    if (q->runner.get() == r) return q.get();
  }
  return nullptr;
}

Status Daemon::Setup() {
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe is an error value, not a death
  uv_loop_t* l = loop_.get();

  RedisConn::Hooks hooks;
  hooks.up = [this] { OnRedisUp(); };
  hooks.primary = [this](const PrimaryFound& f) { CheckSentinelTiming(f); };
  hooks.down = [this] { notifier_.Status(StatusLine()); };
  redis_ = std::make_unique<RedisConn>(&loop_, cfg_.redis, std::move(hooks));
  redis_->SetReplicaWait(cfg_.redis_replica_wait);
  if (cfg_.redis.sentinel()) {
    sentinel_watch_ =
        std::make_unique<SentinelWatch>(&loop_, cfg_.redis, [this](const HostPort& p) {
          redis_->Follow(p);
          if (notices_) notices_->Follow(p);
        });
  }
  gate_ = std::make_unique<LayoutGate>(&loop_, redis_.get(), cfg_.prefix, cfg_.instance);
  Membership::Hooks m;
  m.held = [this] {
    size_t held = 0;
    ForEachSlot(false, [&](QueueSlot& q) { held += q.runner->held(); });
    return held;
  };
  // Draining queues too: their running jobs may be another instance's by now.
  m.fence = [this] { ForEachSlot(false, [](QueueSlot& q) { q.runner->Fence(); }); };
  m.queues = [this] {
    std::vector<std::pair<std::string, std::string>> out;
    ForEachSlot(true,
                [&](QueueSlot& q) { out.emplace_back(q.cfg->name, q.runner->keys().base()); });
    return out;
  };
  m.active = [this] { return layout_open_ && !shutting_down_; };
  m.roles = [this] {
    std::map<std::string, std::string> out;
    ForEachSlot(true, [&](QueueSlot& q) {
      out[q.cfg->name] = !q.cfg->watches()        ? "consume"
                         : q.cfg->runs_handlers() ? "both"
                                                  : "produce";
    });
    return out;
  };
  membership_ = std::make_unique<Membership>(cfg_, &loop_, redis_.get(), started_ms_, std::move(m));
  retry_requests_ = std::make_unique<RetryRequests>(&loop_, redis_.get(), cfg_.instance);
  status_ = std::make_unique<StatusReporter>(&loop_, redis_.get(),
                                             [this](const auto& counts) { OnCounts(counts); });

  auto in = Inotify::Create(&loop_, [this] {
    // Events were lost: look at everything again.
    ForEachSlot(true, [](QueueSlot& q) {
      if (q.watcher) q.watcher->Rescan();
    });
  });
  if (!in.ok()) return in.error();
  inotify_ = std::move(*in);
  // Read events only as fast as Redis takes the jobs they make: a burst
  // then waits in the kernel's queue, and dropqd's memory stays flat.
  inotify_->SetGate([this] {
    bool behind = false;
    ForEachSlot(true, [&](QueueSlot& q) { behind |= q.runner->enqueue_behind(); });
    return !behind;
  });

  if (!cfg_.metrics_listen.empty()) {
    auto m = Metrics::Start(cfg_.metrics_listen);
    if (!m.ok()) return m.error();
    metrics_ = std::move(*m);
    LogInfo("metrics.listen", {{"addr", cfg_.metrics_listen}, {"path", "/metrics"}});
    metrics_timer_ = MakeTimer(l, this);
    uv_timer_start(
        metrics_timer_.get(), [](uv_timer_t* t) { static_cast<Daemon*>(t->data)->SyncMetrics(); },
        0, 1000);
  }
  for (const QueueConfig& q : cfg_.queues) {
    // Before the loop runs: blocking set-up is fine here.
    auto setup = SetUpQueue(q, cfg_.instance);
    if (!setup.ok())
      return Error{setup.error().code, "queue " + q.name + ": " + setup.error().what};
    if (Status s = InstallQueue(q, std::move(*setup), false); !s.ok()) return s;
  }
  SyncSubscriptions();
  last_summary_ms_ = MonoMs();

  auto on_signal = [](uv_signal_t* s, int signum) {
    static_cast<Daemon*>(s->data)->OnSignal(signum);
  };
  sigint_ = MakeHandle<uv_signal_t>([&](uv_signal_t* s) { return uv_signal_init(l, s); }, this);
  sigterm_ = MakeHandle<uv_signal_t>([&](uv_signal_t* s) { return uv_signal_init(l, s); }, this);
  uv_signal_start(sigint_.get(), on_signal, SIGINT);
  uv_signal_start(sigterm_.get(), on_signal, SIGTERM);
  sighup_ = MakeHandle<uv_signal_t>([&](uv_signal_t* s) { return uv_signal_init(l, s); }, this);
  uv_signal_start(
      sighup_.get(), [](uv_signal_t* s, int) { static_cast<Daemon*>(s->data)->Reload(); }, SIGHUP);
  if (std::getenv("DROPQD_TEST_BLOCK_ON_SIGUSR2") != nullptr) {
    // Test-only: SIGUSR2 blocks the loop for good, as a stuck loop would; the
    // watchdog pings must stop, and systemd would restart the service.
    test_block_ =
        MakeHandle<uv_signal_t>([&](uv_signal_t* s) { return uv_signal_init(l, s); }, this);
    uv_signal_start(
        test_block_.get(),
        [](uv_signal_t*, int) {
          LogWarn("dropqd.test_block", {{"why", "DROPQD_TEST_BLOCK_ON_SIGUSR2"}});
          for (;;) pause();
        },
        SIGUSR2);
  }

  // Everything a loop turn collected goes to Redis as one batch per kind.
  flush_ = MakeHandle<uv_check_t>([&](uv_check_t* c) { return uv_check_init(l, c); }, this);
  uv_check_start(flush_.get(), [](uv_check_t* c) {
    auto* self = static_cast<Daemon*>(c->data);
    self->ForEachSlot(false, [](QueueSlot& q) {
      q.runner->Flush();
      if (q.watcher && !q.retiring) q.watcher->Tick();
    });
    self->inotify_->MaybeResume();
  });

  tick_ = MakeTimer(l, this);
  // The heartbeat is renewed three times per TTL, so one lost renewal is harmless.
  const uint64_t tick =
      std::min<uint64_t>(kTickMs, static_cast<uint64_t>(cfg_.heartbeat_ttl.count()) / 3);
  uv_timer_start(
      tick_.get(), [](uv_timer_t* t) { static_cast<Daemon*>(t->data)->Tick(); }, tick, tick);
  drain_timer_ = MakeTimer(l, this);

  ForEachSlot(false, [](QueueSlot& q) { q.runner->Start(); });
  return OkStatus();
}

void Daemon::Tick() {
  redis_->CheckReplicas();  // before the renewal, which may wait for one
  if (sentinel_watch_) sentinel_watch_->Tick();
  membership_->Heartbeat();
  if (layout_retry_due_ms_ != 0 && MonoMs() >= layout_retry_due_ms_) CheckLayout();
  if (!shutting_down_) membership_->CheckFence();
  membership_->Reap();
  RescanRefused();
  RefreshStatus();
  ForEachSlot(true, [this](QueueSlot& q) {
    if (q.watcher) TakeWatcherStats(q.watcher.get(), *q.runner);
  });
  PushStats();
  PushRates();
  // The retries other processes asked of this instance (its handlers moved
  // those files): not while shutting down, when the queues drain.
  if (!shutting_down_ && layout_open_) {
    ForEachSlot(true, [this](QueueSlot& q) {
      if (q.cfg->runs_handlers()) retry_requests_->Poll(*q.cfg, q.runner->keys());
    });
  }
}

void Daemon::PushRates() {
  if (!redis_->up()) return;
  ForEachSlot(true, [this](QueueSlot& q) {
    const auto& c = q.runner->counters();
    if (c.enqueued == q.rated_enqueued && c.done == q.rated_done && c.failed == q.rated_failed) {
      return;
    }
    redis_->Eval(RatesScript(), q.runner->keys().base(),
                 EncodeRates(c.enqueued - q.rated_enqueued, c.done - q.rated_done,
                             c.failed - q.rated_failed),
                 [](Result<Reply>) {});  // a count lost to a drop is only a dip in a chart
    q.rated_enqueued = c.enqueued;
    q.rated_done = c.done;
    q.rated_failed = c.failed;
  });
}

namespace {
// A queue's set-up made on the threadpool for a reload.
struct SetUpWork {
  uv_work_t req;
  QueueConfig q;
  std::string instance;
  Result<QueueSetup> setup = Error{Errc::kInvalid, "not set up"};
  std::function<void(SetUpWork*)> done;
};
}  // namespace

void Daemon::AddQueueLive(const QueueConfig& q, std::function<void(Status)> done) {
  auto* w = new SetUpWork{};
  w->req.data = w;
  w->q = q;
  w->instance = cfg_.instance;
  w->done = [this, done = std::move(done)](SetUpWork* work) {
    --setting_up_;
    if (shutting_down_) return;  // the set-up is dropped; nothing waits for it now
    Status s = OkStatus();
    if (!work->setup.ok()) {
      s = work->setup.error();
    } else {
      s = InstallQueue(work->q, std::move(*work->setup), true);
    }
    done(s);
    if (setting_up_ == 0 && std::exchange(reload_again_, false)) Reload();
  };
  ++setting_up_;
  const int rc = uv_queue_work(
      loop_.get(), &w->req,
      [](uv_work_t* req) {
        auto* work = static_cast<SetUpWork*>(req->data);
        work->setup = SetUpQueue(work->q, work->instance);
      },
      [](uv_work_t* req, int) {
        std::unique_ptr<SetUpWork> work(static_cast<SetUpWork*>(req->data));
        work->done(work.get());
      });
  if (rc < 0) {
    // Never expected (the request is well formed): set up on the loop instead.
    std::unique_ptr<SetUpWork> work(w);
    work->setup = SetUpQueue(work->q, work->instance);
    work->done(work.get());
  }
}

Status Daemon::InstallQueue(const QueueConfig& config, QueueSetup setup, bool live) {
  auto q = std::make_unique<QueueConfig>(config);
  std::unique_ptr<QueueRunner> r =
      QueueRunner::Create(cfg_, *q, &loop_, redis_.get(), std::move(setup));
  std::unique_ptr<QueueWatcher> w;  // none for role consume: another host watches
  if (q->watches()) {
    w = std::make_unique<QueueWatcher>(*q, &loop_, r.get());
    if (Status s = w->Watch(inotify_.get()); !s.ok()) {
      return Error{s.error().code, "queue " + q->name + ": " + s.error().what};
    }
  }
  QueueRunner* runner = r.get();
  if (metrics_) {
    runner->set_on_run(
        [m = metrics_.get(), name = q->name](double s) { m->ObserveDuration(name, s); });
  }
  auto slot = std::make_unique<QueueSlot>();
  slot->cfg = std::move(q);
  slot->runner = std::move(r);
  slot->watcher = std::move(w);
  queues_.push_back(std::move(slot));
  if (live) {
    SyncSubscriptions();
    runner->Start();
    if (redis_->up() && layout_open_) StartAddedQueue(runner);
    // Otherwise the check under way, or the next connect, brings it in.
  }
  return OkStatus();
}

void Daemon::RetireQueue(QueueSlot* q) {
  q->retiring = true;
  if (q->watcher) {
    q->watcher->Stop();
    TakeWatcherStats(q->watcher.get(), *q->runner);
    PushStats();
  }
  SyncSubscriptions();
  LogInfo("queue.stopping", {{"queue", q->cfg->name}, {"running", q->runner->running()}});
  q->runner->BeginDrain([this, q] { OnRetired(q); });
}

void Daemon::OnRetired(QueueSlot* p) {
  if (p->drained) return;
  p->drained = true;
  const std::string name = p->cfg->name;
  LogInfo("queue.stopped", {{"queue", name}});
  if (shutting_down_) {
    if (++drained_ == expected_drains_) FinishShutdown(false);
    return;
  }
  // One connection answers in order: once this PING's reply is in, no reply
  // to a command sent for the queue is left to come, and it can go.
  redis_->Command({"PING"}, [this, p, name](Result<Reply>) {
    loop_.Post([this, p, name] {
      auto it =
          std::find_if(queues_.begin(), queues_.end(), [p](const auto& q) { return q.get() == p; });
      if (it == queues_.end() || shutting_down_) return;  // the shutdown owns it now
      queues_.erase(it);
      auto next = start_after_drain_.find(name);
      if (next == start_after_drain_.end()) return;
      const QueueConfig q = next->second;
      start_after_drain_.erase(next);
      AddQueueLive(q, [this, name, workers = q.workers](Status s) {
        if (!s.ok()) {
          LogError("reload.queue_failed", {{"queue", name}, {"err", s.error().what}});
        } else {
          LogInfo("queue.restarted", {{"queue", name}, {"workers", workers}});
        }
        notifier_.Status(StatusLine());
      });
    });
  });
}

void Daemon::Reload() {
  if (shutting_down_) return;
  if (setting_up_ > 0) {
    // Queues of the last reload (or a restart) are being set up on the
    // threadpool: this one runs once they are in, against what they became.
    LogInfo("reload.deferred", {{"config", cfg_.path}, {"setting_up", setting_up_}});
    reload_again_ = true;
    return;
  }
  notifier_.Reloading("reloading " + cfg_.path);
  LogInfo("reload.begin", {{"config", cfg_.path}});
  const auto refuse = [&](const std::string& why) {
    LogError("reload.failed", {{"config", cfg_.path}, {"err", why}, {"kept", "running config"}});
    notifier_.Ready(StatusLine() + "; reload failed: " + why);
  };
  auto next = LoadConfig(cfg_.path);
  if (!next.ok()) return refuse(next.error().what);
  HideEnvFromHandlers(next->secret_env);
  if (next->has_secrets && !ProtectSecretsInMemory()) {
    return refuse(std::string("prctl(PR_SET_DUMPABLE): ") + std::strerror(errno));
  }
  std::string fixed;
  const auto need_restart = [&](bool changed, const char* key) {
    if (changed) fixed += (fixed.empty() ? "" : ", ") + std::string(key);
  };
  need_restart(!(next->redis == cfg_.redis), cfg_.redis.sentinel() ? "redis" : "redis.url");
  need_restart(next->redis_replica_wait != cfg_.redis_replica_wait, "redis.replica_wait");
  need_restart(next->prefix != cfg_.prefix, "redis.prefix");
  need_restart(next->instance != cfg_.instance, "instance");
  need_restart(next->heartbeat_ttl != cfg_.heartbeat_ttl, "heartbeat_ttl");
  need_restart(next->metrics_listen != cfg_.metrics_listen, "metrics.listen");
  if (!fixed.empty()) return refuse("changing " + fixed + " needs a restart");

  auto tally = std::make_shared<ReloadTally>();
  // Removed and changed queues drain first; a changed one starts again
  // (with its new config) once the old one is gone, so that one instance
  // never runs one queue twice.
  std::vector<QueueSlot*> retire;
  bool limits_changed = false;
  ForEachSlot(true, [&](QueueSlot& q) {
    const QueueConfig* want = next->FindQueue(q.cfg->name);
    if (want != nullptr && *want == *q.cfg) return;
    if (want != nullptr && want->SameButLimits(*q.cfg)) {
      // New limits apply where the queue runs: its runner, executor and
      // batches read them from this config.
      const int old_rate_max = q.cfg->rate_max;
      const int old_max_active = q.cfg->max_active;
      q.cfg->rate_max = want->rate_max;
      q.cfg->rate_per = want->rate_per;
      q.cfg->max_active = want->max_active;
      q.runner->LimitsChanged(old_rate_max, old_max_active);
      ++tally->changed;
      limits_changed = true;
      return;
    }
    if (want != nullptr) {
      start_after_drain_[q.cfg->name] = *want;
      ++tally->changed;
    } else {
      ++tally->removed;
    }
    retire.push_back(&q);
  });
  if (limits_changed) SyncSubscriptions();
  for (QueueSlot* q : retire) RetireQueue(q);
  for (auto it = start_after_drain_.begin(); it != start_after_drain_.end();) {
    const QueueConfig* want = next->FindQueue(it->first);  // a second reload meanwhile
    if (want == nullptr) {
      it = start_after_drain_.erase(it);
    } else {
      it->second = *want;
      ++it;
    }
  }
  std::vector<QueueConfig> to_add;
  for (const QueueConfig& q : next->queues) {
    bool running = false, draining = false;
    ForEachSlot(false, [&](QueueSlot& s) {
      if (s.cfg->name != q.name) return;
      (s.retiring ? draining : running) = true;
    });
    if (running || start_after_drain_.count(q.name) != 0) continue;
    // Removed by an earlier reload and still draining: it comes back once
    // that drain is over, never beside it.
    if (draining) {
      start_after_drain_[q.name] = q;
      ++tally->added;
      continue;
    }
    to_add.push_back(q);
  }
  cfg_.log_level = next->log_level;
  SetLogLevel(cfg_.log_level);
  cfg_.drain_timeout = next->drain_timeout;
  cfg_.queues = next->queues;
  // New queues are set up on the threadpool (a slow filesystem must not
  // stall the loop); the reload is done once every one of them is in.
  tally->left = to_add.size();
  if (to_add.empty()) {
    FinishReload(*tally);
    return;
  }
  for (const QueueConfig& q : to_add) {
    AddQueueLive(q, [this, tally, name = q.name](Status s) {
      if (s.ok()) {
        ++tally->added;
      } else {
        LogError("reload.queue_failed", {{"queue", name}, {"err", s.error().what}});
        ++tally->failed;
      }
      if (--tally->left == 0) FinishReload(*tally);
    });
  }
}

void Daemon::FinishReload(const ReloadTally& t) {
  if (shutting_down_) return;
  size_t live = 0;
  ForEachSlot(true, [&](QueueSlot&) { ++live; });
  LogInfo("reload.done", {{"config", cfg_.path},
                          {"added", t.added},
                          {"removed", t.removed},
                          {"changed", t.changed},
                          {"failed", t.failed},
                          {"queues", live + start_after_drain_.size()}});
  notifier_.Ready(StatusLine());
}

void Daemon::SyncMetrics() {
  if (!metrics_) return;
  metrics_->SetRedisConnected(redis_->up());
  const RedisConn::Stats rs = redis_->stats();
  metrics_->SyncRedis({.addr = redis_->Addr(),
                       .failovers = rs.failovers,
                       .down_ms = rs.down_ms,
                       .replica_waits = rs.replica_waits,
                       .replica_wait_misses = rs.replica_wait_misses});
  ForEachSlot(true, [this](QueueSlot& q) {
    const QueueRunner& r = *q.runner;
    const auto& c = r.counters();
    Metrics::QueueTotals t;
    t.enqueued = c.enqueued;
    t.done = c.done;
    t.failed = c.failed;
    t.retried = c.retries;
    t.interrupted = c.interrupted;
    t.skipped["vanished_or_replaced"] = c.skipped;
    t.anomalies["duplicate_claim"] = c.duplicate_claims;
    t.anomalies["bad_reply"] = c.bad_replies;
    t.anomalies["unconfirmed_claim"] = c.unconfirmed_claims;
    t.anomalies["lost_outcome"] = c.lost_outcomes;
    t.depth = static_cast<int64_t>(r.queued());
    t.holds["rate"] = c.held_rate;
    t.holds["active"] = c.held_active;
    t.holds["throttle"] = c.held_throttled;
    t.rate_limit = q.cfg->rate_max;
    t.rate_window_s = q.cfg->rate_max > 0 ? q.cfg->rate_per.count() / 1000.0 : 0;
    t.max_active = q.cfg->max_active;
    t.throttled = r.throttled();
    if (q.cfg->handler.kind == HandlerConfig::Kind::kServe) {
      const Executor::ProcessStats ps = r.processes();
      t.serve = true;
      t.serve_processes = ps.alive;
      t.serve_replaced = ps.replaced;
    }
    if (const QueueWatcher* w = q.watcher.get()) {
      t.seen = w->counters().seen;
      for (const auto& [reason, n] : w->TurnedAwayByReason()) t.skipped[reason] = n;
      t.dirs_by_scan = w->counters().dirs_by_scan;
      t.watch_errors = w->counters().watch_errors;
      t.watched_dirs = static_cast<int64_t>(w->watched_dirs());
      t.polled_dirs = static_cast<int64_t>(w->polled_dirs());
    }
    metrics_->Sync(q.cfg->name, t);
  });
}

void Daemon::OnQueueReady(QueueRunner* r) {
  if (shutting_down_) return;
  QueueSlot* q = SlotOf(r);
  if (q == nullptr || q->retiring) return;  // retired by a reload meanwhile
  // The first time: the start-up scan. Later: only if files arrived while
  // Redis was away (their events could not become jobs).
  const bool rescan = r->TakeRescanNeeded();
  const bool first = !std::exchange(q->scanned, true);
  if (!q->watcher) {
    if (first) LogInfo("queue.consuming", {{"queue", r->config().name}});  // role consume
  } else if (first || rescan) {
    q->watcher->Rescan();
  }
}

int Daemon::Run() {
  started_ms_ = NowUnixMs();
  auto lock = InstanceLock::Acquire(cfg_);
  if (!lock.ok()) {
    LogError("dropqd.start_failed", {{"err", lock.error().what}});
    return 1;
  }
  lock_ = std::move(*lock);
  // Holding the lock proves that no other dropqd of this instance lives on
  // this host: every handler that carries our instance name is an orphan of
  // a predecessor that was killed. Kill them before their jobs are requeued,
  // so that two runs of one job never overlap.
  // Handlers inherit dropqd's environment: this marks them as this namespace's.
  const std::string ns = NamespaceOf(cfg_.redis.Identity(), cfg_.prefix);
  setenv("DROPQ_NAMESPACE", ns.c_str(), 1);
  if (const auto orphans = FindOrphans(cfg_.instance, ns); !orphans.empty()) {
    LogWarn("orphans.found", {{"instance", cfg_.instance}, {"count", orphans.size()}});
    KillOrphans(orphans);
  }
  if (Status s = Setup(); !s.ok()) {
    LogError("dropqd.start_failed", {{"err", s.error().what}});
    // A setting the host contradicts (a processing_dir of another user's)
    // will not fix itself by a restart: EX_CONFIG, which systemd does not retry.
    return s.error().code == Errc::kInvalid ? 78 : 1;
  }
  LogInfo("dropqd.start", {{"version", DROPQ_VERSION},
                           {"instance", cfg_.instance},
                           {"queues", cfg_.queues.size()},
                           {"redis", cfg_.redis.Display()},
                           {"pid", static_cast<int64_t>(getpid())}});
  // Every watch is in place: from now on an arriving file is safe on disk,
  // whether or not Redis is reachable yet.
  notifier_.StartWatchdog();
  notifier_.Ready(StatusLine());
  redis_->Start();
  if (sentinel_watch_) sentinel_watch_->Start();
  loop_.Run();
  uint64_t done = 0, failed = 0, acked = 0, trips = 0;
  ForEachSlot(false, [&](QueueSlot& q) {
    const auto& c = q.runner->counters();
    done += c.done;
    failed += c.failed;
    acked += c.acked;
    trips += c.round_trips;
  });
  LogInfo("dropqd.exit", {{"status", exit_code_},
                          {"done", done},
                          {"failed", failed},
                          {"redis_commands", redis_->commands_sent()},
                          {"redis_flushes", redis_->flushes()},
                          {"jobs_acked", acked},
                          {"job_round_trips", trips}});
  return exit_code_;
}

void Daemon::OnRedisUp() {
  if (shutting_down_) return;
  layout_open_ = false;
  membership_->Heartbeat();
  RefreshStatus();
  CheckLayout();
}

// The key bases of every queue, running or draining (draining queues hold
// outcomes to resend: they are checked too).
std::vector<std::string> Daemon::QueueBases() {
  std::vector<std::string> bases;
  ForEachSlot(false, [&](QueueSlot& q) { bases.push_back(q.runner->keys().base()); });
  return bases;
}

void Daemon::CheckLayout() {
  layout_retry_due_ms_ = 0;
  std::vector<std::string> bases = QueueBases();
  gate_->Check(bases, [this, bases](LayoutGate::Verdict v, const std::string& why) {
    if (shutting_down_ || layout_open_ || !redis_->up()) return;
    switch (v) {
      case LayoutGate::Verdict::kOpen: {
        if (QueueBases() != bases) {  // a reload changed the queues meanwhile: check those too
          CheckLayout();
          return;
        }
        layout_open_ = true;
        StartQueues();
        return;
      }
      case LayoutGate::Verdict::kRefused:
        LogError("redis.layout_refused", {{"err", why}});
        exit_code_ = 76;  // EX_PROTOCOL: systemd restarts dropqd, which checks again
        BeginShutdown();
        return;
      case LayoutGate::Verdict::kRetry:
        LogWarn("redis.layout_check_failed", {{"err", why}});
        layout_retry_due_ms_ = MonoMs() + 1000;
        return;
    }
  });
}

void Daemon::StartQueues() {
  ForEachSlot(false, [this](QueueSlot& q) {
    QueueRunner* runner = q.runner.get();
    if (q.retiring) {
      runner->OnRedisUp([] {});  // a draining queue resends what it holds; nothing to scan
    } else {
      runner->OnRedisUp([this, runner] { OnQueueReady(runner); });
    }
  });
}

void Daemon::StartAddedQueue(QueueRunner* runner) {
  gate_->Check({runner->keys().base()},
               [this, runner](LayoutGate::Verdict v, const std::string& why) {
                 // The queue may have been removed again by another reload meanwhile.
                 const QueueSlot* q = SlotOf(runner);
                 const bool live = q != nullptr && !q->retiring;
                 if (shutting_down_ || !layout_open_ || !redis_->up() || !live) return;
                 if (v == LayoutGate::Verdict::kOpen) {
                   runner->OnRedisUp([this, runner] { OnQueueReady(runner); });
                   return;
                 }
                 // Refused (a later layout) or not answered: the whole check runs again,
                 // and refuses or retries as at a connect.
                 LogWarn("redis.layout_check_failed", {{"err", why}});
                 layout_open_ = false;
                 CheckLayout();
               });
}

void Daemon::TakeWatcherStats(QueueWatcher* w, const QueueRunner& runner) {
  std::map<std::string, uint64_t>& add = unpushed_stats_[runner.keys().Counts()];
  for (const auto& [field, n] : w->TakeStatDeltas()) add[field] += n;
}

void Daemon::SyncSubscriptions() {
  std::set<std::string> want;
  ForEachSlot(true, [&](QueueSlot& q) {
    if (q.cfg->max_active > 0) want.insert(q.runner->keys().Freed());
  });
  if (want == freed_channels_) return;
  // Ends the max_active hold of the live queues whose channel is `channel`
  // (every such queue when empty).
  const auto wake = [this](const std::string& channel) {
    ForEachSlot(true, [&](QueueSlot& q) {
      if (q.cfg->max_active > 0 && (channel.empty() || q.runner->keys().Freed() == channel)) {
        q.runner->SlotsFreed();
      }
    });
  };
  if (!notices_) {
    RedisConn::Hooks hooks;
    hooks.up = [wake] { wake(""); };  // messages may have been missed meanwhile
    hooks.log_name = "redis_notices";
    notices_ = std::make_unique<RedisConn>(&loop_, cfg_.redis, std::move(hooks));
    notices_->Start();
  }
  for (const std::string& channel : freed_channels_) {
    if (want.count(channel) == 0) notices_->Unsubscribe(channel);
  }
  for (const std::string& channel : want) {
    if (freed_channels_.count(channel) == 0) {
      notices_->Subscribe(channel, [wake, channel](const std::string&) { wake(channel); });
    }
  }
  freed_channels_ = std::move(want);
}

void Daemon::PushStats() {
  if (!redis_->up()) return;  // kept for the next push
  for (const auto& [key, fields] : unpushed_stats_) {
    for (const auto& [field, n] : fields) {
      redis_->Command({"HINCRBY", key, field, std::to_string(n)}, [key = key, field = field,
                                                                   n = n](Result<Reply> r) {
        // No answer (the connection dropped meanwhile): Redis may
        // have added it or not. It is not sent again, so a count
        // is never added twice; it may be lost.
        if (r.ok() && r->is_error()) {
          // A stats hash edited into something else.
          LogWarn("stats.refused", {{"key", key}, {"field", field}, {"count", n}, {"err", r->str}});
        }
      });
    }
  }
  unpushed_stats_.clear();
}

void Daemon::RescanRefused() {
  // Files whose ENQUEUE Redis refused while it was up (a key of the wrong
  // type) are still on disk: look again, at most every 10 s, until the
  // key is fixed. With Redis down, OnRedisUp() rescans once it is back.
  constexpr int64_t kEveryMs = 10000;
  if (shutting_down_ || !redis_->up() || MonoMs() < rescan_refused_due_ms_) return;
  ForEachSlot(true, [this](QueueSlot& q) {
    if (q.watcher && q.runner->ready() && q.runner->TakeRescanNeeded()) {
      LogInfo("scan.retry", {{"queue", q.cfg->name}});
      q.watcher->Rescan();
      rescan_refused_due_ms_ = MonoMs() + kEveryMs;
    }
  });
}

void Daemon::RefreshStatus() {
  if (!redis_->up() || shutting_down_) {
    notifier_.Status(StatusLine(), true);
    return;
  }
  // The summary line goes with this round if one is due (every kTickMs; the
  // tick comes at most that often, so a little early counts).
  const int64_t now = MonoMs();
  if (now - last_summary_ms_ >= static_cast<int64_t>(kTickMs) - 250) {
    summary_elapsed_ms_ = now - std::exchange(last_summary_ms_, now);
  }
  std::vector<StatusReporter::QueueRef> refs;
  ForEachSlot(true, [&](QueueSlot& q) {
    const QueueKeys& k = q.runner->keys();
    refs.push_back({q.cfg->name, k.Pending(), k.Active(), k.Scheduled()});
  });
  status_->Fetch(refs);
}

void Daemon::OnCounts(const std::map<std::string, StatusReporter::Counts>& counts) {
  ForEachSlot(true, [&](QueueSlot& q) {
    const auto it = counts.find(q.cfg->name);
    if (it == counts.end()) return;  // added by a reload during the round
    q.counts = it->second;
    if (metrics_) {
      metrics_->SetRedisCounts(q.cfg->name, q.counts.pending, q.counts.active, q.counts.scheduled);
    }
  });
  notifier_.Status(StatusLine(), true);
  // The summary: at info, a busy queue gets one line every few seconds, not
  // one per file; an idle queue stays quiet.
  const int64_t elapsed_ms = std::exchange(summary_elapsed_ms_, 0);
  if (elapsed_ms <= 0) return;
  ForEachSlot(true, [&](QueueSlot& q) {
    const QueueRunner& r = *q.runner;
    const auto& c = r.counters();
    const uint64_t total = c.done + c.failed;
    if (total == q.last_done && r.held() == 0) return;
    const uint64_t per_s = (total - q.last_done) * 1000 / static_cast<uint64_t>(elapsed_ms);
    q.last_done = total;
    LogInfo("queue.summary", {{"queue", q.cfg->name},
                              {"done", c.done},
                              {"failed", c.failed},
                              {"pending", q.counts.pending},
                              {"running", r.running()},
                              {"held", r.held()},
                              {"per_s", per_s}});
  });
}

void Daemon::CheckSentinelTiming(const PrimaryFound& f) {
  // Fencing against failover: a dead primary goes unnoticed for
  // down-after-milliseconds, then the promotion and our rediscovery take a
  // few seconds more (kFailoverMs), and the last renewal may already be a
  // third of the TTL old. Past heartbeat_ttl without one, this instance
  // fences itself and stops its handlers: every failover would cost them.
  constexpr int64_t kFailoverMs = 3000;
  if (f.down_after_ms < 0 || f.down_after_ms == warned_down_after_ms_) return;
  const int64_t want = (f.down_after_ms + kFailoverMs) * 3 / 2;
  if (cfg_.heartbeat_ttl.count() > want) return;
  warned_down_after_ms_ = f.down_after_ms;
  LogWarn("redis.sentinel_timing", {{"sentinel", f.named_by},
                                    {"down_after_ms", f.down_after_ms},
                                    {"heartbeat_ttl_ms", cfg_.heartbeat_ttl.count()},
                                    {"want_heartbeat_ttl_ms_over", want},
                                    {"why", "a failover would fence this instance"}});
}

std::string Daemon::StatusLine() {
  size_t active = 0, n = 0;
  int64_t pending = 0;
  bool pending_known = true;
  ForEachSlot(true, [&](QueueSlot& q) {
    ++n;
    active += q.runner->running();
    if (q.counts.pending >= 0) {
      pending += q.counts.pending;
    } else {
      pending_known = false;
    }
  });
  std::string s = std::to_string(n) + (n == 1 ? " queue" : " queues");
  if (shutting_down_) return "draining " + s + ", " + std::to_string(active) + " active";
  if (!redis_->up()) {
    return s + " watched, " + std::to_string(active) + " active, waiting for redis at " +
           cfg_.redis.Display();
  }
  if (pending_known) s += ", " + std::to_string(pending) + " pending";
  s += ", " + std::to_string(active) + " active, redis ok";
  // With Sentinel, which server is primary now.
  if (cfg_.redis.sentinel()) s += " (primary " + redis_->Addr() + ")";
  if (membership_->fenced()) s += " (fenced: heartbeat lapsed)";
  return s;
}

void Daemon::OnSignal(int signum) {
  if (shutting_down_) {
    // The operator insists. Everything acknowledged is in Redis already;
    // jobs held here stay active under this instance and are requeued when
    // it starts again.
    LogWarn("shutdown.forced", {{"signal", signum}});
    _exit(128 + signum);
  }
  LogInfo("shutdown.begin", {{"signal", signum}, {"drain_timeout_ms", cfg_.drain_timeout.count()}});
  BeginShutdown();
}

void Daemon::BeginShutdown() {
  shutting_down_ = true;
  notifier_.Stopping(StatusLine());
  inotify_->Stop();
  ForEachSlot(true, [this](QueueSlot& q) {
    if (!q.watcher) return;
    q.watcher->Stop();
    TakeWatcherStats(q.watcher.get(), *q.runner);
  });
  PushStats();
  uv_timer_start(
      drain_timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<Daemon*>(t->data);
        size_t running = 0;
        self->ForEachSlot(false, [&](QueueSlot& q) { running += q.runner->running(); });
        LogWarn("shutdown.drain_timeout", {{"killing", running}});
        self->ForEachSlot(false, [](QueueSlot& q) { q.runner->KillRunning(); });
        uv_timer_start(
            t, [](uv_timer_t* t2) { static_cast<Daemon*>(t2->data)->FinishShutdown(true); },
            kFinalGraceMs, 0);
      },
      static_cast<uint64_t>(cfg_.drain_timeout.count()), 0);
  // Queues a reload stopped and that are still draining count too; changed
  // queues waiting to start again never will.
  start_after_drain_.clear();
  expected_drains_ = 0;
  ForEachSlot(false, [this](QueueSlot& q) { expected_drains_ += q.drained ? 0 : 1; });
  if (expected_drains_ == 0) {
    FinishShutdown(false);
    return;
  }
  // Retiring queues drain already; OnRetired() counts them.
  ForEachSlot(true, [this](QueueSlot& q) {
    q.runner->BeginDrain([this] {
      if (++drained_ == expected_drains_) FinishShutdown(false);
    });
  });
}

void Daemon::FinishShutdown(bool forced) {
  if (finished_) return;
  finished_ = true;
  if (forced) {
    size_t held = 0;
    ForEachSlot(false, [&](QueueSlot& q) { held += q.runner->held(); });
    // Redis did not take every outcome in time (down, or a handler that
    // would not die). Those jobs stay active under this instance in Redis
    // and go back to pending when it starts again: nothing is lost.
    LogError("shutdown.incomplete", {{"unrecorded_jobs", held}});
    _exit(1);
  }
  LogInfo("shutdown.done");
  notifier_.StopWatchdog();
  test_block_.Reset();
  sigint_.Reset();
  sigterm_.Reset();
  sighup_.Reset();
  metrics_timer_.Reset();
  flush_.Reset();
  tick_.Reset();
  drain_timer_.Reset();
  loop_.CloseWakeup();
  if (notices_) notices_->Stop();
  sentinel_watch_.reset();  // what it would announce no longer matters
  redis_->Stop();           // disconnects once the last replies are in; then the loop ends
}

}  // namespace dropq
