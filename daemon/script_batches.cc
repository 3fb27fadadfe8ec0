#include "daemon/script_batches.h"

#include <algorithm>

#include "common/check.h"
#include "common/clock.h"
#include "common/log.h"
#include "store/scripts.h"

namespace dropq {
namespace {

// A run's start is recorded (STARTED) only once it has gone on this long.
constexpr uint64_t kStartedDelayMs = 20;
// ACK calls a queue has in flight at once: a second one goes out while the
// first waits for its reply; what finishes meanwhile waits and goes as one batch.
constexpr int kMaxAcksInFlight = 2;

}  // namespace

ScriptBatches::ScriptBatches(Loop* loop, RedisConn* redis, const QueueKeys* keys,
                             const std::string& instance, const QueueConfig& q, JobTable* jobs,
                             QueueCounters* counters, Hooks hooks)
    : loop_(loop),
      redis_(redis),
      keys_(keys),
      instance_(instance),
      q_(q),
      jobs_(jobs),
      counters_(counters),
      hooks_(std::move(hooks)) {
  started_timer_ = MakeTimer(loop_->get(), this);
}

ScriptBatches::~ScriptBatches() { *alive_ = false; }

void ScriptBatches::Close() { started_timer_.Reset(); }

template <typename Item, typename Make>
std::vector<Item> ScriptBatches::MarkSent(const std::vector<std::string>& ids, Make make) {
  std::vector<Item> items;
  items.reserve(ids.size());
  for (const auto& id : ids) {
    HeldJob& h = jobs_->Get(id);
    jobs_->SetCall(h, Call::kSent);
    items.push_back(make(h));
  }
  return items;
}

// ---------------------------------------------------------------- STARTED

void ScriptBatches::Started(const std::string& id, uint32_t attempt) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  // STARTED waits kStartedDelayMs: a run that is over by then never needs
  // it (its outcome records the attempt), and most builtin runs are.
  if (started_.empty()) ArmStarted(static_cast<int64_t>(kStartedDelayMs));
  started_.push_back({MonoMs() + static_cast<int64_t>(kStartedDelayMs), {id, attempt}});
}

void ScriptBatches::ArmStarted(int64_t delay_ms) {
  if (!started_timer_) return;  // closed
  uv_timer_start(
      started_timer_.get(),
      [](uv_timer_t* t) { static_cast<ScriptBatches*>(t->data)->SendStarted(); },
      static_cast<uint64_t>(std::max<int64_t>(delay_ms, 0)), 0);
}

void ScriptBatches::SendStarted() {
  // Runs that are still going kStartedDelayMs after they began get their
  // start recorded; the others ended meanwhile and their outcome carries
  // the attempt. Best effort: a lost STARTED only hides for a moment that
  // the run began (docs/guarantees.md says what `attempt` then counts).
  const int64_t now = MonoMs();
  std::vector<StartedItem> due;
  size_t kept = 0;
  for (auto& [due_ms, item] : started_) {
    if (due_ms > now) {
      started_[kept++] = {due_ms, std::move(item)};
      continue;
    }
    const HeldJob* h = jobs_->Find(item.id);
    if (h != nullptr && h->state == JobState::kRunning) due.push_back(std::move(item));
  }
  started_.resize(kept);
  if (!started_.empty()) ArmStarted(started_.front().first - now);
  if (due.empty() || !redis_->up()) return;
  redis_->Eval(StartedScript(), keys_->base(), EncodeStarted(instance_, NowUnixMs(), due),
               [](Result<Reply>) {});
}

// ---------------------------------------------------------------- RECORD

void ScriptBatches::Record(HeldJob& h) {
  DROPQ_CHECK(h.state == JobState::kRecording);
  record_ids_.push_back(h.job.id);
  if (record_ids_.size() >= kMaxBatch) SendRecords();
}

void ScriptBatches::SendRecords() {
  if (record_ids_.empty()) return;
  std::vector<std::string> ids = std::exchange(record_ids_, {});
  const auto items = MarkSent<RecordItem>(ids, [](const HeldJob& h) {
    return RecordItem{h.job.id, OutcomeFields(*h.outcome), AckAsOf(h.ending), h.target,
                      h.outcome->ident};
  });
  // The file moves once its outcome is recorded: a RECORD a failover lost
  // would run the job again. So a replica must have it first (RedisConn:
  // while a failover may be under way, one it did not acknowledge is sent
  // again, to the new primary if there is one).
  redis_->EvalReplicated(
      RecordScript(), keys_->base(), EncodeRecord(instance_, items),
      [this, alive = alive_, ids = std::move(ids)](Result<Reply> r, bool replicated) {
        if (!*alive) return;
        auto taken = r.ok() ? DecodeTaken(*r, ids.size()) : Result<std::vector<bool>>(r.error());
        if (taken.ok() && !replicated && redis_->suspect()) {
          taken = Error{Errc::kRedis,
                        "no replica acknowledged it while a failover "
                        "may be under way"};
        }
        if (!taken.ok()) {
          LogWarn("record.failed", {{"queue", q_.name}, {"err", taken.error().what}});
        }
        std::vector<HeldJob*> recorded;
        for (size_t i = 0; i < ids.size(); ++i) {
          HeldJob* h = jobs_->Find(ids[i]);
          if (h == nullptr || h->state != JobState::kRecording) continue;
          ++h->round_trips;
          if (!taken.ok()) {
            jobs_->SetCall(*h, Call::kRefused);  // sent again (Resend())
          } else if ((*taken)[i]) {
            jobs_->Move(*h, JobState::kDisposing);
            recorded.push_back(h);
          } else {
            // No longer ours: another instance took the job over. Its
            // file is left alone, this late outcome discarded.
            ++counters_->lost_outcomes;
            LogWarn("job.fenced", {{"queue", q_.name}, {"job", ids[i]}});
            jobs_->Erase(ids[i]);
          }
        }
        if (!recorded.empty()) hooks_.recorded(recorded);
        hooks_.settled();
      });
}

