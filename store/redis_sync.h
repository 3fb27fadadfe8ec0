// RedisSync is a plain blocking Redis client over hiredis' synchronous API,
// for dropqctl and tests. dropqd never uses it: the daemon talks to Redis
// only through its async connection on the loop. Thread: owner.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/redis_url.h"
#include "store/reply.h"
#include "store/scripts.h"

struct redisContext;

namespace dropq {

class RedisSync {
 public:
  // Connects, authenticates and selects the database. With Sentinel, to the
  // primary the sentinels name (store/sentinel.h). Errc::kRedis on failure.
  static Result<std::unique_ptr<RedisSync>> Connect(const RedisUrl& url,
                                                    std::chrono::milliseconds timeout);
  ~RedisSync();
  RedisSync(const RedisSync&) = delete;
  RedisSync& operator=(const RedisSync&) = delete;

  // Sends one command and waits for its reply. A Redis error reply is a
  // Reply of type kError, not an Error; a broken connection is an Error, and
  // so is READONLY (the server is a replica now: connect again).
  Result<Reply> Command(const std::vector<std::string>& argv);

  // Sends every command of `batch` in one write and reads their replies, in
  // order: one round trip for many small commands (a search reads records
  // in slices this way). A broken connection is an Error for the batch.
  Result<std::vector<Reply>> Pipeline(const std::vector<std::vector<std::string>>& batch);

  // Waits (at most the connect timeout) for the next reply the server
  // pushes without a command: a message, once SUBSCRIBE made this a
  // subscriber. A timeout is an Error, and the connection is then unusable.
  Result<Reply> NextReply();

  // Runs `script` with KEYS = {key_base} (EVALSHA, falling back to EVAL).
  Result<Reply> Eval(const Script& script, const std::string& key_base,
                     const std::vector<std::string>& args);

 private:
  explicit RedisSync(redisContext* c) : c_(c) {}
  redisContext* c_;
};

}  // namespace dropq
