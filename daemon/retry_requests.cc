#include "daemon/retry_requests.h"

#include "common/check.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon/pool_work.h"
#include "store/keys.h"
#include "store/protocol.h"
#include "store/retry_files.h"
#include "store/scripts.h"

namespace dropq {

RetryRequests::RetryRequests(Loop* loop, RedisConn* redis, std::string instance)
    : loop_(loop), redis_(redis), instance_(std::move(instance)) {}

RetryRequests::~RetryRequests() { *alive_ = false; }

void RetryRequests::Poll(const QueueConfig& q, const QueueKeys& keys) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (!redis_->up()) return;
  redis_->Command(
      {"RPOP", keys.RetryRequests(instance_), std::to_string(kRetryBatch)},
      [this, alive = alive_, queue = q.name, watch = q.watch, base = keys.base()](Result<Reply> r) {
        if (!*alive || !r.ok() || r->type != Reply::Type::kArray) return;
        for (const Reply& id : r->elements) One(queue, watch, base, id.AsString());
      });
}

void RetryRequests::One(const std::string& queue, const std::string& watch, const std::string& base,
                        const std::string& id) {
  const auto fail = [this, queue, base, id](const std::string& why) {
    LogWarn("retry.failed", {{"queue", queue}, {"job", id}, {"err", why}});
    // Whoever asked reads why in the record (a purged record is left alone).
    redis_->Command({"HSET", base + "job:" + id, "retry_error", why}, [](Result<Reply>) {});
  };
  redis_->Eval(
      RetryPrepareScript(), base, {id},
      [this, alive = alive_, queue, watch, base, id, fail](Result<Reply> r) {
        if (!*alive || !r.ok()) return;  // Redis went away: the job stays failed
        if (r->is_error()) {
          const size_t sp = r->str.find(' ');
          // A job no longer failed (retried meanwhile, purged) is not an error to record.
          LogInfo("retry.skipped",
                  {{"queue", queue},
                   {"job", id},
                   {"why", sp == std::string::npos ? r->str : r->str.substr(sp + 1)}});
          return;
        }
        auto prepared = DecodeRetryPrepare(*r);
        if (!prepared.ok()) return fail(prepared.error().what);
        auto err = std::make_shared<std::string>();
        const std::string previous = prepared->previous == id ? "" : prepared->previous;
        const int rc = QueueWork(
            loop_->get(),
            [err, watch, name = prepared->name, where = prepared->disposed_to] {  // threadpool
              *err = MoveBackForRetry(watch, name, where);
            },
            [this, alive, err, queue, base, id, previous, fail, name = prepared->name] {  // loop
              if (!*alive) return;
              if (!err->empty()) {
                redis_->Eval(RetryAbortScript(), base, {id, previous}, [](Result<Reply>) {});
                return fail(*err);
              }
              redis_->Eval(
                  RetryCommitScript(), base, {id, std::to_string(NowUnixMs())},
                  [alive, queue, id, name](Result<Reply> c) {
                    if (!*alive || !c.ok()) return;
                    if (c->is_error()) {
                      LogWarn("retry.failed", {{"queue", queue}, {"job", id}, {"err", c->str}});
                      return;
                    }
                    LogInfo("retry.done", {{"queue", queue}, {"job", id}, {"name", name}});
                  });
            });
        if (rc < 0) {
          redis_->Eval(RetryAbortScript(), base, {id, previous}, [](Result<Reply>) {});
          fail("cannot queue the file's move: " + std::string(uv_strerror(rc)));
        }
      });
}

}  // namespace dropq
