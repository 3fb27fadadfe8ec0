// ScriptBatches tells Redis what became of the jobs a queue runner holds:
// STARTED, RECORD, ACK and RELEASE, and FORGET for names that left the
// directory. Each is collected during a loop turn and sent as one script
// call per kind per Flush(), so a burst costs a few calls per batch rather
// than a round trip per file; at most two ACK calls are in flight, and what
// finishes meanwhile goes out as the next batch. STARTED is sent only for
// runs still going kStartedDelayMs after they began. A call Redis did not
// take leaves its jobs' Call at kRefused, for Resend().
//
// It works on the runner's JobTable: it reads what to send from the held
// jobs, and on a reply moves or erases them and counts them (QueueCounters).
// What the runner must do next it learns through its Hooks.
//
// Thread: loop. Replies arriving after its destruction do nothing.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "daemon/job_table.h"
#include "daemon/loop.h"
#include "daemon/queue_counters.h"
#include "daemon/redis_conn.h"
#include "daemon/uv_handle.h"
#include "store/keys.h"
#include "store/protocol.h"

namespace dropq {

class ScriptBatches {
 public:
  struct Hooks {
    // RECORD took these jobs: they are in kDisposing, their files to move.
    std::function<void(const std::vector<HeldJob*>& recorded)> recorded;
    // An ACK or RELEASE reply is in: jobs left the table (room to claim;
    // after a RELEASE, jobs are pending again).
    std::function<void(bool released)> freed;
    // After every reply of RECORD, ACK and RELEASE: the drain check.
    std::function<void()> settled;
  };

  // Every pointer and reference must outlive it.
  ScriptBatches(Loop* loop, RedisConn* redis, const QueueKeys* keys, const std::string& instance,
                const QueueConfig& q, JobTable* jobs, QueueCounters* counters, Hooks hooks);
  ~ScriptBatches();
  ScriptBatches(const ScriptBatches&) = delete;
  ScriptBatches& operator=(const ScriptBatches&) = delete;

  // Run `id` (attempt `attempt`) started: STARTED once it has run
  // kStartedDelayMs, if it still runs then.
  void Started(const std::string& id, uint32_t attempt);
  // `h` (kRecording) is recorded with the next flush.
  void Record(HeldJob& h);
  // `h` (kAcking) ends with the next flush's ACK: its :files entry becomes
  // `files_value` ("" drops it), `fields` go into its record.
  void Ack(HeldJob& h, const std::string& files_value, Fields fields);
  // `h` goes back to pending with the next flush's RELEASE (moved to kReleasing).
  void Release(HeldJob& h, bool interrupted);
  // The "handled" marker of `name` is dropped with the next flush.
  void Forget(std::string name);

  // Jobs (or names) per script call at most.
  static constexpr size_t kMaxBatch = 256;

  // Sends every batch collected (RECORD, ACK, RELEASE, FORGET).
  void Flush();
  // Batches again every call Redis did not take, and flushes.
  void Resend();
  // Some job waits for a call Redis did not take.
  bool AnyRefused();
  // Stops the STARTED timer (the runner drained: the loop may end).
  void Close();

 private:
  void SendRecords();
  void SendAcks();
  void SendReleases();
  void SendForgets();
  void SendStarted();
  // Marks the held jobs `ids` as sent (Call::kSent) and returns make(job)
  // for each, in order: the items of one script call.
  template <typename Item, typename Make>
  std::vector<Item> MarkSent(const std::vector<std::string>& ids, Make make);
  // Makes the STARTED timer fire in `delay_ms` (0 if negative).
  void ArmStarted(int64_t delay_ms);

  Loop* const loop_;
  RedisConn* const redis_;
  const QueueKeys* const keys_;
  const std::string instance_;
  const QueueConfig& q_;
  JobTable* const jobs_;
  QueueCounters* const counters_;
  const Hooks hooks_;
  UvHandle<uv_timer_t> started_timer_;
  // Runs to record with STARTED, with the monotonic ms from which they are due.
  std::vector<std::pair<int64_t, StartedItem>> started_;
  std::vector<std::string> record_ids_;
  std::vector<std::string> ack_ids_;
  int acks_inflight_ = 0;                 // ACK calls awaiting their reply
  std::vector<std::string> release_ids_;  // each HeldJob says whether it was interrupted
  std::vector<std::string> forgets_;
  const std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dropq
