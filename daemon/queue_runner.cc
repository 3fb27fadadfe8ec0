#include "daemon/queue_runner.h"

#include <algorithm>

#include "common/check.h"
#include "common/clock.h"
#include "common/job_id.h"
#include "common/log.h"
#include "daemon/http_executor.h"
#include "daemon/serve_executor.h"
#include "store/protocol.h"
#include "store/scripts.h"
#include "workers/disposition.h"
#include "workers/processing.h"

namespace dropq {
namespace {

constexpr int kMaxClaim = 128;         // jobs per CLAIM call
constexpr uint64_t kIdlePollMs = 500;  // how often an idle queue looks for work
// How soon a queue at max_active looks again for a slot, if no notice came
// (its own records and other instances' `freed` notices end the wait at
// once; this covers a notice lost with its connection).
constexpr int64_t kActiveLookMs = 1000;
// The longest a hold lasts before CLAIM is asked again (a reload's new
// limits, a throttle lifted by hand).
constexpr int64_t kMaxHoldMs = 60000;
constexpr int64_t kReconcileRetryMs = 1000;  // after Redis refused the reconcile
// How long a kept file's return into the watched directory waits for its event.
constexpr int64_t kMaxReturnWaitMs = 30000;
// How often a queue looks for due retries when it knows of none (other
// instances schedule retries too).
constexpr int64_t kIdlePromoteMs = 2000;

}  // namespace

std::unique_ptr<QueueRunner> QueueRunner::Create(const Config& cfg, const QueueConfig& q,
                                                 Loop* loop, RedisConn* redis, QueueSetup setup) {
  return std::unique_ptr<QueueRunner>(new QueueRunner(cfg, q, loop, redis, std::move(setup)));
}

QueueRunner::QueueRunner(const Config& cfg, const QueueConfig& q, Loop* loop, RedisConn* redis,
                         QueueSetup setup)
    : cfg_(cfg),
      q_(q),
      loop_(loop),
      redis_(redis),
      keys_(cfg.prefix, q.name),
      layout_(LayoutOf(q)),
      area_(AreaInUse(q)),
      spares_(std::move(setup.spares)),
      handler_(std::move(setup.handler)),
      workers_(q.runs_handlers() ? q.workers : 0),
      retry_(q.retry),
      disposer_(loop, q.watch, layout_, area_, spares_,
                [this](const std::string& id, Result<std::string> where) {
                  OnDisposed(id, std::move(where));
                }),
      sweeper_(
          loop, redis, &keys_, q.name, q.watch, area_,
          AreaSweeper::Hooks{[this] { return ready() && !draining_; },
                             [this](const std::string& id) { return jobs_.Find(id) != nullptr; },
                             [this](const std::string& name) { Forget(name); }}),
      batches_(loop, redis, &keys_, cfg.instance, q, &jobs_, &counters_,
               ScriptBatches::Hooks{
                   [this](const std::vector<HeldJob*>& recorded) { StartDisposals(recorded); },
                   [this](bool released) {
                     if (released) pending_maybe_ = true;
                     // Jobs that end without RECORD (kept in place, skipped)
                     // free their max_active slot here.
                     if (held_ == Held::kActive) EndHold();
                     MaybeClaim();
                   },
                   [this] { CheckDrained(); }}) {
  poll_timer_ = MakeTimer(loop_->get(), this);
  hold_timer_ = MakeTimer(loop_->get(), this);
  promote_timer_ = MakeTimer(loop_->get(), this);

  // The executor reports on the loop thread, and only while it exists: it
  // is destroyed with the runner.
  Executor::Sink sink{[this](std::vector<RunReport>&& reports) { OnReports(std::move(reports)); },
                      [this] { CheckDrained(); }};
  if (q.handler.kind == HandlerConfig::Kind::kHttp) {
    // Requests run on this loop: no thread per request.
    executor_ = std::make_unique<HttpExecutor>(loop, std::move(sink), q, layout_, area_,
                                               static_cast<size_t>(q.capacity));
  } else if (q.handler.kind == HandlerConfig::Kind::kServe) {
    // Long-lived processes fed over pipes from this loop: no thread per process.
    executor_ =
        std::make_unique<ServeExecutor>(loop, std::move(sink), q, layout_, area_,
                                        static_cast<size_t>(q.capacity), cfg.instance, spares_);
  } else {
    executor_ = std::make_unique<ThreadExecutor>(
        [loop](std::function<void()> fn) { loop->Post(std::move(fn)); }, std::move(sink), q.watch,
        layout_, area_, workers_, static_cast<size_t>(q.capacity), handler_.get(), spares_.get());
  }
}

QueueRunner::~QueueRunner() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  // Replies, posts and completions still to come find the runner gone.
  *alive_ = false;
  // Stops and joins the workers, if BeginDrain() did not (an early error).
  executor_.reset();
}

