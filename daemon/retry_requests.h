// RetryRequests carries out the retries that other processes ask this
// instance for. A failed job's file lies where this instance moved it (the
// record's `disposed_to`, on this host); dropqctl and the console move it
// back themselves when they can see it, and otherwise push the job id on
// <base>retry:<instance> of the instance named in the record's `owner`
// (store/retry_files.h, docs/redis-keys.md). Once per tick, for each queue
// whose handlers run here and whose last batch is over, this reads up to
// kRetryBatch ids from that list, oldest first, and for each: RETRY_PREPARE;
// the file moved back on the threadpool (MoveBackForRetry); RETRY_COMMIT, or
// RETRY_ABORT and the reason in the record's `retry_error` field. Each is
// logged (retry.done, retry.failed, retry.skipped), and only then removed
// from the list (LREM): a request whose answers a lost connection swallowed
// is carried out again on a later tick (RETRY_PREPARE takes a job left
// `retrying`; one already requeued is skipped).
//
// Thread: loop. Replies and threadpool work finishing after its destruction
// do nothing.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "config/config.h"
#include "daemon/loop.h"
#include "daemon/redis_conn.h"
#include "store/keys.h"

namespace dropq {

class RetryRequests {
 public:
  static constexpr int kRetryBatch = 100;

  // `loop` and `redis` must outlive it.
  RetryRequests(Loop* loop, RedisConn* redis, std::string instance);
  ~RetryRequests();
  RetryRequests(const RetryRequests&) = delete;
  RetryRequests& operator=(const RetryRequests&) = delete;

  // Takes the requests waiting for queue `q`, whose keys are `keys`. Does
  // nothing while Redis is down.
  void Poll(const QueueConfig& q, const QueueKeys& keys);

 private:
  void One(std::shared_ptr<const QueueConfig> cfg, const std::string& base, const std::string& list,
           const std::string& id);
  // Request `id` of `list` is over; `remove`: take it off the list.
  void Done(const std::string& base, const std::string& list, const std::string& id, bool remove);

  Loop* loop_;
  RedisConn* redis_;
  const std::string instance_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed
  std::map<std::string, int> busy_;  // by queue key base: requests under way
};

}  // namespace dropq
