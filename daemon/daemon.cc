#include "daemon/daemon.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>

#include "common/check.h"
#include "common/clock.h"
#include "common/log.h"
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
  watchers_.clear();
  runners_.clear();
  retiring_.clear();
  inotify_.reset();
  redis_.reset();
}

Status Daemon::Setup() {
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe is an error value, not a death
  uv_loop_t* l = loop_.get();

  RedisConn::Hooks hooks;
  hooks.up = [this] { OnRedisUp(); };
  hooks.down = [this] { notifier_.Status(StatusLine()); };
  redis_ = std::make_unique<RedisConn>(&loop_, cfg_.redis, std::move(hooks));
  gate_ = std::make_unique<LayoutGate>(&loop_, redis_.get(), cfg_.prefix, cfg_.instance);

  auto in = Inotify::Create(&loop_, [this] {
    for (auto& w : watchers_) {
      if (w) w->Rescan();  // events were lost: look at everything again
    }
  });
  if (!in.ok()) return in.error();
  inotify_ = std::move(*in);
  // Read events only as fast as Redis takes the jobs they make: a burst
  // then waits in the kernel's queue, and dropqd's memory stays flat.
  inotify_->SetGate([this] {
    for (auto& r : runners_) {
      if (r->enqueue_behind()) return false;
    }
    return true;
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
    if (Status s = AddQueue(q, false); !s.ok()) return s;
  }
  heartbeat_ok_ms_ = MonoMs();
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
    for (auto& r : self->runners_) r->Flush();
    for (auto& q : self->retiring_) q->runner->Flush();
    for (auto& w : self->watchers_) {
      if (w) w->Tick();
    }
    self->inotify_->MaybeResume();
  });

  tick_ = MakeTimer(l, this);
  // The heartbeat is renewed three times per TTL, so one lost renewal is harmless.
  const uint64_t tick =
      std::min<uint64_t>(kTickMs, static_cast<uint64_t>(cfg_.heartbeat_ttl.count()) / 3);
  uv_timer_start(
      tick_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<Daemon*>(t->data);
        self->Heartbeat();
        if (self->layout_retry_due_ms_ != 0 && MonoMs() >= self->layout_retry_due_ms_) {
          self->CheckLayout();
        }
        self->CheckFence();
        self->Reap();
        self->RescanRefused();
        self->Summary();
        self->RefreshStatus();
        for (size_t i = 0; i < self->runners_.size(); ++i) {
          if (self->watchers_[i])
            self->TakeWatcherStats(self->watchers_[i].get(), *self->runners_[i]);
        }
        self->PushStats();
      },
      tick, tick);
  drain_timer_ = MakeTimer(l, this);

  for (auto& r : runners_) r->Start();
  return OkStatus();
}

Status Daemon::AddQueue(const QueueConfig& config, bool live) {
  auto q = std::make_unique<QueueConfig>(config);
  auto r = QueueRunner::Create(cfg_, *q, &loop_, redis_.get());
  if (!r.ok()) return Error{r.error().code, "queue " + q->name + ": " + r.error().what};
  std::unique_ptr<QueueWatcher> w;  // none for role consume: another host watches
  if (q->watches()) {
    w = std::make_unique<QueueWatcher>(*q, &loop_, r->get());
    if (Status s = w->Watch(inotify_.get()); !s.ok()) {
      return Error{s.error().code, "queue " + q->name + ": " + s.error().what};
    }
  }
  QueueRunner* runner = r->get();
  if (metrics_) {
    runner->set_on_run(
        [m = metrics_.get(), name = q->name](double s) { m->ObserveDuration(name, s); });
  }
  runners_.push_back(std::move(*r));
  watchers_.push_back(std::move(w));
  queue_cfgs_.push_back(std::move(q));
  last_done_.push_back(0);
  pending_.push_back(-1);
  if (live) {
    runner->Start();
    if (redis_->up() && layout_open_) StartAddedQueue(runner);
    // Otherwise the check under way, or the next connect, brings it in.
  }
  return OkStatus();
}