void QueueRunner::Start() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  executor_->Start();
  uv_timer_start(
      poll_timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<QueueRunner*>(t->data);
        self->CheckDrained();  // a sweep that ended meanwhile
        self->ForgetOldReturns();
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
  LogInfo("queue.paused", {{"queue", q_.name}, {"released", released}, {"running", running()}});
}

void QueueRunner::CheckPaused() {
  // A claim finds the pause; with the in-memory queue full no claim is
  // sent, so jobs waiting there must not start unchecked.
  if (workers_ == 0 || executor_->waiting() == 0 || claim_inflight_ > 0 || !ready() || draining_) {
    return;
  }
  redis_->Command({"EXISTS", keys_.Paused()}, GuardedBy(alive_, [this](Result<Reply> r) {
                    if (r.ok() && !r->is_error() && r->AsInt() == 1 && !draining_) SetPaused(true);
                  }));
}

// ---------------------------------------------------------------- enqueue

void QueueRunner::Enqueue(const std::string& name, const FileIdentity& ident) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (draining_) return;
  if (!ready()) {
    // Redis is not reachable (or this connection's reconcile has not been
    // answered yet): the file stays on disk and the scan after the reconcile
    // finds it. Said once per spell.
    if (!rescan_needed_) {
      LogInfo("enqueue.deferred",
              {{"queue", q_.name},
               {"why", redis_->up() ? "reconciling after a reconnect" : "redis unreachable"}});
    }
    rescan_needed_ = true;
    return;
  }
  if (!enqueue_names_.insert(name).second) return;  // twice in one batch
  enqueue_batch_.push_back(EnqueueItem{NewJobId(), name, ident});
  if (enqueue_batch_.size() >= ScriptBatches::kMaxBatch) SendEnqueue();
}

void QueueRunner::SendEnqueue() {
  if (enqueue_batch_.empty()) return;
  // The call claims too, while there is room: jobs waiting in :pending
  // first, then these files, straight to active. A file claimed so waits
  // for this one reply before it runs.
  // A limited queue claims only through CLAIM, which counts its starts.
  const int ask = q_.limited() ? 0 : std::max(ClaimRoom(), 0);
  claim_inflight_ += ask;
  std::vector<std::string> args = EncodeEnqueue(NowUnixMs(), cfg_.instance, ask, enqueue_batch_);
  const size_t sent = enqueue_batch_.size();
  // The ids of this call's own files: claimed by it, they waited for one
  // reply; a pending job it claims waited for its own ENQUEUE's too.
  std::unordered_set<std::string> own;
  if (ask > 0) {
    for (EnqueueItem& it : enqueue_batch_) own.insert(std::move(it.id));
  }
  enqueue_batch_.clear();
  enqueue_names_.clear();
  ++enqueue_inflight_;
  // Set before on_reply runs: the claim it made had no replica's
  // acknowledgement while the connection was suspect.
  auto unconfirmed = std::make_shared<bool>(false);
  auto on_reply = GuardedBy(alive_, [this, sent, ask, own = std::move(own), gen = limits_gen_,
                                     unconfirmed](Result<Reply> r) {
    --enqueue_inflight_;
    claim_inflight_ -= ask;
    auto e = r.ok() ? DecodeEnqueue(*r, sent) : Result<Enqueued>(r.error());
    if (!e.ok()) {
      // The files are on disk: the scan after Redis is back finds
      // them. Jobs the call may have claimed are active under this
      // instance and held by none: the reconcile gives them back.
      LogWarn("enqueue.failed", {{"queue", q_.name}, {"err", e.error().what}});
      rescan_needed_ = true;
      if (r.ok() && !r->is_error()) {
        ++counters_.bad_replies;
        ReconcileAfterBadReply();
      }
      CheckDrained();
      return;
    }
    counters_.enqueued += e->enqueued;
    if (e->paused) {
      SetPaused(true);
    } else if (ask > 0) {
      SetPaused(false);
    }
    const size_t claimed = e->claimed.size();
    if (*unconfirmed && claimed > 0) {
      GiveBackUnconfirmed(claimed);
      CheckDrained();
      return;
    }
    HoldClaimed(std::move(e->claimed), &own);
    // Claimed before a reload gave the queue a limit: not counted.
    if (gen != limits_gen_ && q_.limited()) ReleaseQueued();
    // Files left in :pending (no room), or pending jobs not reached.
    if ((e->enqueued > 0 && !e->paused) || claimed == static_cast<size_t>(ask)) {
      pending_maybe_ = true;
    }
    CheckDrained();
    MaybeClaim();
  });
  if (ask == 0) {
    redis_->Eval(EnqueueScript(), keys_.base(), std::move(args), std::move(on_reply));
    return;
  }
  // It claims: its jobs start once a replica has the claim (or the wait
  // missed: RedisConn logs and counts it).
  redis_->EvalReplicated(
      EnqueueScript(), keys_.base(), std::move(args),
      [this, alive = alive_, unconfirmed, on_reply = std::move(on_reply)](Result<Reply> r,
                                                                          bool replicated) mutable {
        if (*alive) *unconfirmed = !replicated && redis_->suspect();
        on_reply(std::move(r));
      },
      ClaimedAny);
}

