// Finding jobs by what an operator knows of them: part of the name, the start
// of the id, words of the error, when. dropqctl (`list`, `retry`, `purge`)
// and the console (dropq-web) search with this one definition, so that the
// page and a script given the same filter see the same jobs.
//
// Every Redis call a search makes is short, however many jobs a state holds:
// the state's list or sorted set is read in slices of kSearchSlice ids, and
// the records of a slice are read with one pipelined HMGET each (one round
// trip per slice). There is no index to keep: a search of 50,000 failed jobs
// is 100 round trips of 500 small commands (docs/redis-keys.md).
//
// Thread: owner (the RedisSync it is given is used by one thread at a time).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "store/keys.h"
#include "store/redis_sync.h"

namespace dropq {

constexpr int64_t kSearchSlice = 500;

// The job states a search reads, and the key each lives in.
bool IsSearchableState(std::string_view state);  // pending active scheduled failed done

struct JobFilter {
  // The job's name (its path relative to the watched directory): a glob if
  // it holds '*', '?' or '[' (one holding '/' matches the whole relative
  // path as in include globs, common/path_glob.h; one without matches the
  // whole relative path or its last component, fnmatch(3)), otherwise a
  // substring of the relative path. Empty: any name.
  std::string match;
  std::string id_prefix;  // the job id starts with this; empty: any id
  std::string error;      // FailureText() holds this, ignoring ASCII case; empty: any
  // The job's time within [since_ms, until_ms] (unix ms): finished for done
  // and failed, claimed for active, due for scheduled, enqueued for pending.
  std::optional<int64_t> since_ms;
  std::optional<int64_t> until_ms;

  // True if only the time range (or nothing) is set: no record need be read.
  bool NeedsNoRecord() const { return match.empty() && id_prefix.empty() && error.empty(); }
};

// What a search for error text looks in: the run's result, exit status,
// signal and HTTP status, its `error` and its stderr tail, in one line:
// "exit exit 65 convert: bad header" ("result exit" then "exit 65" ...).
std::string FailureText(const std::map<std::string, std::string>& fields);

// True if `name` is selected by `filter.match` (the name part of a filter).
bool NameMatches(const JobFilter& filter, std::string_view name);

// One job as a list shows it: its id, its time in the state, and the record
// fields kSummaryFields that it has (a never-claimed pending job has no
// record: its name and state "pending" come from its :pending entry).
struct JobSummary {
  std::string id;
  int64_t time_ms = 0;  // the state's time, as for JobFilter; 0 if unknown
  std::map<std::string, std::string> fields;
  std::string problem;  // not empty: the record is not a hash (Redis' error)
};
extern const std::vector<std::string> kSummaryFields;

struct SearchOrder {
  bool newest_first = true;  // else oldest first: pending in start order, active by claim
};

struct JobPage {
  int64_t total = 0;                 // jobs that match, in the whole state
  std::vector<JobSummary> jobs;      // matches [offset, offset + limit), in order
  std::vector<std::string> all_ids;  // every match, in order (when asked for)
};

// Searches `state` of the queue whose keys are `keys`. Returns the matches
// from `offset` on (at most `limit`), their total and, if `want_all_ids`,
// every matching id (what a bulk action then carries, so that exactly the
// jobs shown are acted on). Errc::kRedis if Redis fails; a bad state is
// Errc::kInvalid.
Result<JobPage> SearchJobs(RedisSync& redis, const QueueKeys& keys, std::string_view state,
                           const JobFilter& filter, SearchOrder order, int64_t offset,
                           int64_t limit, bool want_all_ids);

}  // namespace dropq