void Daemon::RetireQueue(size_t i) {
  auto q = std::make_unique<Retiring>();
  q->cfg = std::move(queue_cfgs_[i]);
  q->runner = std::move(runners_[i]);
  q->watcher = std::move(watchers_[i]);
  const auto at = [i](auto& v) { v.erase(v.begin() + static_cast<std::ptrdiff_t>(i)); };
  at(queue_cfgs_);
  at(runners_);
  at(watchers_);
  at(last_done_);
  at(pending_);
  scanned_.erase(q->runner.get());
  if (q->watcher) {
    q->watcher->Stop();
    TakeWatcherStats(q->watcher.get(), *q->runner);
    PushStats();
  }
  LogInfo("queue.stopping", {{"queue", q->cfg->name}, {"running", q->runner->running()}});
  Retiring* p = q.get();
  retiring_.push_back(std::move(q));
  p->runner->BeginDrain([this, p] { OnRetired(p); });
}

void Daemon::OnRetired(Retiring* p) {
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
      auto it = std::find_if(retiring_.begin(), retiring_.end(),
                             [p](const auto& q) { return q.get() == p; });
      if (it == retiring_.end() || shutting_down_) return;  // the shutdown owns it now
      retiring_.erase(it);
      auto next = start_after_drain_.find(name);
      if (next == start_after_drain_.end()) return;
      const QueueConfig q = next->second;
      start_after_drain_.erase(next);
      if (Status s = AddQueue(q, true); !s.ok()) {
        LogError("reload.queue_failed", {{"queue", name}, {"err", s.error().what}});
      } else {
        LogInfo("queue.restarted", {{"queue", name}, {"workers", q.workers}});
      }
      notifier_.Status(StatusLine());
    });
  });
}

void Daemon::Reload() {
  if (shutting_down_) return;
  notifier_.Reloading("reloading " + cfg_.path);
  LogInfo("reload.begin", {{"config", cfg_.path}});
  const auto refuse = [&](const std::string& why) {
    LogError("reload.failed", {{"config", cfg_.path}, {"err", why}, {"kept", "running config"}});
    notifier_.Ready(StatusLine() + "; reload failed: " + why);
  };
  auto next = LoadConfig(cfg_.path);
  if (!next.ok()) return refuse(next.error().what);
  std::string fixed;
  const auto need_restart = [&](bool changed, const char* key) {
    if (changed) fixed += (fixed.empty() ? "" : ", ") + std::string(key);
  };
  need_restart(!(next->redis == cfg_.redis), "redis.url");
  need_restart(next->prefix != cfg_.prefix, "redis.prefix");
  need_restart(next->instance != cfg_.instance, "instance");
  need_restart(next->heartbeat_ttl != cfg_.heartbeat_ttl, "heartbeat_ttl");
  need_restart(next->metrics_listen != cfg_.metrics_listen, "metrics.listen");
  if (!fixed.empty()) return refuse("changing " + fixed + " needs a restart");

  size_t removed = 0, changed = 0, added = 0, failed = 0;
  // Removed and changed queues drain first; a changed one starts again
  // (with its new config) once the old one is gone, so that one instance
  // never runs one queue twice.
  for (size_t i = runners_.size(); i-- > 0;) {
    const QueueConfig& cur = *queue_cfgs_[i];
    const QueueConfig* want = next->FindQueue(cur.name);
    if (want != nullptr && *want == cur) continue;
    if (want != nullptr) {
      start_after_drain_[cur.name] = *want;
      ++changed;
    } else {
      ++removed;
    }
    RetireQueue(i);
  }
  for (auto it = start_after_drain_.begin(); it != start_after_drain_.end();) {
    const QueueConfig* want = next->FindQueue(it->first);  // a second reload meanwhile
    if (want == nullptr) {
      it = start_after_drain_.erase(it);
    } else {
      it->second = *want;
      ++it;
    }
  }
  for (const QueueConfig& q : next->queues) {
    const bool running = std::any_of(queue_cfgs_.begin(), queue_cfgs_.end(),
                                     [&](const auto& c) { return c->name == q.name; });
    if (running || start_after_drain_.count(q.name) != 0) continue;
    // Removed by an earlier reload and still draining: it comes back once
    // that drain is over, never beside it.
    const bool draining = std::any_of(retiring_.begin(), retiring_.end(),
                                      [&](const auto& r) { return r->cfg->name == q.name; });
    if (draining) {
      start_after_drain_[q.name] = q;
      ++added;
      continue;
    }
    if (Status s = AddQueue(q, true); !s.ok()) {
      LogError("reload.queue_failed", {{"queue", q.name}, {"err", s.error().what}});
      ++failed;
      continue;
    }
    ++added;
  }
  cfg_.log_level = next->log_level;
  SetLogLevel(cfg_.log_level);
  cfg_.drain_timeout = next->drain_timeout;
  cfg_.queues = next->queues;
  LogInfo("reload.done", {{"config", cfg_.path},
                          {"added", added},
                          {"removed", removed},
                          {"changed", changed},
                          {"failed", failed},
                          {"queues", runners_.size() + start_after_drain_.size()}});
  notifier_.Ready(StatusLine());
}