void QueueRunner::Forget(const std::string& name) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (!ready()) return;  // a marker left behind costs a few bytes, never a lost file
  batches_.Forget(name);
}

void QueueRunner::SweepMarkers() { sweeper_.SweepMarkers(); }  // checks the loop thread

void QueueRunner::SweepProcessing() { sweeper_.SweepProcessing(); }  // likewise

// ---------------------------------------------------------------- claim

int QueueRunner::ClaimRoom() const {
  if (workers_ == 0) return 0;  // role produce: other instances run the jobs
  if (!ready() || draining_) return 0;
  // A failover may be under way: what is claimed now could be lost with the
  // old primary while it runs here. RedisConn ends the spell.
  if (redis_->suspect()) return 0;
  if (q_.limited()) {
    // A limited queue's claim is a start: only as many as can start at once,
    // none held in memory beyond them.
    const int busy =
        static_cast<int>(jobs_.count(JobState::kQueued) + jobs_.count(JobState::kRunning));
    return std::min(workers_ - busy, kMaxClaim) - claim_inflight_;
  }
  const int cap = q_.capacity;
  const int free_slots = static_cast<int>(executor_->room());
  // Jobs past the queue (running, or waiting for Redis to take their
  // outcome) are bounded too, so a slow Redis cannot make memory grow.
  const int unacked_room = cap + 2 * workers_ - static_cast<int>(jobs_.size());
  return std::min({free_slots, unacked_room, kMaxClaim}) - claim_inflight_;
}

void QueueRunner::MaybeClaim() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (!pending_maybe_ || claim_inflight_ > 0 || held_ != Held::kNo) return;
  const int ask = ClaimRoom();
  if (ask <= 0) return;
  claim_inflight_ = ask;
  freed_while_claiming_ = false;
  const ClaimLimits limits{q_.rate_max, q_.rate_per.count(), q_.max_active};
  // A claim lost by a failover would let another instance run what runs
  // here: the jobs start once a replica has the claim (or the wait missed:
  // RedisConn logs and counts it; a claim that took nothing waits for none).
  redis_->EvalReplicated(
      ClaimScript(), keys_.base(), EncodeClaim(NowUnixMs(), cfg_.instance, ask, limits),
      [this, alive = alive_, ask, gen = limits_gen_](Result<Reply> r, bool replicated) {
        if (*alive) OnClaimed(std::move(r), ask, gen, replicated || !redis_->suspect());
      },
      ClaimedAny);
}

void QueueRunner::GiveBackUnconfirmed(size_t claimed) {
  ++counters_.unconfirmed_claims;
  LogWarn("claim.unconfirmed",
          {{"queue", q_.name},
           {"jobs", claimed},
           {"why", "no replica has the claim and a failover may be under way"}});
  pending_maybe_ = true;  // they will be pending again
  ReconcileAfterBadReply();
}