// ---------------------------------------------------------------- ACK

void ScriptBatches::Ack(HeldJob& h, const std::string& files_value, Fields fields) {
  DROPQ_CHECK(h.state == JobState::kAcking);
  h.ack = AckItem{h.job.id, AckAsOf(h.ending), files_value, std::move(fields)};
  ack_ids_.push_back(h.job.id);
  if (ack_ids_.size() >= kMaxBatch) SendAcks();
}

void ScriptBatches::SendAcks() {
  // At most kMaxAcksInFlight ACK calls in flight: what finishes meanwhile
  // waits for a reply and goes out as one batch, so a burst costs a few round
  // trips per batch instead of one per job, and a quiet queue still
  // acknowledges at once.
  if (ack_ids_.empty() || acks_inflight_ >= kMaxAcksInFlight) return;
  ++acks_inflight_;
  std::vector<std::string> ids = std::exchange(ack_ids_, {});
  const auto items = MarkSent<AckItem>(ids, [](const HeldJob& h) { return h.ack; });
  redis_->Eval(AckScript(), keys_->base(),
               EncodeAck(instance_, NowUnixMs(), q_.keep_done, q_.keep_failed, items),
               GuardedBy(alive_, [this, ids = std::move(ids)](Result<Reply> r) {
                 --acks_inflight_;  // the next Flush() sends what collected meanwhile
                 auto taken =
                     r.ok() ? DecodeTaken(*r, ids.size()) : Result<std::vector<bool>>(r.error());
                 if (!taken.ok()) {
                   LogWarn("ack.failed", {{"queue", q_.name}, {"err", taken.error().what}});
                 }
                 for (size_t i = 0; i < ids.size(); ++i) {
                   HeldJob* h = jobs_->Find(ids[i]);
                   if (h == nullptr || h->state != JobState::kAcking) continue;
                   ++h->round_trips;
                   if (!taken.ok()) {
                     jobs_->SetCall(*h, Call::kRefused);
                     continue;
                   }
                   ++counters_->acked;
                   counters_->round_trips += static_cast<uint64_t>(h->round_trips);
                   if ((*taken)[i]) {
                     switch (h->ending) {
                       case Ending::kSkipped:
                         ++counters_->skipped;
                         break;
                       case Ending::kDone:
                         ++counters_->done;
                         break;
                       case Ending::kScheduled:
                         ++counters_->retries;
                         break;
                       case Ending::kFailed:
                         ++counters_->failed;
                         break;
                     }
                   } else {
                     // Already acknowledged (a resend after a lost reply) or
                     // taken over by another instance.
                     LogDebug("ack.skipped", {{"queue", q_.name}, {"job", ids[i]}});
                   }
                   jobs_->Erase(ids[i]);
                 }
                 hooks_.settled();
                 hooks_.freed(false);
               }));
}

// ---------------------------------------------------------------- RELEASE, FORGET

void ScriptBatches::Release(HeldJob& h, bool interrupted) {
  jobs_->Move(h, JobState::kReleasing);
  h.release_interrupted = interrupted;
  release_ids_.push_back(h.job.id);
}

void ScriptBatches::SendReleases() {
  if (release_ids_.empty()) return;
  std::vector<std::string> ids = std::exchange(release_ids_, {});
  const auto items = MarkSent<ReleaseItem>(ids, [](const HeldJob& h) {
    return ReleaseItem{h.job.id, h.release_interrupted};
  });
  redis_->Eval(ReleaseScript(), keys_->base(), EncodeRelease(instance_, items),
               GuardedBy(alive_, [this, ids = std::move(ids)](Result<Reply> r) {
                 const bool sent = r.ok() && !r->is_error();
                 for (const auto& id : ids) {
                   HeldJob* h = jobs_->Find(id);
                   if (h == nullptr || h->state != JobState::kReleasing) continue;
                   if (sent) {
                     jobs_->Erase(id);
                   } else {
                     jobs_->SetCall(*h, Call::kRefused);
                   }
                 }
                 hooks_.settled();
                 if (sent) hooks_.freed(true);
               }));
}

void ScriptBatches::Forget(std::string name) {
  forgets_.push_back(std::move(name));
  if (forgets_.size() >= kMaxBatch) SendForgets();
}

void ScriptBatches::SendForgets() {
  if (forgets_.empty()) return;
  redis_->Eval(ForgetScript(), keys_->base(), std::exchange(forgets_, {}), [](Result<Reply>) {});
}

// ---------------------------------------------------------------- flush, resend

void ScriptBatches::Flush() {
  SendRecords();
  SendAcks();
  SendReleases();
  SendForgets();
}

void ScriptBatches::Resend() {
  jobs_->ForEach([this](HeldJob& h) {
    if (h.call != Call::kRefused) return;
    jobs_->SetCall(h, Call::kBatched);
    if (h.state == JobState::kRecording) record_ids_.push_back(h.job.id);
    if (h.state == JobState::kAcking) ack_ids_.push_back(h.job.id);
    if (h.state == JobState::kReleasing) release_ids_.push_back(h.job.id);
  });
  Flush();
}

bool ScriptBatches::AnyRefused() {
  bool refused = false;
  jobs_->ForEach([&](HeldJob& h) { refused |= h.call == Call::kRefused; });
  return refused;
}

}  // namespace dropq