void Daemon::SyncMetrics() {
  if (!metrics_) return;
  metrics_->SetRedisConnected(redis_->up());
  for (size_t i = 0; i < runners_.size(); ++i) {
    const QueueRunner& r = *runners_[i];
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
    t.anomalies["lost_outcome"] = c.lost_outcomes;
    t.depth = static_cast<int64_t>(r.queued());
    if (const QueueWatcher* w = watchers_[i].get()) {
      t.seen = w->counters().seen;
      for (const auto& [reason, n] : w->TurnedAwayByReason()) t.skipped[reason] = n;
    }
    const std::string name = r.config().name;
    metrics_->Sync(name, t);
    if (!redis_->up()) continue;
    // Counts of the whole queue, every instance's jobs included.
    const QueueKeys& k = r.keys();
    for (const auto& [cmd, key, which] :
         {std::tuple{"LLEN", k.Pending(), 0}, std::tuple{"ZCARD", k.Active(), 1},
          std::tuple{"ZCARD", k.Scheduled(), 2}}) {
      redis_->Command({cmd, key}, [m = metrics_.get(), name, which](Result<Reply> rep) {
        const int64_t n = rep.ok() && !rep->is_error() ? rep->AsInt(-1) : -1;
        m->SetRedisCounts(name, which == 0 ? n : -1, which == 1 ? n : -1, which == 2 ? n : -1);
      });
    }
  }
}

