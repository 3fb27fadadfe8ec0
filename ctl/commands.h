// The commands of dropqctl, the operator's tool. Each talks to Redis through
// the shared key schema and scripts (store/), prints a human form or, with
// --json, one JSON document on stdout, and returns an exit status:
//   0 ok, 1 not found / failed, 64 usage, 69 Redis unreachable, 78 bad config.
// Errors are one line on stderr. Thread: main (a plain synchronous program).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.h"
#include "ctl/job_query.h"
#include "store/job_record.h"
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

// ---------------------------------------------------------------- operations
// What the commands above do, as values: the console (web/) calls these
// too, so that the page and dropqctl read and change the queues in one way.
// Each throws RedisDown when Redis cannot be reached (or breaks off).

struct RedisDown : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// `dropqctl status --json`: {"queues": {"<name>": {...}}}.
nlohmann::json StatusJson(const Env& env);
// One queue's part of it, at `now_ms`.
nlohmann::json QueueStatusJson(const Env& env, const QueueConfig& q, int64_t now_ms);
// The per-minute counters of the last `minutes` minutes, oldest first:
// [{"minute": <unix minute>, "enqueued": n, "done": n, "failed": n}, ...].
nlohmann::json RatesJson(const Env& env, const QueueConfig& q, int minutes);
// Every registered instance: name, alive (a heartbeat is there) and what the
// heartbeat says (docs/redis-keys.md), with heartbeat_age_s.
nlohmann::json InstancesJson(const Env& env, int64_t now_ms);

// A job as `dropqctl show` reads it.
struct LoadedJob {
  std::string id;
  const QueueConfig* queue;  // points into env.cfg
  JobRecord record;
  std::string name;  // record.name or ""
  std::string path;  // watch + "/" + name
  bool name_ok;      // name is one of the watched directory's (path may be shown)
};
// nullopt: no such job in any configured queue.
std::optional<LoadedJob> LoadJob(const Env& env, const std::string& id);
// `dropqctl show --json`.
nlohmann::json JobJson(const LoadedJob& job);

// Requeues failed job `id` of `q`: its file is put back, and the job goes to
// pending. A file this process cannot see (on another host, or in a
// directory its user cannot read) is put back by the instance that moved it,
// asked through Redis (store/retry_files.h): then `*asked` (if given) names
// that instance and the job is requeued within seconds, or its record's
// `retry_error` says why not. Returns "" or why not.
std::string RetryOne(const Env& env, const QueueConfig& q, const std::string& id,
                     std::string* asked = nullptr);
// RetryOne() for each: {"retried": [ids], "asked": {id: instance},
// "errors": {id: why}}.
nlohmann::json RetryIds(const Env& env, const QueueConfig& q, const std::vector<std::string>& ids);
// Deletes the records of those of `ids` still in `state` (done | failed)
// that finished at or before `before_ms`; returns how many. A script
// refusal (a key of the wrong type) throws std::runtime_error.
int64_t PurgeIds(const Env& env, const QueueConfig& q, const std::string& state, int64_t before_ms,
                 const std::vector<std::string>& ids);
// Pauses or resumes `q`: {"queue", "paused", "changed"}.
nlohmann::json SetPausedJson(const Env& env, const QueueConfig& q, bool paused);

}  // namespace dropq::ctl
