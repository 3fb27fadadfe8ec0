// The commands of dropqctl, the operator's tool. Each talks to Redis through
// the shared key schema and scripts (store/), prints a human form or, with
// --json, one JSON document on stdout, and returns an exit status:
//   0 ok, 1 not found / failed, 64 usage, 69 Redis unreachable, 78 bad config.
// Errors are one line on stderr. Thread: main (a plain synchronous program).
#pragma once

#include <string>

#include "config/config.h"
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
// Requeues every failed job of `queue`.
int RetryAllFailed(const Env& env, const std::string& queue);

}  // namespace dropq::ctl
