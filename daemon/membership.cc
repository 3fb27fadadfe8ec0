#include "daemon/membership.h"

#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/check.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon/orphans.h"
#include "store/keys.h"
#include "store/protocol.h"
#include "store/scripts.h"

namespace dropq {
namespace {

std::string Hostname() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return "?";
  return host;
}

}  // namespace

Membership::Membership(const Config& cfg, Loop* loop, RedisConn* redis, int64_t started_ms,
                       Hooks hooks)
    : cfg_(cfg),
      loop_(loop),
      redis_(redis),
      started_ms_(started_ms),
      hooks_(std::move(hooks)),
      heartbeat_ok_ms_(MonoMs()) {}

Membership::~Membership() { *alive_ = false; }

void Membership::Heartbeat() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (!redis_->up()) return;
  // docs/redis-keys.md, `instance:<name>`: what the console shows of it.
  nlohmann::json roles = nlohmann::json::object();
  if (hooks_.roles) {
    for (const auto& [queue, role] : hooks_.roles()) roles[queue] = role;
  }
  const nlohmann::json info_json = {{"pid", getpid()},
                                    {"started_ms", started_ms_},
                                    {"version", DROPQ_VERSION},
                                    {"layout", kLayout},
                                    {"host", Hostname()},
                                    {"sent_ms", NowUnixMs()},
                                    {"ttl_ms", cfg_.heartbeat_ttl.count()},
                                    {"active", hooks_.held ? hooks_.held() : 0},
                                    {"roles", roles}};
  const std::string info = info_json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  redis_->Command({"SADD", InstancesKey(cfg_.prefix), cfg_.instance}, [](Result<Reply>) {});
  const int64_t sent_ms = MonoMs();
  // With replica waits the reply comes once a replica has the renewal too
  // (a failover cannot lose the time it bought). When none acknowledged in
  // time it counts all the same: fencing every instance because a replica is
  // slow would kill every handler while the primary is fine, and in a
  // failover the next renewal goes to the new primary long before the one
  // it holds expires (RedisConn logs and counts the miss; docs/guarantees.md
  // says what that leaves open).
  redis_->CommandReplicated({"SET", InstanceKey(cfg_.prefix, cfg_.instance), info, "PX",
                             std::to_string(cfg_.heartbeat_ttl.count())},
                            [this, alive = alive_, sent_ms](Result<Reply> r, bool) {
                              if (!*alive || !r.ok() || r->is_error()) return;
                              heartbeat_ok_ms_ = std::max(heartbeat_ok_ms_, sent_ms);
                              if (std::exchange(fenced_, false)) LogInfo("instance.unfenced");
                            });
}

void Membership::CheckFence() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  // Past heartbeat_ttl without a renewal, another instance may already have
  // reclaimed our active jobs and be running them: stop ours, so that two
  // runs of one job never overlap. Their outcomes are not needed; the jobs
  // go back to pending (or already belong to someone else, and Redis refuses
  // whatever this instance says about them).
  if (fenced_) return;
  const int64_t silent_ms = MonoMs() - heartbeat_ok_ms_;
  if (silent_ms <= cfg_.heartbeat_ttl.count()) return;
  const size_t held = hooks_.held();
  if (held == 0) return;
  fenced_ = true;
  LogError("instance.fenced", {{"instance", cfg_.instance},
                               {"silent_ms", silent_ms},
                               {"heartbeat_ttl_ms", cfg_.heartbeat_ttl.count()},
                               {"held", held}});
  hooks_.fence();
  // A connection that took no heartbeat for that long is not worth waiting
  // on (a reset or a cut the socket never reported): make a new one.
  redis_->Drop("no reply for " + std::to_string(silent_ms) + " ms");
}

void Membership::Reap() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (!redis_->up() || !hooks_.active()) return;
  // A random sample, not the whole registry: with N instances each looking
  // at every other one per tick, the checks would grow as N squared (1,000
  // hosts: 200,000 EXISTS/s). With a sample of kReapSample, an expired
  // instance is still looked at by about kReapSample instances per tick.
  constexpr int kReapSample = 16;
  std::vector<std::string> sample = {"SRANDMEMBER", InstancesKey(cfg_.prefix),
                                     std::to_string(kReapSample)};
  redis_->Command(std::move(sample), [this, alive = alive_](Result<Reply> r) {
    if (!*alive || !r.ok() || r->is_error() || !hooks_.active()) return;
    for (const Reply& e : r->elements) {
      std::string other = e.AsString();
      if (other == cfg_.instance || reaping_.count(other) != 0) continue;
      redis_->Command({"EXISTS", InstanceKey(cfg_.prefix, other)},
                      [this, alive, other](Result<Reply> x) {
                        // A live heartbeat, or no answer: leave it alone.
                        if (!*alive || !x.ok() || x->is_error() || x->AsInt() != 0) return;
                        ReclaimFrom(other);
                      });
    }
  });
}

namespace {
struct OrphanHunt {
  uv_work_t req;
  std::string instance, ns;
  std::function<void()> done;
};
}  // namespace

void Membership::ReclaimFrom(const std::string& other) {
  if (!hooks_.active() || !reaping_.insert(other).second) return;
  LogWarn("instance.expired",
          {{"instance", other}, {"heartbeat_ttl_ms", cfg_.heartbeat_ttl.count()}});
  // If it ran on this host, its orphaned handlers die before their jobs run
  // again elsewhere. Reading /proc blocks: the threadpool does it.
  auto* hunt = new OrphanHunt;
  hunt->req.data = hunt;
  hunt->instance = other;
  hunt->ns = NamespaceOf(cfg_.redis.Identity(), cfg_.prefix);
  hunt->done = [this, alive = alive_, other] {
    if (!*alive) return;
    if (!hooks_.active() || !redis_->up()) {
      reaping_.erase(other);
      return;
    }
    const auto queues = hooks_.queues();
    if (queues.empty()) {
      reaping_.erase(other);
      return;
    }
    auto left = std::make_shared<size_t>(queues.size());
    for (const auto& [name, base] : queues) {
      redis_->Eval(
          RequeueScript(), base, {other},
          [this, alive, name = name, other, left](Result<Reply> rep) {
            if (!*alive) return;
            if (rep.ok() && !rep->is_error() && !rep->elements.empty()) {
              LogWarn("jobs.reclaimed",
                      {{"queue", name}, {"from", other}, {"count", rep->elements.size()}});
            }
            if (--*left == 0) {
              // Done with it; if it comes back it registers again.
              redis_->Command({"SREM", InstancesKey(cfg_.prefix), other}, [](Result<Reply>) {});
              reaping_.erase(other);
            }
          });
    }
  };
  const int rc = uv_queue_work(
      loop_->get(), &hunt->req,
      [](uv_work_t* req) {
        auto* h = static_cast<OrphanHunt*>(req->data);
        KillOrphans(FindOrphans(h->instance, h->ns));
      },
      [](uv_work_t* req, int) {
        std::unique_ptr<OrphanHunt> h(static_cast<OrphanHunt*>(req->data));
        h->done();
      });
  if (rc < 0) {
    delete hunt;
    reaping_.erase(other);
  }
}

}  // namespace dropq
