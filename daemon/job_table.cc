#include "daemon/job_table.h"

#include "common/check.h"

namespace dropq {
namespace {

constexpr size_t Index(JobState s) { return static_cast<size_t>(s); }

bool WaitsOnRedis(JobState s) {
  return s == JobState::kRecording || s == JobState::kAcking || s == JobState::kReleasing;
}

// The diagram in job_table.h, as a table: kLegal[from][to].
constexpr bool kLegal[kJobStates][kJobStates] = {
    //            Queued Running Recording Disposing DisposeWait Acking Releasing
    /* Queued */ {false, true, true, false, false, true, true},
    /* Running */ {false, false, true, false, false, true, true},
    /* Recording */ {false, false, false, true, false, false, false},
    /* Disposing */ {false, false, false, false, true, true, false},
    /* DisposeWait */ {false, false, false, true, false, false, false},
    /* Acking */ {false, false, false, false, false, false, false},
    /* Releasing */ {false, false, false, false, false, false, false},
};

}  // namespace

std::string_view JobStateName(JobState s) {
  switch (s) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kRecording:
      return "recording";
    case JobState::kDisposing:
      return "disposing";
    case JobState::kDisposeWait:
      return "dispose_wait";
    case JobState::kAcking:
      return "acking";
    case JobState::kReleasing:
      return "releasing";
  }
  return "?";
}

AckAs AckAsOf(Ending e) {
  switch (e) {
    case Ending::kDone:
    case Ending::kSkipped:
      return AckAs::kDone;
    case Ending::kFailed:
      return AckAs::kFailed;
    case Ending::kScheduled:
      return AckAs::kScheduled;
  }
  return AckAs::kFailed;
}

HeldJob& JobTable::Add(Job job, JobState state) {
  DROPQ_CHECK(state == JobState::kQueued || state == JobState::kDisposing ||
              state == JobState::kAcking);
  std::string id = job.id;
  auto [it, added] = jobs_.try_emplace(std::move(id));
  DROPQ_CHECK(added);
  HeldJob& h = it->second;
  h.job = std::move(job);
  h.state = state;
  h.call = WaitsOnRedis(state) ? Call::kBatched : Call::kNone;
  ++counts_[Index(state)];
  return h;
}

HeldJob* JobTable::Find(const std::string& id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

HeldJob& JobTable::Get(const std::string& id) {
  HeldJob* h = Find(id);
  DROPQ_CHECK(h != nullptr);
  return *h;
}

void JobTable::Move(HeldJob& h, JobState to) {
  if (!kLegal[Index(h.state)][Index(to)]) {
    std::fprintf(stderr, "<2>job.illegal_move job=%s from=%s to=%s\n", h.job.id.c_str(),
                 JobStateName(h.state).data(), JobStateName(to).data());
    DROPQ_CHECK(kLegal[Index(h.state)][Index(to)]);
  }
  --counts_[Index(h.state)];
  ++counts_[Index(to)];
  h.state = to;
  h.call = WaitsOnRedis(to) ? Call::kBatched : Call::kNone;
}

void JobTable::SetCall(HeldJob& h, Call call) {
  DROPQ_CHECK(WaitsOnRedis(h.state) && call != Call::kNone);
  h.call = call;
}

void JobTable::Erase(const std::string& id) {
  auto it = jobs_.find(id);
  DROPQ_CHECK(it != jobs_.end());
  const JobState s = it->second.state;
  DROPQ_CHECK(s == JobState::kRecording || s == JobState::kDisposeWait || s == JobState::kAcking ||
              s == JobState::kReleasing);
  --counts_[Index(s)];
  jobs_.erase(it);
}

void JobTable::ForEach(const std::function<void(HeldJob&)>& fn) {
  for (auto& [id, h] : jobs_) fn(h);
}

}  // namespace dropq
