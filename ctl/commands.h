// The commands of dropqctl, the operator's tool. Each talks to Redis through
// the shared key schema and scripts (store/), prints a human form or, with
// --json, one JSON document on stdout, and returns an exit status:
//   0 ok, 1 not found / failed, 64 usage, 69 Redis unreachable, 78 bad config.
// Errors are one line on stderr. Thread: main (a plain synchronous program).
#pragma once

#include <string>

#include "config/config.h"
#include "ctl/job_query.h"
#include "store/redis_sync.h"

namespace dropq::ctl {

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 64;
constexpr int kUnavailable = 69;
constexpr int kConfigError = 78;

struct Env {
  const Config* cfg;
  RedisSync* redis;
  bool json;
};

// Per queue: pending, active, done, failed and the age of the oldest pending job.
int Status(const Env& env);
// Prints one job record, looked up in every configured queue.
int Show(const Env& env, const std::string& job_id);
// Requeues one failed job (same id, its file put back in place).
int Retry(const Env& env, const std::string& job_id);
// Requeues every failed job of `queue` that `filter` selects (an empty
// filter: all of them), oldest first.
int RetryMatching(const Env& env, const std::string& queue, const JobFilter& filter);
// Up to `limit` jobs of `queue` in `state` (pending | active | scheduled |
// failed | done) that `filter` selects: pending in start order, active and
// scheduled by time, done and failed newest first; and how many match.
int List(const Env& env, const std::string& queue, const std::string& state, int64_t limit,
         const JobFilter& filter);
// Deletes the records of `state` (done | failed) jobs of `queue` that
// finished more than `older_than_ms` ago (0: all of them) and that `filter`
// selects.
int Purge(const Env& env, const std::string& queue, const std::string& state, int64_t older_than_ms,
          const JobFilter& filter);
// Pauses (or resumes) `queue` on every instance: a paused queue keeps
// watching and enqueuing, and starts no new jobs; running ones finish.
int SetPaused(const Env& env, const std::string& queue, bool paused);

}  // namespace dropq::ctl