void Daemon::OnQueueReady(QueueRunner* r) {
  if (shutting_down_) return;
  const auto it =
      std::find_if(runners_.begin(), runners_.end(), [r](const auto& x) { return x.get() == r; });
  if (it == runners_.end()) return;  // retired by a reload meanwhile
  const size_t i = static_cast<size_t>(it - runners_.begin());
  // The first time: the start-up scan. Later: only if files arrived while
  // Redis was away (their events could not become jobs).
  const bool rescan = r->TakeRescanNeeded();
  const bool first = scanned_.insert(r).second;
  if (!watchers_[i]) {
    if (first) LogInfo("queue.consuming", {{"queue", r->config().name}});  // role consume
  } else if (first || rescan) {
    watchers_[i]->Rescan();
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
  const std::string ns = NamespaceOf(cfg_.redis.Display(), cfg_.prefix);
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
  loop_.Run();
  uint64_t done = 0, failed = 0, acked = 0, trips = 0;
  for (auto& r : runners_) {
    done += r->counters().done;
    failed += r->counters().failed;
    acked += r->counters().acked;
    trips += r->counters().round_trips;
  }
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
  Heartbeat();
  RefreshStatus();
  CheckLayout();
}

// The key bases of every queue, running or draining (draining queues hold
// outcomes to resend: they are checked too).
std::vector<std::string> Daemon::QueueBases() const {
  std::vector<std::string> bases;
  for (const auto& r : runners_) bases.push_back(r->keys().base());
  for (const auto& q : retiring_) bases.push_back(q->runner->keys().base());
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
  for (auto& r : runners_) {
    QueueRunner* runner = r.get();
    runner->OnRedisUp([this, runner] { OnQueueReady(runner); });
  }
  // Draining queues resend what they hold; nothing to scan.
  for (auto& q : retiring_) q->runner->OnRedisUp([] {});
}

void Daemon::StartAddedQueue(QueueRunner* runner) {
  gate_->Check(
      {runner->keys().base()}, [this, runner](LayoutGate::Verdict v, const std::string& why) {
        // The queue may have been removed again by another reload meanwhile.
        const bool live = std::any_of(runners_.begin(), runners_.end(),
                                      [runner](const auto& r) { return r.get() == runner; });
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

void Daemon::Heartbeat() {
  if (!redis_->up()) return;
  const std::string info =
      "{\"pid\":" + std::to_string(getpid()) + ",\"started_ms\":" + std::to_string(started_ms_) +
      ",\"version\":\"" DROPQ_VERSION "\",\"layout\":" + std::to_string(kLayout) + "}";
  redis_->Command({"SADD", InstancesKey(cfg_.prefix), cfg_.instance}, [](Result<Reply>) {});
  const int64_t sent_ms = MonoMs();
  redis_->Command({"SET", InstanceKey(cfg_.prefix, cfg_.instance), info, "PX",
                   std::to_string(cfg_.heartbeat_ttl.count())},
                  [this, sent_ms](Result<Reply> r) {
                    if (!r.ok() || r->is_error()) return;
                    heartbeat_ok_ms_ = std::max(heartbeat_ok_ms_, sent_ms);
                    if (std::exchange(fenced_, false)) LogInfo("instance.unfenced");
                  });
}

void Daemon::CheckFence() {
  // Past heartbeat_ttl without a renewal, another instance may already have
  // reclaimed our active jobs and be running them: stop ours, so that two
  // runs of one job never overlap. Their outcomes are not needed; the jobs
  // go back to pending (or already belong to someone else, and Redis refuses
  // whatever this instance says about them).
  if (fenced_ || shutting_down_) return;
  const int64_t silent_ms = MonoMs() - heartbeat_ok_ms_;
  if (silent_ms <= cfg_.heartbeat_ttl.count()) return;
  size_t held = 0;
  for (auto& r : runners_) held += r->held();
  if (held == 0) return;
  fenced_ = true;
  LogError("instance.fenced", {{"instance", cfg_.instance},
                               {"silent_ms", silent_ms},
                               {"heartbeat_ttl_ms", cfg_.heartbeat_ttl.count()},
                               {"held", held}});
  for (auto& r : runners_) r->Fence();
  // A connection that took no heartbeat for that long is not worth waiting
  // on (a reset or a cut the socket never reported): make a new one.
  redis_->Drop("no reply for " + std::to_string(silent_ms) + " ms");
}

void Daemon::Reap() {
  if (!redis_->up() || !layout_open_ || shutting_down_) return;
  // A random sample, not the whole registry: with N instances each looking
  // at every other one per tick, the checks would grow as N squared (1,000
  // hosts: 200,000 EXISTS/s). With a sample of kReapSample, an expired
  // instance is still looked at by about kReapSample instances per tick.
  constexpr int kReapSample = 16;
  std::vector<std::string> sample = {"SRANDMEMBER", InstancesKey(cfg_.prefix),
                                     std::to_string(kReapSample)};
  redis_->Command(std::move(sample), [this](Result<Reply> r) {
    if (!r.ok() || r->is_error() || shutting_down_) return;
    for (const Reply& e : r->elements) {
      std::string other = e.AsString();
      if (other == cfg_.instance || reaping_.count(other) != 0) continue;
      redis_->Command({"EXISTS", InstanceKey(cfg_.prefix, other)}, [this, other](Result<Reply> x) {
        // A live heartbeat, or no answer: leave it alone.
        if (!x.ok() || x->is_error() || x->AsInt() != 0) return;
        ReclaimFrom(other);
      });
    }
  });
}

namespace {
struct OrphanHunt {
  uv_work_t req;
  std::string instance, ns;
  std::function<void()> done;
};
}  // namespace

void Daemon::ReclaimFrom(const std::string& other) {
  if (shutting_down_ || !reaping_.insert(other).second) return;
  LogWarn("instance.expired",
          {{"instance", other}, {"heartbeat_ttl_ms", cfg_.heartbeat_ttl.count()}});
  // If it ran on this host, its orphaned handlers die before their jobs run
  // again elsewhere. Reading /proc blocks: the threadpool does it.
  auto* hunt = new OrphanHunt;
  hunt->req.data = hunt;
  hunt->instance = other;
  hunt->ns = NamespaceOf(cfg_.redis.Display(), cfg_.prefix);
  hunt->done = [this, other] {
    if (shutting_down_ || !redis_->up()) {
      reaping_.erase(other);
      return;
    }
    auto left = std::make_shared<size_t>(runners_.size());
    for (auto& r : runners_) {
      QueueRunner* runner = r.get();
      redis_->Eval(
          RequeueScript(), runner->keys().base(), {other},
          [this, runner, other, left](Result<Reply> rep) {
            if (rep.ok() && !rep->is_error() && !rep->elements.empty()) {
              LogWarn("jobs.reclaimed", {{"queue", runner->config().name},
                                         {"from", other},
                                         {"count", rep->elements.size()}});
            }
            if (--*left == 0) {
              // Done with it; if it comes back it registers again.
              redis_->Command({"SREM", InstancesKey(cfg_.prefix), other}, [](Result<Reply>) {});
              reaping_.erase(other);
            }
          });
    }
  };
  const int rc = uv_queue_work(
      loop_.get(), &hunt->req,
      [](uv_work_t* req) {
        auto* h = static_cast<OrphanHunt*>(req->data);
        KillOrphans(FindOrphans(h->instance, h->ns));
      },
      [](uv_work_t* req, int) {
        std::unique_ptr<OrphanHunt> h(static_cast<OrphanHunt*>(req->data));
        h->done();
      });
  if (rc < 0) {
    delete hunt;
    reaping_.erase(other);
  }
}

void Daemon::RescanRefused() {
  // Files whose ENQUEUE Redis refused while it was up (a key of the wrong
  // type) are still on disk: look again, at most every 10 s, until the
  // key is fixed. With Redis down, OnRedisUp() rescans once it is back.
  constexpr int64_t kEveryMs = 10000;
  if (shutting_down_ || !redis_->up() || MonoMs() < rescan_refused_due_ms_) return;
  for (size_t i = 0; i < runners_.size(); ++i) {
    if (watchers_[i] && runners_[i]->ready() && runners_[i]->TakeRescanNeeded()) {
      LogInfo("scan.retry", {{"queue", runners_[i]->config().name}});
      watchers_[i]->Rescan();
      rescan_refused_due_ms_ = MonoMs() + kEveryMs;
    }
  }
}

void Daemon::Summary() {
  // At info, a busy queue gets one line every few seconds, not one per file.
  const int64_t now = MonoMs();
  if (now - last_summary_ms_ < static_cast<int64_t>(kTickMs)) return;
  const int64_t elapsed_ms = now - std::exchange(last_summary_ms_, now);
  for (size_t i = 0; i < runners_.size(); ++i) {
    QueueRunner* r = runners_[i].get();
    const auto& c = r->counters();
    const uint64_t total = c.done + c.failed;
    if (total == last_done_[i] && r->held() == 0) continue;  // an idle queue stays quiet
    const uint64_t per_s = (total - last_done_[i]) * 1000 / static_cast<uint64_t>(elapsed_ms);
    last_done_[i] = total;
    if (!redis_->up()) continue;
    redis_->Command({"LLEN", r->keys().Pending()}, [r, per_s](Result<Reply> rep) {
      const auto& c = r->counters();
      LogInfo("queue.summary", {{"queue", r->config().name},
                                {"done", c.done},
                                {"failed", c.failed},
                                {"pending", rep.ok() ? rep->AsInt(-1) : -1},
                                {"running", r->running()},
                                {"held", r->held()},
                                {"per_s", per_s}});
    });
  }
}

std::string Daemon::StatusLine() const {
  size_t active = 0;
  int64_t pending = 0;
  bool pending_known = true;
  for (size_t i = 0; i < runners_.size(); ++i) {
    active += runners_[i]->running();
    if (i < pending_.size() && pending_[i] >= 0) {
      pending += pending_[i];
    } else {
      pending_known = false;
    }
  }
  const size_t n = runners_.size();
  std::string s = std::to_string(n) + (n == 1 ? " queue" : " queues");
  if (shutting_down_) return "draining " + s + ", " + std::to_string(active) + " active";
  if (!redis_->up()) {
    return s + " watched, " + std::to_string(active) + " active, waiting for redis at " +
           cfg_.redis.Display();
  }
  if (pending_known) s += ", " + std::to_string(pending) + " pending";
  s += ", " + std::to_string(active) + " active, redis ok";
  if (fenced_) s += " (fenced: heartbeat lapsed)";
  return s;
}

void Daemon::RefreshStatus() {
  if (!notifier_.under_systemd()) return;
  if (!redis_->up() || shutting_down_) {
    notifier_.Status(StatusLine(), true);
    return;
  }
  if (status_replies_ > 0) return;  // the last round is still out
  status_replies_ = static_cast<int>(runners_.size());
  for (auto& rr : runners_) {
    QueueRunner* runner = rr.get();
    redis_->Command({"LLEN", runner->keys().Pending()}, [this, runner](Result<Reply> r) {
      // A reload may have retired the queue meanwhile (it is then still
      // alive: retired queues go only after a later reply).
      for (size_t i = 0; i < runners_.size(); ++i) {
        if (runners_[i].get() == runner) pending_[i] = r.ok() && !r->is_error() ? r->AsInt(-1) : -1;
      }
      if (--status_replies_ == 0) notifier_.Status(StatusLine(), true);
    });
  }
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
  for (size_t i = 0; i < watchers_.size(); ++i) {
    if (!watchers_[i]) continue;
    watchers_[i]->Stop();
    TakeWatcherStats(watchers_[i].get(), *runners_[i]);
  }
  PushStats();
  uv_timer_start(
      drain_timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<Daemon*>(t->data);
        size_t running = 0;
        for (auto& r : self->runners_) running += r->running();
        for (auto& q : self->retiring_) running += q->runner->running();
        LogWarn("shutdown.drain_timeout", {{"killing", running}});
        for (auto& r : self->runners_) r->KillRunning();
        for (auto& q : self->retiring_) q->runner->KillRunning();
        uv_timer_start(
            t, [](uv_timer_t* t2) { static_cast<Daemon*>(t2->data)->FinishShutdown(true); },
            kFinalGraceMs, 0);
      },
      static_cast<uint64_t>(cfg_.drain_timeout.count()), 0);
  // Queues a reload stopped and that are still draining count too; changed
  // queues waiting to start again never will.
  start_after_drain_.clear();
  expected_drains_ = static_cast<int>(runners_.size());
  for (auto& q : retiring_) expected_drains_ += q->drained ? 0 : 1;
  if (expected_drains_ == 0) {
    FinishShutdown(false);
    return;
  }
  for (auto& r : runners_) {
    r->BeginDrain([this] {
      if (++drained_ == expected_drains_) FinishShutdown(false);
    });
  }
}

void Daemon::FinishShutdown(bool forced) {
  if (finished_) return;
  finished_ = true;
  if (forced) {
    size_t held = 0;
    for (auto& r : runners_) held += r->held();
    for (auto& q : retiring_) held += q->runner->held();
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
  redis_->Stop();  // disconnects once the last replies are in; then the loop ends
}

}  // namespace dropq
