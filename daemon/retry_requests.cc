#include "daemon/retry_requests.h"

#include "common/check.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon/pool_work.h"
#include "store/protocol.h"
#include "store/retry_files.h"
#include "store/scripts.h"

namespace dropq {

RetryRequests::RetryRequests(Loop* loop, RedisConn* redis, std::string instance)
    : loop_(loop), redis_(redis), instance_(std::move(instance)) {}

RetryRequests::~RetryRequests() { *alive_ = false; }

void RetryRequests::Poll(const QueueConfig& q, const QueueKeys& keys) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (!redis_->up() || busy_[keys.base()] > 0) return;  // the last batch is still under way
  // Read, not popped: an id leaves the list once it has been carried out
  // (or found not to need it), so a connection lost meanwhile loses none.
  const std::string list = keys.RetryRequests(instance_);
  auto cfg = std::make_shared<const QueueConfig>(q);
  redis_->Command({"LRANGE", list, std::to_string(-kRetryBatch), "-1"},
                  [this, alive = alive_, cfg, base = keys.base(), list](Result<Reply> r) {
                    if (!*alive || !r.ok() || r->type != Reply::Type::kArray) return;
                    // LPUSH in: the oldest request is last.
                    for (auto it = r->elements.rbegin(); it != r->elements.rend(); ++it) {
                      ++busy_[base];
                      One(cfg, base, list, it->AsString());
                    }
                  });
}

void RetryRequests::Done(const std::string& base, const std::string& list, const std::string& id,
                         bool remove) {
  --busy_[base];
  if (remove) redis_->Command({"LREM", list, "1", id}, [](Result<Reply>) {});
}

void RetryRequests::One(std::shared_ptr<const QueueConfig> cfg, const std::string& base,
                        const std::string& list, const std::string& id) {
  const std::string queue = cfg->name;
  // Why it could not be done, for whoever asked: in the record (a purged
  // record is left alone), and in the log.
  const auto fail = [this, queue, base, list, id](const std::string& why) {
    LogWarn("retry.failed", {{"queue", queue}, {"job", id}, {"err", why}});
    redis_->Command({"HSET", base + "job:" + id, "retry_error", why}, [](Result<Reply>) {});
    Done(base, list, id, true);
  };
  redis_->Eval(
      RetryPrepareScript(), base, {id},
      [this, alive = alive_, cfg, queue, base, list, id, fail](Result<Reply> r) {
        if (!*alive) return;
        if (!r.ok()) return Done(base, list, id, false);  // Redis went away: asked again later
        if (r->is_error()) {
          const size_t sp = r->str.find(' ');
          // A job no longer failed (retried meanwhile, purged) needs nothing.
          LogInfo("retry.skipped",
                  {{"queue", queue},
                   {"job", id},
                   {"why", sp == std::string::npos ? r->str : r->str.substr(sp + 1)}});
          return Done(base, list, id, true);
        }
        auto prepared = DecodeRetryPrepare(*r);
        if (!prepared.ok()) return fail(prepared.error().what);
        auto err = std::make_shared<std::string>();
        const std::string previous = prepared->previous == id ? "" : prepared->previous;
        const int rc = QueueWork(
            loop_->get(),
            [err, cfg, name = prepared->name, where = prepared->disposed_to] {  // threadpool
              *err = MoveBackForRetry(*cfg, name, where);
            },
            [this, alive, err, queue, base, list, id, previous, fail,
             name = prepared->name] {  // loop
              if (!*alive) return;
              if (!err->empty()) {
                redis_->Eval(RetryAbortScript(), base, {id, previous}, [](Result<Reply>) {});
                return fail(*err);
              }
              redis_->Eval(
                  RetryCommitScript(), base, {id, std::to_string(NowUnixMs())},
                  [this, alive, queue, base, list, id, name](Result<Reply> c) {
                    if (!*alive) return;
                    // No answer: the job may be left `retrying` with its
                    // file back; the request stays, and is carried out
                    // again (PREPARE takes a `retrying` job).
                    if (!c.ok()) return Done(base, list, id, false);
                    if (c->is_error()) {
                      LogWarn("retry.failed", {{"queue", queue}, {"job", id}, {"err", c->str}});
                    } else {
                      LogInfo("retry.done", {{"queue", queue}, {"job", id}, {"name", name}});
                    }
                    Done(base, list, id, true);
                  });
            });
        if (rc < 0) {
          redis_->Eval(RetryAbortScript(), base, {id, previous}, [](Result<Reply>) {});
          fail("cannot queue the file's move: " + std::string(uv_strerror(rc)));
        }
      });
}

}  // namespace dropq
