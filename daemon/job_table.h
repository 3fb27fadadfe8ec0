// JobTable holds every job one queue runner holds — claimed and waiting for a
// worker, running, or with an outcome Redis has not confirmed yet — with its
// state, and moves it from state to state through one function, Move(),
// which checks that the move is legal. A broken invariant of dropqd's own
// state aborts (DROPQ_CHECK); what Redis answers is input and is checked by
// the caller before it asks for a move.
//
//   claim ─► kQueued ─► kRunning ─┬─► kRecording ─► kDisposing ─┬─► kAcking ─► (gone)
//              │ │                │                  ▲      │    │
//              │ └──► (outcome) ──┤                  │      ▼    │
//              │                  │            kDisposeWait ◄──  │
//              │                  └────────────────────────────► kAcking
//              └────────► kReleasing ◄─── (interrupted) ── kRunning;  kReleasing ─► (gone)
//
// A claim can also start a job in kDisposing (its outcome was recorded by an
// earlier holder: only the disposition is left) or kAcking (its record is
// unusable: it ends failed). A job whose outcome Redis refuses because it
// changed hands (kRecording) and one whose move waits to be retried
// (kDisposeWait) when the instance is fenced leave from where they are.
//
// The three states that wait for Redis (kRecording, kAcking, kReleasing)
// carry a Call: batched for the next flush, sent, or refused (Redis did not
// take it: sent again after a reconnect or, backing off, while Redis is up).
//
// Thread: loop (made, used and destroyed there).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "common/job.h"
#include "store/protocol.h"

namespace dropq {

enum class JobState {
  kQueued,       // claimed; waiting in memory for a worker
  kRunning,      // its handler runs
  kRecording,    // outcome known; RECORD (phase=disposing) before the file moves
  kDisposing,    // its file is being moved or deleted on the threadpool
  kDisposeWait,  // the move failed; tried again at dispose_due_ms
  kAcking,       // ACK: the job ends (done, failed, scheduled for a retry)
  kReleasing,    // RELEASE: back to pending (not started, or cut short)
};
inline constexpr size_t kJobStates = 7;
std::string_view JobStateName(JobState s);

// Where a state's Redis call stands (kRecording, kAcking, kReleasing only).
enum class Call {
  kNone,     // states that wait for no call
  kBatched,  // in the batch the next flush sends
  kSent,     // sent; its reply has not come
  kRefused,  // not taken (connection lost, or refused): to be sent again
};

// How a job ends, once its run is over: what ACK records and which counter
// counts it.
enum class Ending {
  kDone,       // ran and succeeded
  kFailed,     // ran and failed for good (or its record was unusable)
  kScheduled,  // failed, to be retried later
  kSkipped,    // vanished or replaced before its run: ends done, counted as a skip
};
AckAs AckAsOf(Ending e);

struct HeldJob {
  Job job;
  JobState state = JobState::kQueued;
  Call call = Call::kNone;
  Ending ending = Ending::kDone;     // from kRecording / kAcking on
  std::unique_ptr<Outcome> outcome;  // kRecording and kDisposing(WaitS): the run's outcome
  std::string target;                // kRecording: where the file goes ("" for a delete)
  std::string keep_marker;           // a kept file: "~ident" for :files once it is back
  bool redispose = false;            // its outcome was recorded by an earlier holder
  int dispose_failures = 0;          // failed moves or deletes of its file so far
  int64_t dispose_due_ms = 0;        // kDisposeWait: monotonic ms of the next try
  AckItem ack;                       // kAcking: what ACK sends
  bool release_interrupted = false;  // kReleasing: its run was cut short
  // Redis replies this job waited for in sequence: its ENQUEUE and its CLAIM
  // so far (one, when its ENQUEUE claimed it); RECORD and ACK (and every
  // resend) add theirs. STARTED is not waited for. Reported per acknowledged
  // job (QueueCounters).
  int round_trips = 2;
};

class JobTable {
 public:
  JobTable() = default;
  JobTable(const JobTable&) = delete;
  JobTable& operator=(const JobTable&) = delete;

  // Adds a job a claim handed over, in `state` (kQueued, kDisposing or
  // kAcking). REQUIRES: no job with its id is held (the caller drops a
  // duplicate claim first: Find()).
  HeldJob& Add(Job job, JobState state);

  // The job `id`, or null.
  HeldJob* Find(const std::string& id);
  // The job `id`. REQUIRES: it is held.
  HeldJob& Get(const std::string& id);

  // Moves `h` to `to`, with `call` for a state that waits on Redis
  // (kBatched by default) and kNone otherwise. Aborts on a move the diagram
  // above does not have: it would be a bug of dropqd's, not bad input.
  void Move(HeldJob& h, JobState to);
  // Sets where the Redis call of `h` stands. REQUIRES: h waits on Redis.
  void SetCall(HeldJob& h, Call call);

  // Drops job `id`, which is done with: acknowledged, released, or no longer
  // this instance's. REQUIRES: it is held, in kRecording, kDisposeWait,
  // kAcking or kReleasing.
  void Erase(const std::string& id);

  size_t size() const { return jobs_.size(); }
  bool empty() const { return jobs_.empty(); }
  size_t count(JobState s) const { return counts_[static_cast<size_t>(s)]; }

  // Calls `fn` for every held job (in no particular order). `fn` may Move()
  // a job but not Add() or Erase() one.
  void ForEach(const std::function<void(HeldJob&)>& fn);

 private:
  std::unordered_map<std::string, HeldJob> jobs_;  // job id -> what is held
  std::array<size_t, kJobStates> counts_{};        // jobs per state
};

}  // namespace dropq
