// The validated, immutable configuration of dropqd and dropqctl, loaded from
// YAML (see config/dropq.example.yaml for every key). A Config that exists is
// valid: every check happens in LoadConfig(), before anything touches Redis.
// Immutable after LoadConfig() returns; safe to read from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/result.h"
#include "common/text_template.h"
#include "config/redis_url.h"

namespace dropq {

using Millis = std::chrono::milliseconds;

// What happens to a file after its handler ran.
struct Disposition {
  enum class Kind { kKeep, kDelete, kMoveTo };
  Kind kind = Kind::kKeep;
  std::string dir;  // kMoveTo: absolute directory that exists

  friend bool operator==(const Disposition&, const Disposition&) = default;
};

// An HTTP handler (key `handler.http`): each file goes to an API as one
// request, driven by libcurl on dropqd's loop.
struct HttpConfig {
  enum class Body {
    kFile,       // the file's bytes are the request body (content_type)
    kMultipart,  // multipart/form-data: the file as `file_field`, `fields` beside it
    kJson,       // a small JSON document about the job instead of the file (a webhook)
  };
  // http:// or https://; placeholders are percent-encoded, and so are
  // secrets. The scheme and host are written out, never expanded.
  TextTemplate url;
  std::string method = "PUT";  // PUT or POST
  Body body = Body::kFile;
  std::string content_type = "application/octet-stream";  // kFile
  std::string file_field = "file";                        // kMultipart
  // Form fields beside the file (kMultipart), in the order written:
  // placeholders percent-encoded, secrets sent as they are.
  std::vector<std::pair<std::string, TextTemplate>> fields;
  // Request headers, in the order written: placeholders percent-encoded,
  // secrets verbatim (a CR or LF in one is a config error).
  std::vector<std::pair<std::string, TextTemplate>> headers;
  Millis connect_timeout{10 * 1000};
  std::string ca_file;  // a private CA, absolute; "": the system's store
  bool follow_redirects = false;
  // Statuses (300..599) retried with the queue's backoff, or failed at once,
  // beside the defaults: 408, 425, 429 and 5xx are retried, other 3xx and 4xx
  // fail at once. No status is in both.
  std::vector<int> retry_statuses;
  std::vector<int> permanent_statuses;
  // The longest Retry-After (429, 503) honoured; a longer one is cut to this.
  Millis max_retry_after{10 * 60 * 1000};

  friend bool operator==(const HttpConfig&, const HttpConfig&) = default;
};

struct HandlerConfig {
  enum class Kind { kExec, kSha256, kNoop, kHttp, kServe };
  Kind kind = Kind::kNoop;
  // kExec: argv template with {placeholders}; kServe: the long-lived
  // process's argv ({queue} and {dir} only: a job's own values go over fd 3).
  // Never empty.
  std::vector<std::string> argv;
  std::string manifest;            // kSha256: optional absolute file to append lines to
  HttpConfig http;                 // kHttp
  Millis timeout{10 * 60 * 1000};  // a run (kHttp: the whole request)
  // kServe (docs/serve-protocol.md): a process is replaced after max_jobs
  // jobs (0: never) or once its RSS passes max_rss bytes (0: never), after
  // its current job; one that has not said it is ready within start_timeout
  // is restarted.
  int64_t max_jobs = 0;
  int64_t max_rss = 0;
  Millis start_timeout{30 * 1000};

  friend bool operator==(const HandlerConfig&, const HandlerConfig&) = default;
};

// How failed runs are retried (queue key `retry:`).
struct RetryConfig {
  int max_attempts = 5;                       // failed runs allowed before the job is failed
  Millis initial_delay{1000};                 // delay before retry 1
  Millis max_delay{10 * 60 * 1000};           // cap of the doubling delay
  std::vector<int> permanent_exit_codes{65};  // EX_DATAERR: failed at once, no retry
  std::vector<int> tempfail_exit_codes{75};   // EX_TEMPFAIL: retried without using an attempt