void QueueRunner::OnClaimed(Result<Reply> r, int asked, uint64_t gen, bool confirmed) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  claim_inflight_ -= asked;
  if (r.ok() && IsPausedReply(*r)) {
    SetPaused(true);
    CheckDrained();
    return;  // the idle poll looks again
  }
  if (r.ok()) {
    if (std::optional<ClaimHeld> held = DecodeClaimHeld(*r)) {
      SetPaused(false);
      switch (held->kind) {
        case ClaimHeld::Kind::kThrottled:
          ++counters_.held_throttled;
          Hold(Held::kThrottled, held->ms);
          break;
        case ClaimHeld::Kind::kRate:
          // Redis said when the next slot opens: sleep until then.
          ++counters_.held_rate;
          Hold(Held::kRate, held->ms);
          break;
        case ClaimHeld::Kind::kActive:
          // No time is known: a slot frees when any instance records an
          // outcome. This instance's own records end the hold at once,
          // others' by their `freed` notice (SlotsFreed()).
          ++counters_.held_active;
          Hold(Held::kActive, kActiveLookMs);
          // Only a max_active hold: a throttle set meanwhile stays.
          if (std::exchange(freed_while_claiming_, false) && held_ == Held::kActive) EndHold();
          break;
      }
      CheckDrained();
      return;
    }
  }
  if (!r.ok() || r->is_error()) {
    LogWarn("claim.failed", {{"queue", q_.name}, {"err", r.ok() ? r->str : r.error().what}});
    CheckDrained();
    return;  // the idle poll tries again; a claim that ran is reconciled after reconnect
  }
  auto claimed = DecodeClaim(*r);
  if (!claimed.ok()) {
    // Whatever the call took is active under this instance but held by
    // nobody: the reconcile gives it back to pending.
    ++counters_.bad_replies;
    LogError("claim.bad_reply", {{"queue", q_.name}, {"err", claimed.error().what}});
    ReconcileAfterBadReply();
    return;
  }
  SetPaused(false);
  const size_t n = claimed->size();
  if (!confirmed) {
    GiveBackUnconfirmed(n);
    CheckDrained();
    return;
  }
  // Each job waited for its ENQUEUE's reply and then for CLAIM's.
  HoldClaimed(std::move(*claimed), nullptr);
  if (gen != limits_gen_ && q_.limited()) ReleaseQueued();  // claimed under other limits
  // A limited queue gets fewer than it asked while its limits bind, with
  // jobs still pending.
  pending_maybe_ = n == static_cast<size_t>(asked) || (q_.limited() && n > 0);
  CheckDrained();
  MaybeClaim();
}

void QueueRunner::HoldClaimed(std::vector<ClaimedJob> claimed,
                              const std::unordered_set<std::string>* own) {
  // Holds a claimed job, with the replies it waited for so far.
  const auto hold = [this, own](Job job, JobState state) -> HeldJob& {
    const int round_trips = own != nullptr && own->count(job.id) != 0 ? 1 : 2;
    HeldJob& h = jobs_.Add(std::move(job), state);
    h.round_trips = round_trips;
    return h;
  };
  std::vector<Job> to_run;
  for (ClaimedJob& c : claimed) {
    if (c.kind == ClaimedJob::Kind::kCorrupt) {
      // CLAIM found a record it cannot use (no name, or not a hash) and set it aside.
      LogError("job.corrupt", {{"queue", q_.name}, {"job", c.job.id}});
      continue;
    }
    if (jobs_.Find(c.job.id) != nullptr) {
      // Redis handed back a job this instance holds already: it lost a
      // write (a crash under everysec, a failover) and the job was pending
      // again. The one held here goes on; the copy is dropped.
      ++counters_.duplicate_claims;
      LogWarn("job.duplicate_claim", {{"queue", q_.name}, {"job", c.job.id}});
      continue;
    }
    Job job = std::move(c.job);
    job.queue = q_.name;
    if (c.kind != ClaimedJob::Kind::kInvalid && !q_.recursive &&
        job.name.find('/') != std::string::npos) {
      // Only a recursive queue makes names with directories in them.
      c.kind = ClaimedJob::Kind::kInvalid;
      c.problem = "corrupt job record: name: holds '/', and the queue is not recursive";
    }
    if (c.kind == ClaimedJob::Kind::kInvalid) {
      // Its name was edited into a path: acting on it could touch files
      // outside the watched directory. It ends failed where an operator
      // sees it, and no file is touched.
      LogError("job.corrupt", {{"queue", q_.name}, {"job", job.id}, {"err", c.problem}});
      HeldJob& h = hold(std::move(job), JobState::kAcking);
      h.ending = Ending::kFailed;
      SetAck(h, "",
             {{"result", std::string(RunResultName(RunResult::kError))}, {"error", c.problem}});
      continue;
    }
    if (c.kind == ClaimedJob::Kind::kRedispose) {
      // Its run ended and its outcome was recorded, then its holder died
      // before the acknowledgement: only the disposition is left to do.
      LogInfo("job.redispose",
              {{"queue", q_.name}, {"job", job.id}, {"state", AckAsName(c.recorded)}});
      HeldJob& h = hold(job, JobState::kDisposing);
      h.redispose = true;
      h.ending = c.recorded == AckAs::kDone ? Ending::kDone : Ending::kFailed;
      h.outcome = std::make_unique<Outcome>();
      h.outcome->job = std::move(job);
      h.outcome->ident = c.processed;
      const Disposition& d = c.recorded == AckAs::kDone ? q_.on_success : q_.on_failure;
      if (d.kind == Disposition::Kind::kKeep) h.keep_marker = "~" + h.outcome->ident.ToString();
      StartDisposals({&h});
      continue;
    }
    hold(job, JobState::kQueued);
    to_run.push_back(std::move(job));
  }
  // Shutdown (or a pause) began while the claim was in flight: what does
  // not go to the executor goes back to pending.
  const size_t room = draining_ || paused_ ? 0 : executor_->room();
  for (size_t i = room; i < to_run.size(); ++i) QueueRelease(jobs_.Get(to_run[i].id), false);
  if (to_run.size() > room) to_run.resize(room);
  if (!to_run.empty()) executor_->Accept(std::move(to_run));
}

