// The names of a job record's fields (`<prefix>:{<queue>}:job:<id>`) and of
// the states a job is in: the one table of them on the C++ side. The Lua
// scripts in store/lua/ write the same names; store_scripts_test checks that
// every field they leave in a record is one of these. docs/redis-keys.md
// says what each holds. Immutable; thread: any.
#pragma once

#include <string_view>

namespace dropq::jobfield {

inline constexpr std::string_view kName = "name";    // file name, relative to `watch`
inline constexpr std::string_view kSize = "size";    // layout 1 only: bytes when enqueued
inline constexpr std::string_view kIdent = "ident";  // "inode:size:mtime_ns" when enqueued
inline constexpr std::string_view kState = "state";  // one of the states below
inline constexpr std::string_view kEnq = "enq";      // layout 1 only: enqueued at (now: the id's)
inline constexpr std::string_view kOwner = "owner";  // instance holding it (active)
inline constexpr std::string_view kClaimed = "claimed";
inline constexpr std::string_view kAttempt = "attempt";  // runs started
inline constexpr std::string_view kStarted = "started";
inline constexpr std::string_view kResult = "result";  // RunResultName(), or "interrupted"
inline constexpr std::string_view kExit = "exit";
inline constexpr std::string_view kSignal = "signal";
inline constexpr std::string_view kMs = "ms";
inline constexpr std::string_view kError = "error";
inline constexpr std::string_view kStderr = "stderr";
inline constexpr std::string_view kSha256 = "sha256";
inline constexpr std::string_view kHttpStatus = "http_status";  // an HTTP handler's response status
inline constexpr std::string_view kResponse = "response";       // its body's last 4 KiB
inline constexpr std::string_view kFailures = "failures";
inline constexpr std::string_view kTempfails = "tempfails";
inline constexpr std::string_view kDue = "due";
inline constexpr std::string_view kPhase = "phase";      // "disposing" between RECORD and ACK
inline constexpr std::string_view kTarget = "target";    // where the file is going, "(delete)"
inline constexpr std::string_view kOutcome = "outcome";  // the state ACK will set
inline constexpr std::string_view kPident = "pident";    // identity of the file processed
inline constexpr std::string_view kDisposedTo = "disposed_to";  // where it went, "(deleted)"
inline constexpr std::string_view kDisposeError = "dispose_error";
inline constexpr std::string_view kDisposeFailures = "dispose_failures";
inline constexpr std::string_view kFinished = "finished";
inline constexpr std::string_view kInterrupted = "interrupted";
inline constexpr std::string_view kLastResult = "last_result";
inline constexpr std::string_view kRetried = "retried";
// Why the instance asked to retry the job could not (dropqctl retry asked
// it through Redis: store/retry_files.h); cleared by a successful retry.
inline constexpr std::string_view kRetryError = "retry_error";
// The error history: "attempt.<n>", "stderr.<n>" and "response.<n>" per
// failed run n.
inline constexpr std::string_view kAttemptPrefix = "attempt.";
inline constexpr std::string_view kStderrPrefix = "stderr.";
inline constexpr std::string_view kResponsePrefix = "response.";

// Every fixed field name above, for checks and listings.
inline constexpr std::string_view kAll[] = {kName,         kSize,
                                            kIdent,        kState,
                                            kEnq,          kOwner,
                                            kClaimed,      kAttempt,
                                            kStarted,      kResult,
                                            kExit,         kSignal,
                                            kMs,           kError,
                                            kStderr,       kSha256,
                                            kFailures,     kTempfails,
                                            kDue,          kPhase,
                                            kTarget,       kOutcome,
                                            kPident,       kDisposedTo,
                                            kDisposeError, kDisposeFailures,
                                            kFinished,     kInterrupted,
                                            kLastResult,   kRetried,
                                            kHttpStatus,   kResponse,
                                            kRetryError};

// True if `field` is one of kAll, or "attempt.<n>", "stderr.<n>" or "response.<n>" with n a
// run number (1 or more, no leading zero).
bool IsKnown(std::string_view field);

// The values of `state`.
inline constexpr std::string_view kPending = "pending";
inline constexpr std::string_view kActive = "active";
inline constexpr std::string_view kScheduled = "scheduled";
inline constexpr std::string_view kDone = "done";
inline constexpr std::string_view kFailed = "failed";
inline constexpr std::string_view kRetrying = "retrying";
inline constexpr std::string_view kStates[] = {kPending, kActive, kScheduled,
                                               kDone,    kFailed, kRetrying};
// The value of `phase` while the outcome is recorded and the file not yet moved.
inline constexpr std::string_view kDisposing = "disposing";

}  // namespace dropq::jobfield