  friend bool operator==(const RetryConfig&, const RetryConfig&) = default;
};

// What an instance does for a queue (key `role`). Several instances on one
// Redis share a queue's jobs; each takes a role per queue.
enum class Role {
  kBoth,     // watch the directory, enqueue, and run handlers (the default)
  kConsume,  // run handlers on jobs other instances enqueued; no watching
  kProduce,  // watch and enqueue; run no handlers
};

struct QueueConfig {
  std::string name;  // [A-Za-z0-9_.-]+, unique
  Role role = Role::kBoth;
  // Absolute directory that exists, no trailing slash. With role consume it
  // is not watched: it is where this host sees the producer's files (shared
  // storage mounted at the same path), for {path} and the dispositions.
  std::string watch;
  std::vector<std::string> include;  // fnmatch globs on the file name; default {"*"}
  std::vector<std::string> exclude;  // the user's globs; DefaultExcludes() always apply too
  Millis settle{0};
  int workers = 2;
  int capacity = 8;  // default 4 x workers (exec), 64 x workers (builtins)
  HandlerConfig handler;
  Disposition on_success;  // default keep
  Disposition on_failure;  // default keep (never kDelete)
  // Limits that hold across every instance on the Redis (0: none). They count
  // job starts: at most rate_max starts in any window of rate_per, and at
  // most max_active handlers running at once. A limited queue claims a job
  // only when it can start it at once.
  int rate_max = 0;
  Millis rate_per{0};
  int max_active = 0;
  int64_t keep_done = 10000;
  int64_t keep_failed = -1;  // failed-job records kept; -1: unlimited (the default)
  RetryConfig retry;
  Millis rescan_interval{5 * 60 * 1000};  // periodic safety rescan; 0 turns it off
  // Where a file sits while its handler runs, under "<processing_dir>/<queue>"
  // (workers/processing.h has the layouts). Absolute, on the watched
  // directory's filesystem; default "<watch>/.dropq-processing". Empty
  // ("off"): the handler works on the file in place.
  std::string processing_dir;
  // processing_dir is "auto" or unset: the area is used only where a
  // descriptor cannot give the same safety (workers/processing.h LayoutOf()).
  bool processing_auto = true;
  // Upload trees (key `recursive`): every directory below `watch` is watched
  // and scanned too, down to `max_depth` (the watched directory's own files
  // are depth 1); a job's name is then its path relative to `watch`.
  bool recursive = false;
  int max_depth = 32;                     // 1..64
  std::vector<std::string> exclude_dirs;  // fnmatch globs on a directory's name: not descended
  Millis poll_interval{10 * 1000};        // rescans of a subtree no watch could be added for
  Millis prune_empty_dirs{0};  // remove subdirectories dropq emptied, idle this long; 0: off

  bool watches() const { return role != Role::kConsume; }
  bool limited() const { return rate_max > 0 || max_active > 0; }
  bool runs_handlers() const { return role != Role::kProduce; }

  // Every key equal: a reload leaves such a queue running as it is.
  friend bool operator==(const QueueConfig&, const QueueConfig&) = default;
  // Every key equal but rate_limit and max_active: a reload changes such a
  // queue's limits where it runs, without draining it.
  bool SameButLimits(const QueueConfig& other) const {
    QueueConfig same = other;
    same.rate_max = rate_max;
    same.rate_per = rate_per;
    same.max_active = max_active;
    return same == *this;
  }
};

struct Config {
  std::string path;            // the file this was loaded from
  RedisUrl redis;              // parsed redis.url
  std::string redis_url_text;  // as written, password removed (for logs)
  // redis.replica_wait: how long a claim or a heartbeat renewal waits for a
  // replica to have it (WAIT 1); 0: none. Default 1s with sentinels, else 0.
  Millis redis_replica_wait{0};
  std::string prefix = "dropq";
  std::string instance;  // default: the hostname
  LogLevel log_level = LogLevel::kInfo;
  Millis drain_timeout{30 * 1000};
  Millis heartbeat_ttl{15 * 1000};  // an instance silent this long may have its jobs reclaimed
  std::vector<QueueConfig> queues;  // at least one
  std::string metrics_listen;       // metrics.listen "host:port" for /metrics; "" (default): off
  // Environment variables a secret was read from (${env:NAME}): removed from
  // every handler's environment.
  std::vector<std::string> secret_env;
  bool has_secrets = false;  // some value came from ${env:}, ${file:} or ${cred:}

  const QueueConfig* FindQueue(const std::string& name) const;
};

// Always-applied excludes: dotfiles and partial-upload names.
const std::vector<std::string>& DefaultExcludes();

// What LoadConfig() resolves.
struct LoadOptions {
  // Read the HTTP handlers' secrets. dropqctl does not: an operator's shell
  // needs Redis' password, not a handler's token. Unread, a secret part is
  // left empty (config/secrets.h).
  bool handler_secrets = true;
};

// Reads and validates `path`. On failure the Error (Errc::kConfig) reads
// "<path>:<line>: <key>: <message>", line 1-based, key dotted
// (e.g. "queues[0].handler.timeout"); callers exit 78 (EX_CONFIG) with it.
Result<Config> LoadConfig(const std::string& path, LoadOptions opts = {});

// Same, from YAML text (for tests); `path` is used only in messages, and
// directories are checked on the real filesystem.
Result<Config> ParseConfig(const std::string& yaml_text, const std::string& path,
                           LoadOptions opts = {});

// Parses "250ms", "30s", "5m", "2h", "7d" (a non-negative integer and a unit).
Result<Millis> ParseDuration(const std::string& text);

// Parses a size in bytes: "4096", "512K", "200M", "1G" (K, M, G: 1024-based;
// "KiB", "MiB", "GiB" too). At most 1T.
Result<int64_t> ParseByteSize(const std::string& text);

// True if `pattern` is a usable fnmatch(3) glob on a file name: not empty,
// no '/', brackets balanced. `why` says what is wrong otherwise.
bool ValidGlob(const std::string& pattern, std::string* why);

// True if the file at relative path `relpath` ("a.pdf", "alice/2026/a.pdf")
// matches `q`'s includes and none of its excludes (the default ones
// included). Globs without '/' match the file's own name, globs with '/' the
// whole relative path (common/path_glob.h).
bool NameSelected(const QueueConfig& q, const std::string& relpath);

// True if a recursive queue descends into a directory named `dir_name`: not
// a dot-directory (.dropq-processing, rsync's and editors' temporaries, .git)
// and not matched by `q.exclude_dirs`.
bool DirSelected(const QueueConfig& q, const std::string& dir_name);

}  // namespace dropq