// ---------------------------------------------------------------- workers

void QueueRunner::OnStarted(const std::string& id, uint32_t attempt) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  HeldJob* h = jobs_.Find(id);
  // Released meanwhile (a pause, a fence): the worker had popped it already.
  if (h == nullptr || h->state != JobState::kQueued) return;
  jobs_.Move(*h, JobState::kRunning);
  h->job.attempt = attempt;
  batches_.Started(id, attempt);
}

void QueueRunner::OnFinished(Outcome&& o) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  HeldJob* hp = jobs_.Find(o.job.id);
  if (hp == nullptr || (hp->state != JobState::kQueued && hp->state != JobState::kRunning)) {
    // A worker reports only jobs it popped, and a popped job stays held
    // until its outcome is in: anything else is a bug of dropqd's.
    LogError("job.unknown", {{"queue", q_.name}, {"job", o.job.id}});
    DROPQ_CHECK(hp != nullptr &&
                (hp->state == JobState::kQueued || hp->state == JobState::kRunning));
  }
  HeldJob& h = *hp;
  h.job = o.job;
  if (o.fail_class == FailClass::kTempfail && o.retry_after_ms > 0 && o.http_status != 0) {
    Throttle(o);
  }
  const std::string path = q_.watch + "/" + o.job.name;

  if (o.result == RunResult::kInterrupted) {
    ++counters_.interrupted;
    LogInfo("job.interrupted", {{"queue", q_.name}, {"job", o.job.id}, {"path", path}});
    QueueRelease(h, true);
    return;
  }
  // A file that vanished or was replaced before its run is a counted skip:
  // nothing ran, nothing failed; the job ends done with that result.
  const bool skipped = o.result == RunResult::kVanished || o.result == RunResult::kReplaced;
  const bool ok = o.result == RunResult::kOk;
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
      jobs_.Move(h, JobState::kAcking);
      h.ending = Ending::kScheduled;
      SetAck(h, "", std::move(f));
      ArmPromote(rd.delay_ms);
      return;
    }
  }
  h.ending = skipped ? Ending::kSkipped : ok ? Ending::kDone : Ending::kFailed;
  const Disposition& d = ok ? q_.on_success : q_.on_failure;
  if (skipped) {
    jobs_.Move(h, JobState::kAcking);
    SetAck(h, "", OutcomeFields(o));  // nothing of ours left to move
  } else if (d.kind == Disposition::Kind::kKeep && o.work_path == path) {
    // The file stays: remember its identity so a restart does not redo it.
    jobs_.Move(h, JobState::kAcking);
    SetAck(h, "~" + o.ident.ToString(), OutcomeFields(o));
  } else {
    // The file moves (a kept one back from the processing area): the
    // outcome is recorded first, so a crash redoes only the move.
    h.target = d.kind == Disposition::Kind::kMoveTo ? MoveTarget(d, o.job.name)
               : d.kind == Disposition::Kind::kKeep ? q_.watch + "/" + o.job.name
                                                    : "";
    if (d.kind == Disposition::Kind::kKeep) h.keep_marker = "~" + o.ident.ToString();
    h.outcome = std::make_unique<Outcome>(std::move(o));
    jobs_.Move(h, JobState::kRecording);
    batches_.Record(h);
  }
}

