// JobRecord is one job hash (`<prefix>:{<queue>}:job:<id>`, docs/redis-keys.md)
// decoded for reading, as dropqctl shows it. The hash lives in Redis, where an
// operator (or a bug, or a half-applied restore) can put anything: missing
// fields, text where a number belongs, numbers past int64, negative times,
// binary bytes, megabytes of value. DecodeJobRecord() accepts all of it:
//
//   * every field is kept as stored in `fields` (sorted, one per name), so a
//     caller can always print what is there;
//   * each known field is decoded into its typed member; a value that does not
//     decode leaves the member empty and adds a FieldProblem naming the field;
//   * numbers are parsed with std::from_chars, whole values only, and checked
//     against the field's range (times must be unix ms between 1970 and 9999);
//   * the work is linear in the input (plus one sort), nothing throws, and a
//     problem message quotes at most kMaxQuotedBytes of the offending value.
//
// Pure: no I/O, no Redis. Thread: owner (a plain value type).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/job.h"
#include "common/result.h"

namespace dropq {

// The latest time a record may hold: 9999-12-31T23:59:59.999Z in unix ms.
constexpr int64_t kMaxRecordTimeMs = 253402300799999;

// A problem message quotes at most this many bytes of a bad value (escaped).
constexpr size_t kMaxQuotedBytes = 40;

// One field of a record that could not be decoded, or a required one missing.
struct FieldProblem {
  std::string field;    // the field's name, exact bytes (may need escaping to print)
  std::string message;  // one line, printable: "\"12x\" is not a whole number"
};

// One failed run of the error history: fields `attempt.N`, `stderr.N` and
// `response.N`.
struct AttemptHistory {
  std::optional<std::string> line;         // attempt.N: "result=exit exit=3 ms=12"
  std::optional<std::string> stderr_tail;  // stderr.N: that run's stderr tail
  std::optional<std::string> response;     // response.N: that run's HTTP response tail
};

struct JobRecord {
  // Every field as stored, sorted by name (bytewise), one entry per name. If
  // the input named a field twice, the last value is kept (as HSET would).
  std::vector<std::pair<std::string, std::string>> fields;

  // Text fields, absent when the record lacks them. Always kept as stored,
  // even when a check fails: `name` must pass ValidJobName() and `state` be
  // one of the known states, else a problem is recorded beside the value.
  std::optional<std::string> name;           // relative to the watched directory
  std::optional<std::string> state;          // pending active scheduled done failed retrying
  std::optional<std::string> owner;          // instance holding the job
  std::optional<std::string> result;         // ok exit signal timeout error interrupted ...
  std::optional<std::string> error;          // one line of what went wrong
  std::optional<std::string> stderr_tail;    // stderr: last 4 KiB of the handler's stderr
  std::optional<std::string> sha256;         // builtin sha256's digest
  std::optional<std::string> response;       // an HTTP handler's response, last 4 KiB
  std::optional<std::string> phase;          // "disposing" between outcome and move
  std::optional<std::string> target;         // where the file is going while disposing
  std::optional<std::string> disposed_to;    // where the file went; "(deleted)"
  std::optional<std::string> dispose_error;  // why the last move failed
  std::optional<std::string> last_result;    // the result before a `dropqctl retry`

  // Identity "inode:size:mtime_ns" when the file was enqueued.
  std::optional<FileIdentity> ident;

  // Numbers, absent when missing or undecodable (then `problems` says why).
  std::optional<int64_t> size;         // bytes, >= 0
  std::optional<int64_t> enq;          // times: unix ms, 0..kMaxRecordTimeMs
  std::optional<int64_t> claimed;      //
  std::optional<int64_t> started;      //
  std::optional<int64_t> finished;     //
  std::optional<int64_t> due;          //
  std::optional<int64_t> attempt;      // counters: 0..UINT32_MAX
  std::optional<int64_t> failures;     //
  std::optional<int64_t> tempfails;    //
  std::optional<int64_t> interrupted;  //
  std::optional<int64_t> retried;      //
  std::optional<int64_t> exit_code;    // exit: exit status, 0..255
  std::optional<int64_t> signal;       // killing signal, 0..127
  std::optional<int64_t> ms;           // run time, >= 0
  std::optional<int64_t> http_status;  // an HTTP handler's response status, 100..599

  // The error history by run number (1..UINT32_MAX).
  std::map<uint32_t, AttemptHistory> history;

  // What did not decode, in field order; empty for a sound record.
  std::vector<FieldProblem> problems;

  // The stored value of `field`, or nullptr. O(log n).
  const std::string* Find(std::string_view field) const;
  // The first problem recorded for `field`, or nullptr.
  const FieldProblem* ProblemWith(std::string_view field) const;
};

// Decodes the (field, value) pairs of one job hash, as HGETALL returns them.
// Never fails on a bad value: that becomes a FieldProblem (see above). Fails
// only on an empty input (Errc::kInvalid, "no fields: not a job record"), which
// is what HGETALL returns for a key that does not exist.
Result<JobRecord> DecodeJobRecord(const std::vector<std::pair<std::string, std::string>>& fields);

// The record's first problem as an Error (Errc::kInvalid), "field `size`: ...";
// OK if it has none. For callers that must not act on a doubtful record.
Status CheckJobRecord(const JobRecord& record);

// Parses `value` as the known numeric field `field` would be parsed (its
// range included): for callers that read one field with HGET. An unknown
// field accepts any int64. Fails with Errc::kInvalid naming the field.
Result<int64_t> ParseRecordNumber(std::string_view field, std::string_view value);

// True if `name` can be a job's file name: a path relative to the watched
// directory ("a.pdf", "alice/2026/a.pdf") with no empty, "." or ".."
// component, no leading '/' and no NUL. `why` (optional) says what is wrong
// otherwise. (A flat queue's names hold no '/'; QueueRunner checks that.)
bool ValidJobName(std::string_view name, std::string* why = nullptr);

}  // namespace dropq
