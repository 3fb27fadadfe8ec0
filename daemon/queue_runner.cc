#include "daemon/queue_runner.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>

#include "common/check.h"
#include "common/clock.h"
#include "common/file_kind.h"
#include "common/job_id.h"
#include "common/log.h"
#include "daemon/pool_work.h"
#include "store/protocol.h"
#include "store/scripts.h"
#include "workers/disposition.h"
#include "workers/processing.h"

namespace dropq {
namespace {

constexpr size_t kMaxBatch = 256;            // jobs per script call
constexpr int kMaxClaim = 128;               // jobs per CLAIM call
constexpr uint64_t kIdlePollMs = 500;        // how often an idle queue looks for work
constexpr int64_t kReconcileRetryMs = 1000;  // after Redis refused the reconcile
// How often a queue looks for due retries when it knows of none (other
// instances schedule retries too).
constexpr int64_t kIdlePromoteMs = 2000;

// Makes `dir` (mode 0700) if it is missing, and checks it is a directory of
// this user's that nobody else can write: whoever could write it could swap
// a file between its check and its handler.
Status PrivateDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return IoError("processing_dir: mkdir " + dir, errno);
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return IoError("processing_dir: " + dir, errno);
  if (!S_ISDIR(st.st_mode)) {
    return Error{Errc::kInvalid, "processing_dir: " + dir + " is a " +
                                     std::string(FileKindName(st.st_mode)) + ", not a directory"};
  }
  if (st.st_uid != geteuid()) {
    return Error{Errc::kInvalid, "processing_dir: " + dir + " belongs to uid " +
                                     std::to_string(st.st_uid) + ", not to dropqd (uid " +
                                     std::to_string(geteuid()) + "): remove it or chown it"};
  }
  if ((st.st_mode & 0077) != 0 && chmod(dir.c_str(), 0700) != 0) {
    return IoError("processing_dir: chmod 700 " + dir, errno);
  }
  return OkStatus();
}

// Creates the queue's processing area "<processing_dir>/<queue>" and warns
// when uploaders could rename processing_dir away: it sits in a directory
// that others may write and that lacks the sticky bit.
Status PrepareProcessingArea(const QueueConfig& q) {
  const std::string& dir = q.processing_dir;
  if (dir.empty()) return OkStatus();
  if (Status s = PrivateDir(dir); !s.ok()) return s;
  if (Status s = PrivateDir(ProcessingArea(dir, q.name)); !s.ok()) return s;
  struct stat parent;
  const std::string up = dir.substr(0, dir.rfind('/'));
  if (stat(up.empty() ? "/" : up.c_str(), &parent) == 0 && (parent.st_mode & 0022) != 0 &&
      (parent.st_mode & S_ISVTX) == 0) {
    LogWarn("processing.unprotected",
            {{"queue", q.name},
             {"dir", dir},
             {"why", "others can write its parent, which lacks the sticky bit (chmod +t it)"}});
  }
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<QueueRunner>> QueueRunner::Create(const Config& cfg, const QueueConfig& q,
                                                         Loop* loop, RedisConn* redis) {
  auto handler = MakeHandler(q, cfg.instance);
  if (!handler.ok()) return handler.error();
  if (Status s = PrepareProcessingArea(q); !s.ok()) return s.error();
  return std::unique_ptr<QueueRunner>(new QueueRunner(cfg, q, loop, redis, std::move(*handler)));
}

QueueRunner::QueueRunner(const Config& cfg, const QueueConfig& q, Loop* loop, RedisConn* redis,
                         std::unique_ptr<Handler> handler)
    : cfg_(cfg),
      q_(q),
      loop_(loop),
      redis_(redis),
      keys_(cfg.prefix, q.name),
      area_(ProcessingArea(q.processing_dir, q.name)),
      spares_(area_.empty() || !q.runs_handlers()
                  ? nullptr
                  : std::make_shared<SpareDirs>(area_, cfg.instance,
                                                static_cast<size_t>(2 * q.workers + 2))),
      handler_(std::move(handler)),
      workers_(q.runs_handlers() ? q.workers : 0),
      queue_(static_cast<size_t>(q.capacity)),
      retry_(q.retry) {
  poll_timer_ = MakeTimer(loop_->get(), this);
  promote_timer_ = MakeTimer(loop_->get(), this);

  WorkerPool::Hooks hooks;
  // The hooks run on worker threads: they only Post() to the loop.
  hooks.started = [this](const Job& job) {
    loop_->Post([this, id = job.id, attempt = job.attempt] { OnStarted(id, attempt); });
  };
  hooks.finished = [this](Outcome&& o) {
    auto p = std::make_shared<Outcome>(std::move(o));
    loop_->Post([this, p] { OnFinished(std::move(*p)); });
  };
  hooks.exited = [this] { loop_->Post([this] { OnWorkerExited(); }); };
  // Blocking, once: spares an earlier run left go before any worker starts.
  if (spares_) spares_->Reset();
  pool_ = std::make_unique<WorkerPool>(q.watch, area_, workers_, &queue_, handler_.get(),
                                       std::move(hooks), spares_.get());
}

QueueRunner::~QueueRunner() {
  // Workers exit only on sentinels; BeginDrain() sent them. If the daemon
  // never started draining (an early error), send them now so Join returns.
  if (!draining_) queue_.PushStops(static_cast<size_t>(workers_));
  pool_.reset();
}

void QueueRunner::Start() {
  pool_->Start();
  uv_timer_start(
      poll_timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<QueueRunner*>(t->data);
        self->RetryReconcile();
        self->RetryDisposals();  // also while draining: those jobs are not done yet
        self->ResendRefused();
        self->pending_maybe_ = true;
        self->MaybeClaim();
        self->CheckPaused();
      },
      kIdlePollMs, kIdlePollMs);
}

void QueueRunner::SetPaused(bool paused) {
  if (paused == paused_) return;
  paused_ = paused;
  if (!paused) {
    LogInfo("queue.resumed", {{"queue", q_.name}});
    return;
  }
  // Jobs claimed but not started go back to the front of pending, where any
  // instance takes them once the queue is resumed; running ones finish.
  const size_t released = ReleaseQueued();
  LogInfo("queue.paused", {{"queue", q_.name}, {"released", released}, {"running", running_}});
}

size_t QueueRunner::ReleaseQueued() {
  const std::vector<Job> queued = queue_.DrainJobs();
  for (const Job& job : queued) QueueRelease(job.id, false);
  return queued.size();
}

void QueueRunner::CheckPaused() {
  // A claim finds the pause; with the in-memory queue full no claim is
  // sent, so jobs waiting there must not start unchecked.
  if (workers_ == 0 || queue_.size() == 0 || claim_inflight_ > 0 || !ready_ || draining_ ||
      !redis_->up()) {
    return;
  }
  redis_->Command({"EXISTS", keys_.Paused()}, [this](Result<Reply> r) {
    if (r.ok() && !r->is_error() && r->AsInt() == 1 && !draining_) SetPaused(true);
  });
}

// ---------------------------------------------------------------- enqueue

void QueueRunner::Enqueue(const std::string& name, const FileIdentity& ident) {
  if (draining_) return;
  if (!ready_) {
    // Redis is not reachable (or not reconciled yet): the file stays on disk
    // and the scan after reconnecting finds it.
    rescan_needed_ = true;
    return;
  }
  if (!enqueue_names_.insert(name).second) return;  // twice in one batch
  enqueue_batch_.push_back(EnqueueItem{NewJobId(), name, ident});
  if (enqueue_batch_.size() >= kMaxBatch) SendEnqueue();
}

void QueueRunner::SendEnqueue() {
  if (enqueue_batch_.empty()) return;
  std::vector<std::string> args = EncodeEnqueue(NowUnixMs(), enqueue_batch_);
  const size_t sent = enqueue_batch_.size();
  enqueue_batch_.clear();
  enqueue_names_.clear();
  ++enqueue_inflight_;
  redis_->Eval(EnqueueScript(), keys_.base(), std::move(args), [this, sent](Result<Reply> r) {
    --enqueue_inflight_;
    Result<uint64_t> taken = r.ok() ? DecodeEnqueue(*r, sent) : Result<uint64_t>(r.error());
    if (!taken.ok()) {
      LogWarn("enqueue.failed", {{"queue", q_.name}, {"err", taken.error().what}});
      rescan_needed_ = true;
      return;
    }
    const uint64_t n = *taken;
    counters_.enqueued += n;
    if (n > 0) {
      pending_maybe_ = true;
      MaybeClaim();
    }
  });
}

void QueueRunner::Forget(const std::string& name) {
  if (!ready_) return;  // a marker left behind costs a few bytes, never a lost file
  forget_batch_.push_back(name);
  if (forget_batch_.size() >= kMaxBatch) SendForgets();
}

void QueueRunner::SendForgets() {
  if (forget_batch_.empty()) return;
  redis_->Eval(ForgetScript(), keys_.base(), std::exchange(forget_batch_, {}),
               [](Result<Reply>) {});
}

void QueueRunner::SweepMarkers() {
  if (sweeping_ || !ready_ || draining_) return;
  sweeping_ = true;
  SweepPage("0");
}

void QueueRunner::SweepPage(std::string cursor) {
  redis_->Command({"HSCAN", keys_.Files(), cursor, "COUNT", "512"}, [this](Result<Reply> r) {
    if (!r.ok() || r->is_error() || r->elements.size() != 2 || draining_) {
      sweeping_ = false;
      return;
    }
    std::vector<std::string> kept;  // names whose marker says "handled and kept"
    const auto& kv = r->elements[1].elements;
    for (size_t i = 0; i + 1 < kv.size(); i += 2) {
      if (kv[i + 1].str.rfind('~', 0) == 0) kept.push_back(kv[i].str);
    }
    auto gone = std::make_shared<std::vector<std::string>>();
    const int rc = QueueWork(
        loop_->get(),
        [dir = q_.watch, kept = std::move(kept), gone] {  // threadpool
          struct stat st;
          for (const auto& n : kept) {
            if (lstat((dir + "/" + n).c_str(), &st) != 0 && errno == ENOENT) gone->push_back(n);
          }
        },
        [this, gone, next = r->elements[0].AsString()] {
          for (auto& name : *gone) Forget(name);
          if (next == "0" || draining_) {
            sweeping_ = false;
          } else {
            SweepPage(next);
          }
        });
    if (rc < 0) sweeping_ = false;
  });
}

void QueueRunner::SweepProcessing() {
  if (area_.empty() || sweeping_processing_ || !ready_ || draining_) return;
  sweeping_processing_ = true;
  // 1. (threadpool) the job directories in the processing area...
  auto ids = std::make_shared<std::vector<std::string>>();
  const int rc = QueueWork(
      loop_->get(),
      [dir = area_, ids] {
        std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
        if (!d) return;
        while (const dirent* e = readdir(d.get())) {
          const std::string_view n = e->d_name;
          if (n != "." && n != ".." && IsJobId(n)) ids->emplace_back(n);
        }
      },
      [this, ids] {
        // 2. ...of jobs this instance does not hold...
        std::vector<std::string> args;
        for (auto& id : *ids) {
          if (held_.count(id) == 0) args.push_back(std::move(id));
        }
        // Many live jobs (retries waiting, other instances' runs): look at a
        // random part of them, so that every sweep can reach any orphan.
        constexpr size_t kMaxPerSweep = 4096;
        if (args.size() > kMaxPerSweep) {
          std::shuffle(args.begin(), args.end(), std::mt19937(std::random_device{}()));
          args.resize(kMaxPerSweep);
        }
        if (args.empty() || draining_ || !redis_->up()) {
          sweeping_processing_ = false;
          return;
        }
        redis_->Eval(StatesScript(), keys_.base(), args, [this, args](Result<Reply> r) {
          auto states =
              r.ok() ? DecodeStates(*r, args.size()) : Result<std::vector<std::string>>(r.error());
          if (!states.ok()) {
            LogWarn("processing.sweep_failed", {{"queue", q_.name}, {"err", states.error().what}});
            sweeping_processing_ = false;
            return;
          }
          // 3. ...that will not run again (record gone, or ended) give
          // their file back to the watched directory, where it is new.
          std::vector<std::string> orphans;
          for (size_t i = 0; i < args.size(); ++i) {
            const std::string& st = (*states)[i];
            if (held_.count(args[i]) == 0 && (st.empty() || st == "done" || st == "failed")) {
              orphans.push_back(args[i]);
            }
          }
          struct PutBackResult {
            std::string id;
            Result<std::vector<std::string>> moved{std::vector<std::string>()};
          };
          auto results = std::make_shared<std::vector<PutBackResult>>();
          const int rc2 = QueueWork(
              loop_->get(),
              [proc = area_, watch = q_.watch, orphans, results] {
                for (const auto& id : orphans) {
                  results->push_back({id, PutBack(JobDir(proc, id), watch, id)});
                }
              },
              [this, results] {
                sweeping_processing_ = false;
                for (const auto& [id, moved] : *results) {
                  if (!moved.ok()) {
                    LogError("processing.put_back_failed",
                             {{"queue", q_.name}, {"job", id}, {"err", moved.error().what}});
                    continue;
                  }
                  for (const auto& path : *moved) {
                    LogWarn("processing.put_back",
                            {{"queue", q_.name}, {"job", id}, {"path", path}});
                  }
                }
              });
          if (rc2 < 0) sweeping_processing_ = false;
        });
      });
  if (rc < 0) sweeping_processing_ = false;
}

// ---------------------------------------------------------------- claim

void QueueRunner::MaybeClaim() {
  if (workers_ == 0) return;  // role produce: other instances run the jobs
  if (!ready_ || draining_ || !redis_->up() || !pending_maybe_ || claim_inflight_ > 0) return;
  const int cap = q_.capacity;
  const int free_slots = cap - static_cast<int>(queue_.size());
  // Jobs past the queue (running, or waiting for Redis to take their
  // outcome) are bounded too, so a slow Redis cannot make memory grow.
  const int unacked_room = cap + 2 * workers_ - static_cast<int>(held_.size());
  const int ask = std::min({free_slots, unacked_room, kMaxClaim});
  if (ask <= 0) return;
  claim_inflight_ = ask;
  redis_->Eval(ClaimScript(), keys_.base(), EncodeClaim(NowUnixMs(), cfg_.instance, ask),
               [this, ask](Result<Reply> r) { OnClaimed(std::move(r), ask); });
}

void QueueRunner::OnClaimed(Result<Reply> r, int asked) {
  claim_inflight_ = 0;
  if (r.ok() && IsPausedReply(*r)) {
    SetPaused(true);
    return;  // the idle poll looks again
  }
  if (!r.ok() || r->is_error()) {
    LogWarn("claim.failed", {{"queue", q_.name}, {"err", r.ok() ? r->str : r.error().what}});
    return;  // the idle poll tries again; a claim that ran is reconciled after reconnect
  }
  auto claimed = DecodeClaim(*r);
  if (!claimed.ok()) {
    // Whatever the call took is active under this instance but held by
    // nobody: the reconcile gives it back to pending.
    ++counters_.bad_replies;
    LogError("claim.bad_reply", {{"queue", q_.name}, {"err", claimed.error().what}});
    OnRedisUp([] {});
    return;
  }
  SetPaused(false);
  for (ClaimedJob& c : *claimed) {
    if (c.kind == ClaimedJob::Kind::kCorrupt) {
      // CLAIM found a record it cannot use (no name, or not a hash) and set it aside.
      LogError("job.corrupt", {{"queue", q_.name}, {"job", c.job.id}});
      continue;
    }
    if (held_.count(c.job.id) != 0) {
      // Redis handed back a job this instance holds already: it lost a
      // write (a crash under everysec, a failover) and the job was pending
      // again. The one held here goes on; the copy is dropped.
      ++counters_.duplicate_claims;
      LogWarn("job.duplicate_claim", {{"queue", q_.name}, {"job", c.job.id}});
      continue;
    }
    Job job = std::move(c.job);
    job.queue = q_.name;
    Held& h = held_[job.id];
    h.job = job;
    h.stage = Stage::kQueued;
    if (c.kind == ClaimedJob::Kind::kInvalid) {
      // Its record was edited into something dropqd cannot act on safely
      // (a name with a slash, an identity that is not one): it ends failed
      // where an operator sees it, and no file is touched.
      LogError("job.corrupt", {{"queue", q_.name}, {"job", job.id}, {"err", c.problem}});
      QueueAck(h, AckAs::kFailed, "",
               {{"result", std::string(RunResultName(RunResult::kError))}, {"error", c.problem}});
      continue;
    }
    if (c.kind == ClaimedJob::Kind::kRedispose) {
      // Its run ended and its outcome was recorded, then its holder died
      // before the acknowledgement: only the disposition is left to do.
      LogInfo("job.redispose",
              {{"queue", q_.name}, {"job", job.id}, {"state", AckAsName(c.recorded)}});
      h.recovering = true;
      h.ack_as = c.recorded;
      h.outcome = std::make_unique<Outcome>();
      h.outcome->job = job;
      h.outcome->ident = c.processed;
      const Disposition& d = c.recorded == AckAs::kDone ? q_.on_success : q_.on_failure;
      if (d.kind == Disposition::Kind::kKeep) h.keep_marker = "~" + h.outcome->ident.ToString();
      StartDispose(job.id);
      continue;
    }
    if (draining_ || !queue_.TryPush(job)) {
      QueueRelease(h.job.id, false);  // shutdown began while the claim was in flight
    }
  }
  pending_maybe_ = claimed->size() == static_cast<size_t>(asked);
  if (pending_maybe_) MaybeClaim();
}

// ---------------------------------------------------------------- workers

void QueueRunner::OnStarted(const std::string& id, uint32_t attempt) {
  auto it = held_.find(id);
  if (it == held_.end()) return;
  it->second.stage = Stage::kRunning;
  it->second.job.attempt = attempt;
  ++running_;
  started_batch_.push_back({id, attempt});
  MaybeClaim();
}

void QueueRunner::OnFinished(Outcome&& o) {
  auto it = held_.find(o.job.id);
  if (it == held_.end()) {
    LogError("job.unknown", {{"queue", q_.name}, {"job", o.job.id}});
    return;
  }
  Held& h = it->second;
  if (h.stage == Stage::kRunning) --running_;
  h.job = o.job;
  const std::string path = q_.watch + "/" + o.job.name;

  if (o.result == RunResult::kInterrupted) {
    ++counters_.interrupted;
    LogInfo("job.interrupted", {{"queue", q_.name}, {"job", o.job.id}, {"path", path}});
    QueueRelease(o.job.id, true);
    MaybeClaim();
    return;
  }
  // A file that vanished or was replaced before its run is a counted skip:
  // nothing ran, nothing failed; the job ends done with that result.
  const bool skipped = o.result == RunResult::kVanished || o.result == RunResult::kReplaced;
  const bool ok = o.result == RunResult::kOk;
  const AckAs state = ok || skipped ? AckAs::kDone : AckAs::kFailed;
  if (!skipped && on_run_) on_run_(static_cast<double>(o.duration_ms) / 1000.0);
  if (ok) {
    if (LogEnabled(LogLevel::kDebug)) {  // spares the fields' strings on every job
      LogDebug("job.done", {{"queue", q_.name},
                            {"job", o.job.id},
                            {"path", path},
                            {"attempt", o.job.attempt},
                            {"ms", o.duration_ms}});
    }
  } else if (skipped) {
    LogWarn("job.skip", {{"queue", q_.name},
                         {"job", o.job.id},
                         {"path", path},
                         {"reason", RunResultName(o.result)}});
  } else {
    std::vector<LogField> f = {{"queue", q_.name},
                               {"job", o.job.id},
                               {"path", path},
                               {"attempt", o.job.attempt},
                               {"result", RunResultName(o.result)}};
    if (o.result == RunResult::kExit) f.emplace_back("exit", o.exit_code);
    if (o.signal != 0) f.emplace_back("signal", o.signal);
    f.emplace_back("ms", o.duration_ms);
    if (!o.error.empty()) f.emplace_back("err", o.error);
    LogList(LogLevel::kWarn, "job.failed", f);
  }
  if (!ok && !skipped) {
    const RetryDecision rd = retry_.Decide(o);
    o.job.failures = rd.failures;
    o.job.tempfails = rd.tempfails;
    h.job = o.job;
    if (rd.retry) {
      // The file stays where it is and keeps its name in :files; the job
      // waits in :scheduled and goes back to pending when it is due.
      LogInfo("job.retry", {{"queue", q_.name},
                            {"job", o.job.id},
                            {"path", path},
                            {"attempt", o.job.attempt},
                            {"failures", rd.failures},
                            {"delay_ms", rd.delay_ms}});
      Fields f = OutcomeFields(o);
      f.emplace_back("due", std::to_string(NowUnixMs() + rd.delay_ms));
      QueueAck(h, AckAs::kScheduled, "", std::move(f));
      ArmPromote(rd.delay_ms);
      MaybeClaim();
      return;
    }
  }
  const Disposition& d = ok ? q_.on_success : q_.on_failure;
  if (skipped) {
    h.skip = true;
    QueueAck(h, state, "", OutcomeFields(o));  // nothing of ours left to move
  } else if (d.kind == Disposition::Kind::kKeep && q_.processing_dir.empty()) {
    // The file stays: remember its identity so a restart does not redo it.
    QueueAck(h, state, "~" + o.ident.ToString(), OutcomeFields(o));
  } else {
    // The file moves (a kept one back from the processing area): the
    // outcome is recorded first, so a crash redoes only the move.
    h.ack_as = state;
    h.target = d.kind == Disposition::Kind::kMoveTo ? MoveTarget(d, o.job.name)
               : d.kind == Disposition::Kind::kKeep ? q_.watch + "/" + o.job.name
                                                    : "";
    if (d.kind == Disposition::Kind::kKeep) h.keep_marker = "~" + o.ident.ToString();
    h.outcome = std::make_unique<Outcome>(std::move(o));
    QueueRecord(h);
  }
  MaybeClaim();
}

void QueueRunner::OnWorkerExited() {
  if (++workers_exited_ == workers_) pool_->Join();
  CheckDrained();
}

// ---------------------------------------------------------------- record, dispose, ack

void QueueRunner::QueueRecord(Held& h) {
  h.stage = Stage::kRecording;
  record_ids_.push_back(h.job.id);
  if (record_ids_.size() >= kMaxBatch) SendRecords();
}

void QueueRunner::SendRecords() {
  if (record_ids_.empty()) return;
  std::vector<std::string> ids = std::exchange(record_ids_, {});
  std::vector<RecordItem> items;
  items.reserve(ids.size());
  for (const auto& id : ids) {
    const Held& h = held_.at(id);
    items.push_back(
        RecordItem{id, OutcomeFields(*h.outcome), h.ack_as, h.target, h.outcome->ident});
  }
  redis_->Eval(RecordScript(), keys_.base(), EncodeRecord(cfg_.instance, items),
               [this, ids = std::move(ids)](Result<Reply> r) {
                 auto taken =
                     r.ok() ? DecodeTaken(*r, ids.size()) : Result<std::vector<bool>>(r.error());
                 if (!taken.ok()) {
                   LogWarn("record.failed", {{"queue", q_.name}, {"err", taken.error().what}});
                 }
                 std::vector<std::string> recorded;
                 for (size_t i = 0; i < ids.size(); ++i) {
                   auto it = held_.find(ids[i]);
                   if (it == held_.end()) continue;
                   if (!taken.ok()) {
                     it->second.unsent = true;  // resent after the reconnect
                   } else if ((*taken)[i]) {
                     recorded.push_back(ids[i]);
                   } else {
                     // No longer ours: another instance took the job over. Its
                     // file is left alone, this late outcome discarded.
                     ++counters_.lost_outcomes;
                     LogWarn("job.fenced", {{"queue", q_.name}, {"job", ids[i]}});
                     held_.erase(it);
                   }
                 }
                 StartDisposals(recorded);
                 CheckDrained();
               });
}

void QueueRunner::StartDispose(const std::string& id) { StartDisposals({id}); }

void QueueRunner::StartDisposals(const std::vector<std::string>& ids) {
  // One threadpool item moves several files: each item costs two thread
  // wake-ups, which on a burst of small files weigh more than the renames.
  // Few enough per item that a slow one (a copy to another filesystem)
  // holds back only a handful of acknowledgements.
  constexpr size_t kPerItem = 8;
  struct Move {
    std::string id;
    Disposition d;
    std::string src;
    std::string name;
    DisposeOptions opt;
    Result<std::string> where{std::string()};
  };
  for (size_t first = 0; first < ids.size(); first += kPerItem) {
    auto moves = std::make_shared<std::vector<Move>>();
    for (size_t i = first; i < std::min(ids.size(), first + kPerItem); ++i) {
      const std::string& id = ids[i];
      Held& h = held_.at(id);
      h.stage = Stage::kDisposing;
      ++disposing_;
      Move m{id, h.ack_as == AckAs::kDone ? q_.on_success : q_.on_failure,
             WorkPath(q_.watch, area_, id, h.job.name), h.job.name, DisposeOptions{}};
      m.opt.ident = h.outcome->ident;
      if (m.src != q_.watch + "/" + h.job.name) m.opt.keep_dir = q_.watch;  // not in place
      m.opt.recovering = h.recovering;
      moves->push_back(std::move(m));
    }
    const int rc = QueueWork(
        loop_->get(),
        [moves, proc = area_, spares = spares_] {
          // threadpool: the blocking moves or unlinks
          for (Move& m : *moves) {
            m.where = Dispose(m.d, m.src, m.name, m.id, m.opt);
            if (!proc.empty() && (m.where.ok() || m.where.error().code == Errc::kVanished)) {
              RemoveJobDir(proc, m.id, spares.get());
            }
          }
        },
        [this, moves] {
          for (Move& m : *moves) OnDisposed(m.id, std::move(m.where));
        });
    if (rc < 0) {
      for (Move& m : *moves) {
        OnDisposed(m.id, Error{Errc::kIo, std::string("uv_queue_work: ") + uv_strerror(rc)});
      }
    }
  }
}

void QueueRunner::OnDisposed(const std::string& id, Result<std::string> where) {
  --disposing_;
  auto it = held_.find(id);
  if (it == held_.end()) return;
  Held& h = it->second;
  Fields f;
  const AckAs state = h.ack_as;
  std::string files_value;  // the file left the directory: forget its name
  if (where.ok()) {
    f.emplace_back("disposed_to", where->empty() ? "(deleted)" : *where);
    if (!h.keep_marker.empty()) {
      if (*where == q_.watch + "/" + h.job.name) {
        files_value = h.keep_marker;  // back under its name: not to be redone
      } else {
        // A new file took its name during the run; it has a job of its own,
        // and this one is back under another name, where it is seen as new.
        LogWarn("job.kept_renamed", {{"queue", q_.name}, {"job", id}, {"path", *where}});
      }
    }
  } else if (where.error().code == Errc::kVanished) {
    // Someone removed the file between the handler and its move.
    f.emplace_back("dispose_error", where.error().what);
  } else {
    // The file could not be moved or deleted (disk full, permissions...). It
    // stays where it is, the job stays active and is not done; the error is
    // recorded and the disposition tried again, backing off to once a minute.
    ++counters_.dispose_errors;
    ++h.dispose_failures;
    const int64_t delay_ms =
        std::min<int64_t>(60000, 1000LL << std::min(h.dispose_failures - 1, 6));
    h.dispose_due_ms = MonoMs() + delay_ms;
    dispose_waiting_.push_back(id);
    LogError("job.dispose_failed", {{"queue", q_.name},
                                    {"job", id},
                                    {"err", where.error().what},
                                    {"failures", h.dispose_failures},
                                    {"retry_ms", delay_ms}});
    // Only on a record this instance still owns (the script checks).
    redis_->Eval(DisposeFailedScript(), keys_.base(),
                 EncodeDisposeFailed(cfg_.instance, {{id, where.error().what, h.dispose_failures}}),
                 [](Result<Reply>) {});
    return;
  }
  QueueAck(h, state, files_value, std::move(f));
}

void QueueRunner::RetryDisposals() {
  if (dispose_waiting_.empty()) return;
  const int64_t now = MonoMs();
  std::vector<std::string> waiting = std::exchange(dispose_waiting_, {});
  std::vector<std::string> due;
  for (const std::string& id : waiting) {
    auto it = held_.find(id);
    if (it == held_.end()) continue;
    if (it->second.dispose_due_ms <= now) {
      due.push_back(id);
    } else {
      dispose_waiting_.push_back(id);
    }
  }
  StartDisposals(due);
}

void QueueRunner::QueueAck(Held& h, AckAs state, const std::string& files_value, Fields fields) {
  h.stage = Stage::kAcking;
  h.ack_as = state;
  h.ack = AckItem{h.job.id, state, files_value, std::move(fields)};
  ack_ids_.push_back(h.job.id);
  if (ack_ids_.size() >= kMaxBatch) SendAcks();
}

void QueueRunner::SendAcks() {
  // One ACK call in flight at a time: what finishes meanwhile waits for its
  // reply and goes out as one batch, so a burst costs a few round trips per
  // batch instead of one per job, and a quiet queue still acknowledges at once.
  if (ack_ids_.empty() || acks_inflight_) return;
  acks_inflight_ = true;
  std::vector<std::string> ids = std::exchange(ack_ids_, {});
  std::vector<AckItem> items;
  items.reserve(ids.size());
  for (const auto& id : ids) items.push_back(held_.at(id).ack);
  redis_->Eval(AckScript(), keys_.base(),
               EncodeAck(cfg_.instance, NowUnixMs(), q_.keep_done, q_.keep_failed, items),
               [this, ids = std::move(ids)](Result<Reply> r) {
                 acks_inflight_ = false;  // the next Flush() sends what collected meanwhile
                 auto taken =
                     r.ok() ? DecodeTaken(*r, ids.size()) : Result<std::vector<bool>>(r.error());
                 if (!taken.ok()) {
                   LogWarn("ack.failed", {{"queue", q_.name}, {"err", taken.error().what}});
                 }
                 for (size_t i = 0; i < ids.size(); ++i) {
                   auto it = held_.find(ids[i]);
                   if (it == held_.end()) continue;
                   if (!taken.ok()) {
                     it->second.unsent = true;
                     continue;
                   }
                   if ((*taken)[i]) {
                     const Held& h = it->second;
                     (h.skip                          ? counters_.skipped
                      : h.ack_as == AckAs::kDone      ? counters_.done
                      : h.ack_as == AckAs::kScheduled ? counters_.retries
                                                      : counters_.failed) += 1;
                   } else {
                     // Already acknowledged (a resend after a lost reply) or
                     // taken over by another instance.
                     LogDebug("ack.skipped", {{"queue", q_.name}, {"job", ids[i]}});
                   }
                   held_.erase(it);
                 }
                 CheckDrained();
                 MaybeClaim();
               });
}

// ---------------------------------------------------------------- release, started

void QueueRunner::QueueRelease(const std::string& id, bool interrupted) {
  Held& h = held_.at(id);
  h.stage = Stage::kReleasing;
  h.release_interrupted = interrupted;
  release_batch_.push_back(id);
}

void QueueRunner::SendReleases() {
  if (release_batch_.empty()) return;
  std::vector<std::string> ids = std::exchange(release_batch_, {});
  std::vector<ReleaseItem> items;
  items.reserve(ids.size());
  for (const auto& id : ids) items.push_back({id, held_.at(id).release_interrupted});
  redis_->Eval(ReleaseScript(), keys_.base(), EncodeRelease(cfg_.instance, items),
               [this, ids = std::move(ids)](Result<Reply> r) {
                 const bool sent = r.ok() && !r->is_error();
                 for (const auto& id : ids) {
                   auto it = held_.find(id);
                   if (it == held_.end()) continue;
                   if (sent) {
                     held_.erase(it);
                   } else {
                     it->second.unsent = true;
                   }
                 }
                 if (sent) pending_maybe_ = true;
                 CheckDrained();
               });
}

void QueueRunner::SendStarted() {
  if (started_batch_.empty() || started_inflight_) return;  // batched as SendAcks()
  started_inflight_ = true;
  std::vector<std::string> args =
      EncodeStarted(cfg_.instance, NowUnixMs(), std::exchange(started_batch_, {}));
  // Best effort: the outcome carries the attempt again, so a lost STARTED
  // only hides for a moment that the run began.
  redis_->Eval(StartedScript(), keys_.base(), std::move(args),
               [this](Result<Reply>) { started_inflight_ = false; });
}

void QueueRunner::Flush() {
  SendEnqueue();
  SendStarted();
  SendRecords();
  SendAcks();
  SendReleases();
  SendForgets();
}

// ---------------------------------------------------------------- reconnect, drain

void QueueRunner::Resend() {
  for (auto& [id, h] : held_) {
    if (!h.unsent) continue;
    h.unsent = false;
    if (h.stage == Stage::kRecording) record_ids_.push_back(id);
    if (h.stage == Stage::kAcking) ack_ids_.push_back(id);
    if (h.stage == Stage::kReleasing) release_batch_.push_back(id);
  }
  Flush();
}

void QueueRunner::ResendRefused() {
  // Redis is up but refused a call (a key of the wrong type in the queue's
  // namespace, a script error): try again, backing off to twice a minute,
  // until an operator fixes the key. A lost connection resends on its own.
  if (!ready_ || !redis_->up() || MonoMs() < resend_due_ms_) return;
  if (std::none_of(held_.begin(), held_.end(), [](const auto& kv) { return kv.second.unsent; })) {
    resend_backoff_ms_ = 1000;
    return;
  }
  resend_due_ms_ = MonoMs() + resend_backoff_ms_;
  resend_backoff_ms_ = std::min<int64_t>(resend_backoff_ms_ * 2, 30000);
  Resend();
}

void QueueRunner::OnRedisUp(std::function<void()> done) {
  ready_ = false;
  reconcile_due_ms_ = 0;  // a retry waiting for a refused reconcile is superseded
  // First the outcomes Redis has not confirmed, in the order they happened...
  Resend();
  // ...then every active job of this instance that it does not hold goes
  // back to pending (left over from a crash, or a claim whose reply was lost).
  std::vector<std::string> held;
  held.reserve(held_.size());
  for (const auto& [id, h] : held_) held.push_back(id);
  redis_->Eval(RequeueScript(), keys_.base(), EncodeRequeue(cfg_.instance, held),
               [this, done = std::move(done)](Result<Reply> r) {
                 auto ids = r.ok() ? DecodeIds(*r) : Result<std::vector<std::string>>(r.error());
                 if (!ids.ok()) {
                   LogWarn("requeue.failed", {{"queue", q_.name}, {"err", ids.error().what}});
                   // Connection lost: the reconnect reconciles again. Redis
                   // answered with an error (LOADING after a restart, a key
                   // of the wrong type): no reconnect is coming, so the idle
                   // poll tries again in a second.
                   if (r.ok()) {  // an answer, not a lost connection
                     reconcile_done_ = std::move(done);
                     reconcile_due_ms_ = MonoMs() + kReconcileRetryMs;
                   }
                   return;
                 }
                 if (!ids->empty()) {
                   LogInfo("job.requeued", {{"queue", q_.name}, {"count", ids->size()}});
                 }
                 ready_ = true;
                 pending_maybe_ = true;
                 MaybeClaim();
                 Promote();
                 done();
               });
}

void QueueRunner::RetryReconcile() {
  if (ready_ || draining_ || reconcile_due_ms_ == 0 || !redis_->up()) return;
  if (MonoMs() < reconcile_due_ms_) return;
  reconcile_due_ms_ = 0;
  OnRedisUp(std::exchange(reconcile_done_, nullptr));
}

void QueueRunner::Promote() {
  if (!ready_ || draining_) return;
  constexpr int kMaxPromote = 256;
  redis_->Eval(PromoteScript(), keys_.base(), EncodePromote(NowUnixMs(), kMaxPromote),
               [this](Result<Reply> r) {
                 if (draining_) return;
                 auto p = r.ok() ? DecodePromote(*r) : Result<Promoted>(r.error());
                 if (!p.ok()) {
                   ArmPromote(kIdlePromoteMs);  // Redis away: try again later
                   return;
                 }
                 const int64_t moved = p->moved;
                 const int64_t next = p->next_due_ms;
                 if (moved > 0) {
                   pending_maybe_ = true;
                   MaybeClaim();
                 }
                 // Other instances schedule retries too: look again now and
                 // then even when this one knows of none.
                 int64_t wait = next < 0 ? kIdlePromoteMs : next - NowUnixMs();
                 if (moved >= kMaxPromote) wait = 0;
                 uv_timer_stop(promote_timer_.get());
                 ArmPromote(std::clamp<int64_t>(wait, 0, kIdlePromoteMs));
               });
}

void QueueRunner::ArmPromote(int64_t delay_ms) {
  if (draining_ || !promote_timer_) return;
  delay_ms = std::max<int64_t>(delay_ms, 0);
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(promote_timer_.get())) &&
      static_cast<int64_t>(uv_timer_get_due_in(promote_timer_.get())) <= delay_ms) {
    return;  // already due sooner
  }
  uv_timer_start(
      promote_timer_.get(), [](uv_timer_t* t) { static_cast<QueueRunner*>(t->data)->Promote(); },
      static_cast<uint64_t>(delay_ms), 0);
}

void QueueRunner::BeginDrain(std::function<void()> drained) {
  draining_ = true;
  drained_ = std::move(drained);
  uv_timer_stop(promote_timer_.get());
  ReleaseQueued();
  queue_.PushStops(static_cast<size_t>(workers_));
  Flush();
  CheckDrained();
}

void QueueRunner::KillRunning() { pool_->CancelRunning(); }

void QueueRunner::Fence() {
  ReleaseQueued();
  // Moves waiting to be tried again: the job may be another instance's by
  // now, which redoes the move from the recorded outcome. Two instances
  // moving one file at once is what this avoids; after the reconnect
  // REQUEUE hands the job to whoever claims it next.
  for (const std::string& id : std::exchange(dispose_waiting_, {})) held_.erase(id);
  pool_->InterruptRunning();
}

void QueueRunner::CheckDrained() {
  if (!draining_ || !drained_) return;
  if (workers_exited_ < workers_ || disposing_ > 0 || !held_.empty()) return;
  poll_timer_.Reset();
  promote_timer_.Reset();
  std::exchange(drained_, nullptr)();
}

}  // namespace dropq
