// The Lua scripts that make every job state change atomic, one file each in
// store/lua/ (lib.lua is prepended to all of them), compiled in at build
// time. Their arguments and replies are encoded and decoded in one place,
// store/protocol.h; nothing else builds ARGV for them. Each takes the
// queue's key base ("<prefix>:{<queue>}:") as KEYS[1] and works on a batch of
// jobs, so that a burst costs one script call per batch, not one per file.
// docs/redis-keys.md describes the states and what each script does.
//
//   ENQUEUE  new file(s)        -> pending      (deduplicated by name in :files)
//   CLAIM    pending            -> active       (owner = instance, up to N jobs;
//                                                within rate_limit and max_active)
//   THROTTLE the queue claims nothing until a time (a server's Retry-After)
//   STARTED  active             -> active       (attempt = run number, started)
//   RECORD   active             -> active       (outcome fields, phase=disposing)
//   ACK      active             -> done|failed|scheduled (:files updated, :done trimmed)
//   PROMOTE  scheduled (due)    -> pending      (retries whose delay is over)
//   RELEASE  active (own)       -> pending      (front of the queue; shutdown)
//   REQUEUE  active (own, not held in memory) -> pending   (start-up, reconnect)
//   FORGET   :files "~identity" entries of files that left the directory
//   DISPOSE_FAILED  active (own, disposing) -> active (dispose_error, dispose_failures)
//   STATES   the state of each of some jobs (read only; the processing-area sweep)
//   RETRY_PREPARE / RETRY_COMMIT / RETRY_ABORT   failed -> retrying -> pending
//   RATES    adds an instance's enqueued/done/failed counts to the current
//            minute's counters (:rate:<minute>, for the console's chart)
//
// Every script that changes an active job checks that the caller still owns
// it (owner and state), so a late outcome from a fenced-off instance is
// discarded, not applied. Immutable; thread: any.
#pragma once

#include <string>
#include <string_view>

namespace dropq {

struct Script {
  std::string_view name;  // the file's name: "claim" for store/lua/claim.lua
  std::string body;       // Lua source: lib.lua, then the script
  std::string sha1;       // lower-case hex, what EVALSHA takes
  int lib_lines = 0;      // lines of lib.lua before the script's own first line
};

// Redis names a line of a failing script "user_script:<n>", counted in the
// joined body. Returns `message` with each such mention replaced by the file
// and line it comes from ("store/lua/claim.lua:12", "store/lua/lib.lua:3").
std::string DescribeScriptError(const Script& script, std::string_view message);

const Script& EnqueueScript();
const Script& ClaimScript();
const Script& ThrottleScript();
const Script& StartedScript();
const Script& RecordScript();
const Script& AckScript();
const Script& ReleaseScript();
const Script& RequeueScript();
const Script& ForgetScript();
const Script& StatesScript();
const Script& PromoteScript();
const Script& RetryPrepareScript();
const Script& RetryCommitScript();
const Script& RetryAbortScript();
const Script& PurgeScript();
const Script& DisposeFailedScript();
const Script& UpgradeScript();
const Script& RatesScript();

}  // namespace dropq
