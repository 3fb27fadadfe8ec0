// The Redis key schema, shared by dropqd (async, on the loop) and dropqctl
// (synchronous). docs/redis-keys.md documents every key. Every per-queue key
// carries the queue name as a Redis Cluster hash tag, so one queue's keys
// live in one slot and a Lua script may touch them all:
//
//   <prefix>:{<queue>}:layout     string  the layout of these keys: "2" (store/lua/lib.lua)
//   <prefix>:{<queue>}:job:<id>   hash    one job record, from its first claim on
//   <prefix>:{<queue>}:pending    list    jobs waiting, "<id> <name>" (never claimed) or
//                                         "<id>" (has a record); LPUSH in, RPOP out (FIFO)
//   <prefix>:{<queue>}:active     zset    job id -> claimed-at unix ms (owner in the record)
//   <prefix>:{<queue>}:done       zset    job id -> finished unix ms, trimmed to keep_done
//   <prefix>:{<queue>}:failed     zset    job id -> finished unix ms, never trimmed silently
//   <prefix>:{<queue>}:scheduled  zset    job id -> due unix ms (retries waiting)
//   <prefix>:{<queue>}:files      hash    file name -> "<id> <identity>" (never claimed), a
//                                         job id (has a record), or "~<identity>" once handled
//   <prefix>:{<queue>}:counts     hash    counters
//   <prefix>:{<queue>}:stats      string  layout 1's counters: now a marker older dropqs stop at
//   <prefix>:{<queue>}:paused     string  set: no instance starts new jobs ("<unix ms> <host>")
//   <prefix>:{<queue>}:starts     zset    with rate_limit: the starts in the last `per`
//   <prefix>:{<queue>}:running    zset    with max_active: jobs started, outcome not recorded
//   <prefix>:{<queue>}:throttled_until, :throttled_reason  string  a server's Retry-After
//   <prefix>:{<queue>}:rate:<minute>  hash  enqueued/done/failed in one minute (RATES), 20 min TTL
//   <prefix>:{<queue>}:retry:<instance>  list  job ids whose retry is asked of that instance
//   <prefix>:{<queue>}:freed      channel with max_active: slots freed (Pub/Sub, not a key)
//   <prefix>:instances            set     every instance that registered
//   <prefix>:instance:<name>      string  heartbeat, with a TTL
//
// Immutable value type; thread: any.
#pragma once

#include <string>
#include <string_view>

namespace dropq {

class QueueKeys {
 public:
  QueueKeys(std::string_view prefix, std::string_view queue);

  // "<prefix>:{<queue>}:", what scripts get as KEYS[1] and append to.
  const std::string& base() const { return base_; }
  std::string Job(std::string_view id) const { return base_ + "job:" + std::string(id); }
  std::string Pending() const { return base_ + "pending"; }
  std::string Active() const { return base_ + "active"; }
  std::string Done() const { return base_ + "done"; }
  std::string Failed() const { return base_ + "failed"; }
  std::string Scheduled() const { return base_ + "scheduled"; }
  std::string Files() const { return base_ + "files"; }
  std::string Counts() const { return base_ + "counts"; }
  std::string Layout() const { return base_ + "layout"; }
  std::string Paused() const { return base_ + "paused"; }
  // Job ids whose retry dropqctl or the console asks of `instance` (the one
  // that moved their files): a list, LPUSH in, RPOP out (store/retry_files.h).
  std::string RetryRequests(std::string_view instance) const {
    return base_ + "retry:" + std::string(instance);
  }
  // A Pub/Sub channel: the scripts that free max_active slots publish here.
  std::string Freed() const { return base_ + "freed"; }

 private:
  std::string base_;
};

std::string InstancesKey(std::string_view prefix);
std::string InstanceKey(std::string_view prefix, std::string_view instance);

}  // namespace dropq
