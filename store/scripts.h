// The Lua scripts that make every job state change atomic. Each takes the
// queue's key base ("<prefix>:{<queue>}:") as KEYS[1] and works on a batch of
// jobs, so that a burst costs one script call per batch, not one per file.
// docs/redis-keys.md describes the states and what each script does.
//
//   ENQUEUE  new file(s)        -> pending      (deduplicated by name in :files)
//   CLAIM    pending            -> active       (owner = instance, up to N jobs)
//   STARTED  active             -> active       (attempt = run number, started)
//   RECORD   active             -> active       (outcome fields, phase=disposing)
//   ACK      active             -> done|failed|scheduled (:files updated, :done trimmed)
//   PROMOTE  scheduled (due)    -> pending      (retries whose delay is over)
//   RELEASE  active (own)       -> pending      (front of the queue; shutdown)
//   REQUEUE  active (own, not held in memory) -> pending   (start-up, reconnect)
//   FORGET   :files "~identity" entries of files that left the directory
//   STATES   the state of each of some jobs (read only; the processing-area sweep)
//   RETRY_PREPARE / RETRY_COMMIT / RETRY_ABORT   failed -> retrying -> pending
//
// Every script that changes an active job checks that the caller still owns
// it (owner and state), so a late outcome from a fenced-off instance is
// discarded, not applied. Immutable; thread: any.
#pragma once

#include <string>
#include <string_view>

namespace dropq {

struct Script {
  std::string_view name;
  std::string body;  // Lua source
  std::string sha1;  // lower-case hex, what EVALSHA takes
};

const Script& EnqueueScript();
const Script& ClaimScript();
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

}  // namespace dropq