void QueueRunner::OnReports(std::vector<RunReport>&& reports) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  for (RunReport& r : reports) {
    if (r.kind == RunReport::Kind::kStarted) {
      OnStarted(r.outcome.job.id, r.outcome.job.attempt);
    } else {
      OnFinished(std::move(r.outcome));
    }
  }
  MaybeClaim();
}

// ---------------------------------------------------------------- record, dispose, ack

void QueueRunner::Hold(Held why, int64_t ms) {
  const int64_t until = MonoMs() + ms;
  // A server's Retry-After outlasts what a limit says, and a later end wins.
  if (held_ == Held::kThrottled && (why != Held::kThrottled || until <= hold_until_ms_)) return;
  held_ = why;
  hold_until_ms_ = until;
  uv_timer_start(
      hold_timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<QueueRunner*>(t->data);
        self->EndHold();
      },
      static_cast<uint64_t>(std::clamp<int64_t>(ms, 1, kMaxHoldMs)), 0);
}

void QueueRunner::EndHold() {
  if (held_ == Held::kNo) return;
  held_ = Held::kNo;
  uv_timer_stop(hold_timer_.get());
  pending_maybe_ = true;
  MaybeClaim();
}

void QueueRunner::LimitsChanged(int old_rate_max, int old_max_active) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  size_t released = 0;
  // A limit that starts counting did not count the jobs claimed ahead, nor
  // those a claim still in flight brings (its reply sees limits_gen_ moved).
  if ((old_rate_max > 0) != (q_.rate_max > 0) || (old_max_active > 0) != (q_.max_active > 0)) {
    ++limits_gen_;
    if (q_.limited()) released = ReleaseQueued();
  }
  LogInfo("queue.limits", {{"queue", q_.name},
                           {"rate_limit", q_.rate_max},
                           {"rate_per_ms", q_.rate_per.count()},
                           {"max_active", q_.max_active},
                           {"released", released}});
  if (held_ == Held::kRate || held_ == Held::kActive) {
    EndHold();  // claims again
    return;
  }
  pending_maybe_ = true;
  MaybeClaim();
}

void QueueRunner::SlotsFreed() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (claim_inflight_ > 0) freed_while_claiming_ = true;
  if (held_ == Held::kActive) EndHold();
}

void QueueRunner::Throttle(const Outcome& o) {
  // Every instance waits, this one at once; THROTTLE extends, never shortens.
  const std::string reason = "HTTP " + std::to_string(o.http_status) + " Retry-After " +
                             std::to_string((o.retry_after_ms + 999) / 1000) + "s";
  LogWarn("queue.throttled",
          {{"queue", q_.name}, {"job", o.job.id}, {"ms", o.retry_after_ms}, {"reason", reason}});
  ++counters_.throttled;
  Hold(Held::kThrottled, o.retry_after_ms);
  // Jobs claimed and not started would each hit the server that asked to wait.
  ReleaseQueued();
  redis_->Eval(ThrottleScript(), keys_.base(), EncodeThrottle(o.retry_after_ms, reason),
               GuardedBy(alive_, [this](Result<Reply> r) {
                 if (!r.ok() || r->is_error()) {
                   LogWarn("throttle.failed",
                           {{"queue", q_.name}, {"err", r.ok() ? r->str : r.error().what}});
                 }
               }));
}

void QueueRunner::StartDisposals(const std::vector<HeldJob*>& jobs) {
  // Their outcomes are recorded: each freed a max_active slot.
  if (held_ == Held::kActive) EndHold();
  std::vector<Disposer::Move> moves;
  moves.reserve(jobs.size());
  for (HeldJob* h : jobs) {
    DROPQ_CHECK(h->state == JobState::kDisposing);
    // A redisposal does not know where the file is: the disposer looks.
    Disposer::Move m{h->job.id, h->ending == Ending::kDone ? q_.on_success : q_.on_failure,
                     h->redispose ? std::string() : h->outcome->work_path, h->job.name,
                     DisposeOptions{}};
    m.opt.ident = h->outcome->ident;
    m.opt.recovering = h->redispose;
    const bool in_place =
        m.src.empty() ? layout_ == AreaLayout::kInPlace : m.src == q_.watch + "/" + h->job.name;
    if (m.d.kind == Disposition::Kind::kKeep && !in_place) {
      // Back into the watched directory: its IN_MOVED_TO is our own.
      returning_[h->job.name] = Returning{h->outcome->ident, MonoMs()};
    }
    moves.push_back(std::move(m));
  }
  disposer_.Start(std::move(moves));
}

