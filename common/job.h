// A Job is one file of one queue on its way through dropqd: claimed from
// Redis on the loop, handed to a worker through the JobQueue, reported back as
// an Outcome. Thread: owner (moved from thread to thread, never shared).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dropq {

// What makes a file "the same file" across restarts and hosts: inode, size
// and mtime. Not the device number, which differs between hosts that mount
// the same shared storage.
struct FileIdentity {
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;

  // "ino:size:mtime_ns", the form stored in Redis.
  std::string ToString() const;
  static std::optional<FileIdentity> Parse(std::string_view s);
  static FileIdentity FromStat(const struct stat& st);
  bool operator==(const FileIdentity&) const = default;
};

struct Job {
  std::string id;          // unique everywhere (common/job_id.h)
  std::string queue;       // the queue's name
  std::string name;        // file name relative to the queue's watched directory
  FileIdentity ident;      // the identity the file had when it was enqueued
  uint32_t attempt = 0;    // runs started so far; the run about to start is attempt + 1
  uint32_t failures = 0;   // failed runs so far (what retry.max_attempts bounds)
  uint32_t tempfails = 0;  // runs that ended with a tempfail exit code (no attempt used)
};

// How one run of a handler ended.
enum class RunResult {
  kOk,            // exit status 0 (or a builtin that succeeded)
  kExit,          // non-zero exit status (exit_code)
  kSignal,        // killed by a signal (signal)
  kTimeout,       // handler.timeout passed; its process group was killed
  kError,         // the handler could not be run at all (error)
  kVanished,      // the file was gone before the handler could start
  kReplaced,      // another file took its name before the handler started (it has its own job)
  kInterrupted,   // dropqd stopped it while draining; the job goes back to pending
  kHttp,          // an HTTP handler got a response that is not 2xx (http_status)
  kHandlerError,  // a serve handler answered that the job failed (error)
};

// How a failed run is retried, when the handler knows better than the
// queue's exit-code lists (an HTTP status, a Retry-After).
enum class FailClass {
  kDefault,    // as retry: says (exit codes, then the attempts left)
  kPermanent,  // failed at once, like permanent_exit_codes
  kTempfail,   // retried without using up an attempt, like tempfail_exit_codes
};

// Stable lower-case name stored in job records: "ok", "exit", "signal", ...
std::string_view RunResultName(RunResult r);

struct Outcome {
  Job job;  // attempt is the number of this run
  RunResult result = RunResult::kOk;
  int exit_code = 0;        // kExit
  int signal = 0;           // kSignal, kTimeout (the signal that ended it)
  std::string stderr_tail;  // last 4 KiB of an exec handler's stderr
  std::string sha256;       // builtin sha256: the digest, lower-case hex
  int http_status = 0;      // an HTTP handler's final response status (0: none)
  // The last 4 KiB of that response's body; a serve handler's result (JSON).
  std::string response;
  FailClass fail_class = FailClass::kDefault;
  int64_t retry_after_ms = 0;  // kTempfail: the delay asked for (Retry-After); 0: the backoff
  std::string error;           // kError, kVanished: what went wrong, one line
  int64_t started_ms = 0;      // unix ms
  int64_t duration_ms = 0;
  FileIdentity ident;     // the identity the file had when it was processed
  std::string work_path;  // where the handler worked on it (""; it did not run)
};

}  // namespace dropq
