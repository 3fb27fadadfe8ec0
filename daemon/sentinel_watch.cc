#include "daemon/sentinel_watch.h"

#include <sstream>

#include "common/check.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon/pool_work.h"
#include "store/sentinel.h"

namespace dropq {

namespace {
constexpr char kChannel[] = "+switch-master";
}  // namespace

SentinelWatch::SentinelWatch(Loop* loop, RedisUrl url,
                             std::function<void(const HostPort&)> on_switch)
    : loop_(loop), url_(std::move(url)), on_switch_(std::move(on_switch)) {
  DROPQ_CHECK(url_.sentinel());
}

SentinelWatch::~SentinelWatch() { *alive_ = false; }

void SentinelWatch::Start() { ListenTo(0); }

void SentinelWatch::ListenTo(size_t index) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  conn_.reset();
  index_ = index % url_.sentinels.size();
  unreachable_since_ms_ = MonoMs();
  // hiredis would resolve a name with a blocking getaddrinfo on the loop:
  // the threadpool resolves it first, and the connection is made by address.
  auto numeric = std::make_shared<Result<std::string>>(Error{Errc::kRedis, "not resolved"});
  const std::string host = url_.sentinels[index_].host;
  resolving_ = true;
  const int rc = QueueWork(
      loop_->get(), [host, numeric] { *numeric = NumericHost(host); },
      [this, alive = alive_, numeric, index = index_] {
        if (!*alive) return;
        resolving_ = false;
        if (index != index_) return;
        if (!numeric->ok()) {
          LogWarn("redis_sentinel_watch.down",
                  {{"addr", url_.sentinels[index_].Display()}, {"err", numeric->error().what}});
          return;  // Tick() moves on
        }
        Open(**numeric);
      });
  if (rc < 0) resolving_ = false;
}

void SentinelWatch::Open(const std::string& numeric_host) {
  // A plain connection to the sentinel: its own credentials, no database.
  RedisUrl to;
  to.host = numeric_host;
  to.port = url_.sentinels[index_].port;
  to.user = url_.sentinel_user;
  to.password = url_.sentinel_password;
  RedisConn::Hooks hooks;
  hooks.log_name = "redis_sentinel_watch";
  hooks.up = [this, alive = alive_] {
    if (*alive) unreachable_since_ms_ = -1;
  };
  hooks.down = [this, alive = alive_] {
    // Lost: the next sentinel, on a later turn (not inside this
    // connection's own callback).
    loop_->Post([this, alive] {
      if (*alive) ListenTo(index_ + 1);
    });
  };
  conn_ = std::make_unique<RedisConn>(loop_, std::move(to), std::move(hooks));
  conn_->Subscribe(kChannel, [this, alive = alive_](const std::string& payload) {
    if (!*alive) return;
    std::optional<HostPort> next = ParseSwitch(payload, url_.master);
    if (!next) return;  // another primary the sentinel watches
    LogInfo("redis.switch_master",
            {{"to", next->Display()}, {"sentinel", url_.sentinels[index_].Display()}});
    // On a later turn: what on_switch_ sets off (a dropped connection, its
    // callbacks, maybe the end of a shutdown) must not run inside this
    // connection's own callback.
    loop_->Post([this, alive, primary = *next] {
      if (*alive) on_switch_(primary);
    });
  });
  conn_->Start();
}

void SentinelWatch::Tick() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (resolving_ || (conn_ != nullptr && conn_->up()) || unreachable_since_ms_ < 0) return;
  if (MonoMs() - unreachable_since_ms_ < kRotateMs) return;
  ListenTo(index_ + 1);
}

std::optional<HostPort> SentinelWatch::ParseSwitch(const std::string& payload,
                                                   const std::string& master) {
  std::istringstream in(payload);
  std::string name, old_host, old_port, host, port, extra;
  if (!(in >> name >> old_host >> old_port >> host >> port) || (in >> extra)) return std::nullopt;
  if (name != master) return std::nullopt;
  auto hp = ParseHostPort(host.find(':') != std::string::npos ? "[" + host + "]:" + port
                                                              : host + ":" + port);
  if (!hp.ok()) return std::nullopt;
  return *hp;
}

}  // namespace dropq