void QueueRunner::OnDisposed(const std::string& id, Result<std::string> where) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  HeldJob* hp = jobs_.Find(id);
  DROPQ_CHECK(hp != nullptr && hp->state == JobState::kDisposing);  // nothing else drops it
  HeldJob& h = *hp;
  const std::string home = q_.watch + "/" + h.job.name;  // where a kept file returns
  if (!where.ok() || *where != home) {
    // No return under its name to wait for: an event for the name now is
    // someone else's.
    auto it = returning_.find(h.job.name);
    if (it != returning_.end() && h.outcome != nullptr && it->second.ident == h.outcome->ident) {
      returning_.erase(it);
    }
  }
  Fields f;
  std::string files_value;  // the file left the directory: forget its name
  if (where.ok()) {
    f.emplace_back("disposed_to", where->empty() ? "(deleted)" : *where);
    if (!h.keep_marker.empty()) {
      if (*where == home) {
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
    jobs_.Move(h, JobState::kDisposeWait);
    LogError("job.dispose_failed", {{"queue", q_.name},
                                    {"job", id},
                                    {"err", where.error().what},
                                    {"failures", h.dispose_failures},
                                    {"retry_ms", delay_ms}});
    // Only on a record this instance still owns (the script checks).
    redis_->Eval(DisposeFailedScript(), keys_.base(),
                 EncodeDisposeFailed(cfg_.instance, {{id, where.error().what, h.dispose_failures}}),
                 [](Result<Reply>) {});
    CheckDrained();
    return;
  }
  jobs_.Move(h, JobState::kAcking);
  SetAck(h, files_value, std::move(f));
}

void QueueRunner::RetryDisposals() {
  if (jobs_.count(JobState::kDisposeWait) == 0) return;
  const int64_t now = MonoMs();
  std::vector<HeldJob*> due;
  jobs_.ForEach([&](HeldJob& h) {
    if (h.state == JobState::kDisposeWait && h.dispose_due_ms <= now) {
      jobs_.Move(h, JobState::kDisposing);
      due.push_back(&h);
    }
  });
  StartDisposals(due);
}

void QueueRunner::SetAck(HeldJob& h, const std::string& files_value, Fields fields) {
  batches_.Ack(h, files_value, std::move(fields));
}

void QueueRunner::ForgetOldReturns() {
  // The event of a return that failed (the name was taken: the file came
  // back under another one) or was lost (an inotify overflow) never comes.
  const int64_t oldest = MonoMs() - kMaxReturnWaitMs;
  std::erase_if(returning_, [oldest](const auto& e) { return e.second.since_ms < oldest; });
}

bool QueueRunner::TakeOwnReturn(const std::string& name, const FileIdentity& ident) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  auto it = returning_.find(name);
  if (it == returning_.end() || !(it->second.ident == ident)) return false;
  returning_.erase(it);
  return true;
}

// ---------------------------------------------------------------- release, started

void QueueRunner::QueueRelease(HeldJob& h, bool interrupted) { batches_.Release(h, interrupted); }

size_t QueueRunner::ReleaseQueued() {
  const std::vector<Job> queued = executor_->TakeBack();
  for (const Job& job : queued) QueueRelease(jobs_.Get(job.id), false);
  return queued.size();
}

void QueueRunner::Flush() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  SendEnqueue();
  batches_.Flush();
}

// ---------------------------------------------------------------- reconnect, drain

void QueueRunner::ResendRefused() {
  // Redis is up but refused a call (a key of the wrong type in the queue's
  // namespace, a script error): try again, backing off to twice a minute,
  // until an operator fixes the key. A lost connection resends on its own.
  if (!ready() || MonoMs() < resend_due_ms_) return;
  if (!batches_.AnyRefused()) {
    resend_backoff_ms_ = 1000;
    return;
  }
  resend_due_ms_ = MonoMs() + resend_backoff_ms_;
  resend_backoff_ms_ = std::min<int64_t>(resend_backoff_ms_ * 2, 30000);
  batches_.Resend();
}

