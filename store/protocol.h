// The protocol between dropq and its Lua scripts (store/lua/*.lua), defined
// once: what each call's ARGV holds and what its reply means. dropqd and
// dropqctl build every script call with these encoders and read every reply
// with these decoders; nothing else knows a position in an ARGV or a reply.
//
// Replies are outside input: Redis can lose acknowledged writes (a crash
// under appendfsync everysec, a failover) and anyone can edit a key. A reply
// of the wrong shape is an Error value (Errc::kRedis) naming what was wrong,
// never a crash; a job whose record holds something unusable is reported as
// such (ClaimedJob::Kind::kInvalid) so that the caller can end it.
//
// Pure: no I/O. Thread: any (value types).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/job.h"
#include "common/result.h"
#include "store/reply.h"

namespace dropq {

using Fields = std::vector<std::pair<std::string, std::string>>;

// The fields an outcome leaves in a job record (result, attempt, ms, exit,
// signal, error, stderr, sha256, failures, tempfails, and for a failed run
// its line of the error history "attempt.<n>" / "stderr.<n>").
Fields OutcomeFields(const Outcome& o);

// ---------------------------------------------------------------- layout

// The layout of a queue's keys these scripts read and write (LAYOUT in
// store/lua/lib.lua; docs/redis-keys.md). Every script refuses a queue of
// another layout with an error starting "LAYOUT"; UPGRADE (no ARGV) brings a
// queue of the previous layout to this one and answers kLayout.
inline constexpr int kLayout = 2;
bool IsLayoutReply(const Reply& r);
Status DecodeUpgrade(const Reply& r);

// An entry of :pending or :files split at its first space (split_entry() in
// lib.lua): a job never claimed has no record and is "<id> <name>" in
// :pending and "<id> <ident>" in :files; a job with a record is "<id>" in
// both. `rest` is nullopt for the latter.
struct Entry {
  std::string_view id;
  std::optional<std::string_view> rest;
};
Entry SplitEntry(std::string_view entry);

// ---------------------------------------------------------------- ENQUEUE and CLAIM

// The state an outcome recorded by RECORD ends the job in.
enum class AckAs { kDone, kFailed, kScheduled };
std::string_view AckAsName(AckAs a);  // "done", "failed", "scheduled"

// One job a claim handed over (now active, owned by the caller). CLAIM's
// reply and ENQUEUE's third element carry them packed: one string of
// NUL-ended fields, 8 per job (packed_jobs() in store/lua/lib.lua).
struct ClaimedJob {
  enum class Kind {
    kRun,        // run its handler
    kRedispose,  // its outcome was recorded by an earlier holder: only the disposition is left
    kCorrupt,    // CLAIM found an unusable record and set it aside (failed): nothing to do
    kInvalid,    // claimed, but its name is not a plain file name (`problem`): end it failed
  };
  Kind kind = Kind::kRun;
  Job job;                        // id, name, ident, attempt, failures, tempfails; queue not set
  AckAs recorded = AckAs::kDone;  // kRedispose: the recorded outcome (kDone or kFailed)
  FileIdentity processed;         // kRedispose: the file that run processed
  std::string problem;            // kInvalid: why, one line
};

struct EnqueueItem {
  std::string id;  // a new job id (common/job_id.h)
  std::string name;
  FileIdentity ident;
};
// ENQUEUE makes `items` jobs and, with `max_claim` > 0, claims up to that
// many jobs for `instance` in the same call: those waiting in :pending
// first, then the new files, straight to active.
std::vector<std::string> EncodeEnqueue(int64_t now_ms, std::string_view instance, int max_claim,
                                       const std::vector<EnqueueItem>& items);
struct Enqueued {
  uint64_t enqueued = 0;            // how many of the files became new jobs
  bool paused = false;              // the queue is paused: nothing was claimed
  std::vector<ClaimedJob> claimed;  // in the order they were claimed
};
// `n`: the number of files sent. Errc::kRedis when the reply is not
// ENQUEUE's shape (then nothing in it can be trusted).
Result<Enqueued> DecodeEnqueue(const Reply& r, size_t n);

// A queue's limits across instances (0: none): at most `rate_max` claims in
// any window of `rate_per_ms`, at most `max_active` jobs running.
struct ClaimLimits {
  int rate_max = 0;
  int64_t rate_per_ms = 0;
  int max_active = 0;
};
std::vector<std::string> EncodeClaim(int64_t now_ms, std::string_view instance, int max,
                                     const ClaimLimits& limits = {});
// The claimed jobs, in the order CLAIM took them. Errc::kRedis when the
// reply is not CLAIM's shape (then nothing in it can be trusted).
Result<std::vector<ClaimedJob>> DecodeClaim(const Reply& r);
// A refused CLAIM because the queue is paused (`dropqctl pause`).
bool IsPausedReply(const Reply& r);
// Whether a CLAIM or ENQUEUE reply claimed at least one job, by its shape
// alone (a bad reply says yes): what a failover must not lose before the
// jobs run (RedisConn::EvalReplicated()).
bool ClaimedAny(const Reply& r);
// Why a CLAIM claimed nothing, when it was held back (nullopt otherwise).
struct ClaimHeld {
  enum class Kind {
    kThrottled,  // for `ms` more: a server's Retry-After
    kRate,       // rate_limit: the next slot opens in `ms`
    kActive,     // max_active jobs run now (`ms` 0)
  };
  Kind kind = Kind::kRate;
  int64_t ms = 0;
};
std::optional<ClaimHeld> DecodeClaimHeld(const Reply& r);

// THROTTLE: no instance claims a job of the queue for `delay_ms` (from
// Redis' clock); `reason` is shown by dropqctl status.
std::vector<std::string> EncodeThrottle(int64_t delay_ms, std::string_view reason);

// RATES: what this instance enqueued, finished and failed since its last call.
std::vector<std::string> EncodeRates(uint64_t enqueued, uint64_t done, uint64_t failed);

// ---------------------------------------------------------------- per-job calls

struct StartedItem {
  std::string id;
  uint32_t attempt = 0;  // the number of the run that started
};
std::vector<std::string> EncodeStarted(std::string_view instance, int64_t now_ms,
                                       const std::vector<StartedItem>& items);

struct RecordItem {
  std::string id;
  Fields outcome;           // OutcomeFields()
  AckAs as = AckAs::kDone;  // kDone or kFailed
  std::string target;       // where the file goes; "" for a delete
  FileIdentity processed;
};
std::vector<std::string> EncodeRecord(std::string_view instance,
                                      const std::vector<RecordItem>& items);

struct AckItem {
  std::string id;
  AckAs as = AckAs::kDone;
  // The name's entry in :files once the job ends: "" drops it, "~<ident>"
  // marks a file that stays in the directory, handled.
  std::string files_value;
  Fields fields;  // written into the record (kScheduled: `due` among them)
};
std::vector<std::string> EncodeAck(std::string_view instance, int64_t now_ms, int64_t keep_done,
                                   int64_t keep_failed, const std::vector<AckItem>& items);

struct ReleaseItem {
  std::string id;
  bool interrupted = false;  // its run was cut short (counted, marked)
};
std::vector<std::string> EncodeRelease(std::string_view instance,
                                       const std::vector<ReleaseItem>& items);

struct DisposeFailedItem {
  std::string id;
  std::string error;  // why the move or delete failed, one line
  int failures = 0;   // failed tries so far
};
std::vector<std::string> EncodeDisposeFailed(std::string_view instance,
                                             const std::vector<DisposeFailedItem>& items);

// RECORD, ACK and DISPOSE_FAILED answer one string of `n` flags, in order:
// '1' for a job they took (the caller owned it), '0' for one they left alone.
Result<std::vector<bool>> DecodeTaken(const Reply& r, size_t n);

// ---------------------------------------------------------------- recovery and reads

// REQUEUE: every active job of `instance` not in `held` goes back to pending.
std::vector<std::string> EncodeRequeue(std::string_view instance,
                                       const std::vector<std::string>& held);
// The requeued ids.
Result<std::vector<std::string>> DecodeIds(const Reply& r);

struct Promoted {
  int64_t moved = 0;         // scheduled jobs moved to pending
  int64_t next_due_ms = -1;  // unix ms of the next one, -1: none
};
std::vector<std::string> EncodePromote(int64_t now_ms, int max);
Result<Promoted> DecodePromote(const Reply& r);

// STATES: the state of each of `n` jobs, "" for one that has no record.
Result<std::vector<std::string>> DecodeStates(const Reply& r, size_t n);

// RETRY_PREPARE's answer.
struct RetryPrepared {
  std::string name;
  std::string disposed_to;  // where the file went, "(deleted)", or ""
  std::string ident;
  std::string previous;  // the :files entry the name had, "" if none
};
Result<RetryPrepared> DecodeRetryPrepare(const Reply& r);

}  // namespace dropq
