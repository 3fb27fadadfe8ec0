#include "store/redis_sync.h"

#include <hiredis/hiredis.h>

#include "store/argv_ref.h"
#include "store/sentinel.h"

namespace dropq {

Result<std::unique_ptr<RedisSync>> RedisSync::Connect(const RedisUrl& given,
                                                      std::chrono::milliseconds timeout) {
  RedisUrl url = given;
  if (url.sentinel()) {
    // The primary the sentinels name now, checked with ROLE (store/sentinel.h).
    auto found = FindPrimary(url, timeout);
    if (!found.ok()) return found.error();
    url.host = found->primary.host;
    url.port = found->primary.port;
    url.sentinels.clear();  // errors below name the primary
  }
  struct timeval tv;
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  redisContext* c = url.unix_socket ? redisConnectUnixWithTimeout(url.path.c_str(), tv)
                                    : redisConnectWithTimeout(url.host.c_str(), url.port, tv);
  if (c == nullptr) return Error{Errc::kRedis, "redis at " + url.Display() + ": out of memory"};
  if (c->err) {
    std::string why = c->errstr;
    redisFree(c);
    return Error{Errc::kRedis, "redis at " + url.Display() + ": " + why};
  }
  redisSetTimeout(c, tv);
  std::unique_ptr<RedisSync> conn(new RedisSync(c));
  if (!url.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!url.user.empty()) auth.push_back(url.user);
    auth.push_back(url.password);
    auto r = conn->Command(auth);
    if (!r.ok()) return r.error();
    if (r->is_error()) return Error{Errc::kRedis, "redis at " + url.Display() + ": " + r->str};
  }
  if (url.db != 0) {
    auto r = conn->Command({"SELECT", std::to_string(url.db)});
    if (!r.ok()) return r.error();
    if (r->is_error()) return Error{Errc::kRedis, "redis at " + url.Display() + ": " + r->str};
  }
  return conn;
}

RedisSync::~RedisSync() { redisFree(c_); }

Result<Reply> RedisSync::Command(const std::vector<std::string>& argv) {
  ArgvRef ref(argv);
  auto* r = static_cast<redisReply*>(redisCommandArgv(c_, ref.argc(), ref.argv(), ref.lens()));
  if (r == nullptr) {
    return Error{Errc::kRedis, std::string("redis: ") + (c_->err ? c_->errstr : "no reply")};
  }
  Reply out = Reply::CopyOf(*r);
  freeReplyObject(r);  // synchronous API: the reply is ours to free
  // A replica now (a failover demoted it): the connection is of no more use
  // for writes; the caller makes a new one, which finds the new primary.
  if (out.is_error() && out.str.rfind("READONLY", 0) == 0) {
    return Error{Errc::kRedis, "redis: " + out.str};
  }
  return out;
}

Result<std::vector<Reply>> RedisSync::Pipeline(const std::vector<std::vector<std::string>>& batch) {
  for (const auto& argv : batch) {
    ArgvRef ref(argv);
    if (redisAppendCommandArgv(c_, ref.argc(), ref.argv(), ref.lens()) != REDIS_OK) {
      return Error{Errc::kRedis, std::string("redis: ") + (c_->err ? c_->errstr : "append")};
    }
  }
  std::vector<Reply> out;
  out.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    auto r = NextReply();
    if (!r.ok()) return r.error();
    out.push_back(std::move(*r));
  }
  return out;
}

Result<Reply> RedisSync::NextReply() {
  void* raw = nullptr;
  if (redisGetReply(c_, &raw) != REDIS_OK || raw == nullptr) {
    return Error{Errc::kRedis, std::string("redis: ") + (c_->err ? c_->errstr : "no reply")};
  }
  auto* r = static_cast<redisReply*>(raw);
  Reply out = Reply::CopyOf(*r);
  freeReplyObject(r);
  return out;
}

Result<Reply> RedisSync::Eval(const Script& script, const std::string& key_base,
                              const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"EVALSHA", script.sha1, "1", key_base};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = Command(argv);
  if (r.ok() && r->is_error() && r->str.rfind("NOSCRIPT", 0) == 0) {
    argv[0] = "EVAL";
    argv[1] = std::string(script.body);
    r = Command(argv);
  }
  if (r.ok() && r->is_error()) r->str = DescribeScriptError(script, r->str);
  return r;
}

}  // namespace dropq