void QueueRunner::OnRedisUp(std::function<void()> done) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  reconciled_conn_ = 0;
  reconcile_due_ms_ = 0;  // a retry waiting for a refused reconcile is superseded
  // First the outcomes Redis has not confirmed, in the order they happened...
  batches_.Resend();
  // ...then every active job of this instance that it does not hold goes
  // back to pending (left over from a crash, or a claim whose reply was lost).
  std::vector<std::string> held;
  held.reserve(jobs_.size());
  jobs_.ForEach([&](HeldJob& h) { held.push_back(h.job.id); });
  // Commands on one connection run in order: a claim sent after this call
  // cannot have its jobs given back by it. Until its answer, ready() is
  // false and nothing is claimed.
  const uint64_t conn = redis_->connection();
  redis_->Eval(RequeueScript(), keys_.base(), EncodeRequeue(cfg_.instance, held),
               GuardedBy(alive_, [this, conn, done = std::move(done)](Result<Reply> r) {
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
                 reconciled_conn_ = conn;
                 pending_maybe_ = true;
                 MaybeClaim();
                 Promote();
                 done();
               }));
}

void QueueRunner::ReconcileAfterBadReply() {
  // REQUEUE gives back every active job of this instance it is not told is
  // held here: it must not run before the claiming calls still in flight
  // are answered, or their jobs would be pending again while they run here.
  // Until then nothing more is claimed (not ready), and the idle poll sends
  // it once they are in.
  reconciled_conn_ = 0;
  if (!reconcile_done_) reconcile_done_ = [] {};
  reconcile_due_ms_ = MonoMs();
}

void QueueRunner::RetryReconcile() {
  if (reconciled_conn_ != 0 || draining_ || reconcile_due_ms_ == 0 || !redis_->up()) return;
  if (MonoMs() < reconcile_due_ms_ || claim_inflight_ > 0) return;
  reconcile_due_ms_ = 0;
  OnRedisUp(std::exchange(reconcile_done_, nullptr));
}

void QueueRunner::Promote() {
  if (!ready() || draining_) return;
  constexpr int kMaxPromote = 256;
  redis_->Eval(PromoteScript(), keys_.base(), EncodePromote(NowUnixMs(), kMaxPromote),
               GuardedBy(alive_, [this](Result<Reply> r) {
                 if (draining_) return;
                 auto p = r.ok() ? DecodePromote(*r) : Result<Promoted>(r.error());
                 if (!p.ok()) {
                   ArmPromote(kIdlePromoteMs);  // Redis away: try again later
                   return;
                 }
                 if (p->moved > 0) {
                   pending_maybe_ = true;
                   MaybeClaim();
                 }
                 // Other instances schedule retries too: look again now and
                 // then even when this one knows of none.
                 int64_t wait = p->next_due_ms < 0 ? kIdlePromoteMs : p->next_due_ms - NowUnixMs();
                 if (p->moved >= kMaxPromote) wait = 0;
                 uv_timer_stop(promote_timer_.get());
                 ArmPromote(std::clamp<int64_t>(wait, 0, kIdlePromoteMs));
               }));
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
  DROPQ_DCHECK(loop_->OnLoopThread());
  draining_ = true;
  drained_ = std::move(drained);
  uv_timer_stop(promote_timer_.get());
  ReleaseQueued();
  Flush();  // this turn's calls go before anything can end the drain
  executor_->Stop();
  CheckDrained();
}

void QueueRunner::KillRunning() { executor_->Interrupt(/*also_later=*/true); }

void QueueRunner::Fence() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  ReleaseQueued();
  // Moves waiting to be tried again: the job may be another instance's by
  // now, which redoes the move from the recorded outcome. Two instances
  // moving one file at once is what this avoids; after the reconnect
  // REQUEUE hands the job to whoever claims it next.
  std::vector<std::string> waiting;
  jobs_.ForEach([&](HeldJob& h) {
    if (h.state == JobState::kDisposeWait) waiting.push_back(h.job.id);
  });
  for (const std::string& id : waiting) jobs_.Erase(id);
  executor_->Interrupt(/*also_later=*/false);
}

void QueueRunner::CheckDrained() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (!draining_ || !drained_) return;
  // Every job acknowledged or released, every worker gone, every move
  // reported and every sweep over: nothing the runner started is left.
  if (!executor_->stopped() || disposer_.in_flight() > 0 || !jobs_.empty() || sweeper_.busy() ||
      claim_inflight_ > 0) {
    return;
  }
  poll_timer_.Reset();
  promote_timer_.Reset();
  batches_.Close();
  std::exchange(drained_, nullptr)();
}

}  // namespace dropq
