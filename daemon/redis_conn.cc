#include "daemon/redis_conn.h"

#include <fcntl.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <memory>
#include <string_view>

#include "common/check.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon/pool_work.h"
#include "daemon/redis_uv_adapter.h"
#include "store/argv_ref.h"
#include "store/sentinel.h"

namespace dropq {

namespace {
constexpr int kConnectTimeoutMs = 3000;
constexpr int kMaxBackoffMs = 5000;
}  // namespace

struct RedisConn::PendingCall {
  RedisConn* conn;
  Callback cb;
};

RedisConn::RedisConn(Loop* loop, RedisUrl url, Hooks hooks)
    : loop_(loop), url_(std::move(url)), hooks_(std::move(hooks)) {
  timer_ = MakeTimer(loop_->get(), this);
}

RedisConn::~RedisConn() {
  *alive_ = false;  // a discovery still on the threadpool finds it gone
  stopping_ = true;
  if (ac_ != nullptr) {
    ac_->data = nullptr;  // callbacks run below must not reach *this
    // Runs pending callbacks now with reply == nullptr; their PendingCalls
    // are freed there and their user callbacks see an Error.
    redisAsyncFree(std::exchange(ac_, nullptr));
  }
}

void RedisConn::Start() { Connect(); }

void RedisConn::Stop() {
  stopping_ = true;
  uv_timer_stop(timer_.get());
  if (ac_ == nullptr) return;
  if (up_) {
    redisAsyncDisconnect(ac_);  // once the pending replies are in; OnDisconnect nulls ac_
  } else {
    // Still connecting: nothing can be answered. Free it now (queued commands
    // get their callbacks with an Error).
    ac_->data = nullptr;
    redisAsyncFree(std::exchange(ac_, nullptr));
  }
}

std::string RedisConn::Addr() const {
  if (!url_.sentinel()) return url_.Display();
  return primary_.host.empty() ? url_.Display()
                               : primary_.Display() + "/" + std::to_string(url_.db);
}

void RedisConn::Discover() {
  discovering_ = true;
  auto found = std::make_shared<Result<PrimaryFound>>(Error{Errc::kRedis, "not asked"});
  std::optional<HostPort> tried = std::exchange(announced_, std::nullopt);
  const int rc = QueueWork(
      loop_->get(),
      [url = url_, found, tried] {  // threadpool
        *found = FindPrimary(url, std::chrono::milliseconds(kConnectTimeoutMs), tried);
      },
      [this, alive = alive_, found] {  // loop
        if (!*alive) return;
        discovering_ = false;
        if (stopping_) return;
        // An announcement came meanwhile, and this search did not find that
        // primary: search again now, trying it first.
        if (announced_ && (!found->ok() || !((*found)->primary == *announced_))) {
          Discover();
          return;
        }
        if (!found->ok()) {
          const std::string why = found->error().what;
          if (why != last_error_) {
            LogError(Event("down"), {{"addr", Addr()}, {"err", why}, {"retry_ms", backoff_ms_}});
            last_error_ = why;
          }
          ScheduleReconnect();
          return;
        }
        const PrimaryFound& f = **found;
        for (const std::string& miss : f.misses) LogWarn(Event("sentinel"), {{"err", miss}});
        if (!primary_.host.empty() && !(primary_ == f.primary)) {
          ++stats_.failovers;
          LogWarn(Event("failover"), {{"from", primary_.Display()},
                                      {"to", f.primary.Display()},
                                      {"sentinel", f.named_by}});
        } else if (primary_.host.empty()) {
          LogInfo(
              Event("primary"),
              {{"addr", f.primary.Display()}, {"master", url_.master}, {"sentinel", f.named_by}});
        }
        primary_ = f.primary;
        have_primary_ = true;
        if (f.replicas >= 0) expected_replicas_ = f.replicas;
        if (hooks_.primary) hooks_.primary(f);
        Connect();
      });
  if (rc < 0) {
    discovering_ = false;
    ScheduleReconnect();
  }
}

void RedisConn::Connect() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (stopping_) return;
  if (url_.sentinel() && !have_primary_) {
    Discover();
    return;
  }
  const HostPort at = url_.sentinel() ? primary_ : HostPort{url_.host, url_.port};
  ac_ = url_.unix_socket ? redisAsyncConnectUnix(url_.path.c_str())
                         : redisAsyncConnect(at.host.c_str(), at.port);
  if (ac_ == nullptr || ac_->err) {
    const std::string why = ac_ ? ac_->errstr : "out of memory";
    if (ac_ != nullptr) redisAsyncFree(std::exchange(ac_, nullptr));
    if (why != last_error_) {
      LogError(Event("down"), {{"addr", Addr()}, {"err", why}, {"retry_ms", backoff_ms_}});
      last_error_ = why;
    }
    ScheduleReconnect();
    return;
  }
  // hiredis 0.14 opens its socket without FD_CLOEXEC: a handler must not inherit it.
  if (ac_->c.fd >= 0) fcntl(ac_->c.fd, F_SETFD, fcntl(ac_->c.fd, F_GETFD) | FD_CLOEXEC);
  // A connection that goes silent without a reset (a cut network) is found by
  // TCP keepalive, and then torn down like a reset one.
  if (!url_.unix_socket) redisEnableKeepAlive(&ac_->c);
  ac_->data = this;
  if (AttachRedisToLoop(ac_, loop_->get(), &flushes_) != 0) {
    LogError(Event("down"), {{"addr", Addr()}, {"err", "cannot watch the socket"}});
    redisAsyncFree(std::exchange(ac_, nullptr));
    ScheduleReconnect();
    return;
  }
  redisAsyncSetConnectCallback(ac_, &RedisConn::OnConnect);
  redisAsyncSetDisconnectCallback(ac_, &RedisConn::OnDisconnect);
  // Log in before anything else: hiredis sends queued commands in order once connected.
  if (!url_.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!url_.user.empty()) auth.push_back(url_.user);
    auth.push_back(url_.password);
    Command(std::move(auth), [this](Result<Reply> r) {
      if (r.ok() && r->is_error()) LogError(Event("auth"), {{"addr", Addr()}, {"err", r->str}});
    });
  }
  if (url_.db != 0) {
    Command({"SELECT", std::to_string(url_.db)}, [this](Result<Reply> r) {
      if (r.ok() && r->is_error()) LogError(Event("select"), {{"addr", Addr()}, {"err", r->str}});
    });
  }
  for (const auto& [channel, fn] : subscriptions_) SendSubscription("SUBSCRIBE", channel);
  // A connect that never completes (a host that drops packets): give up on our own.
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<RedisConn*>(t->data);
        if (self->ac_ == nullptr || self->up_) return;
        const std::string why = "connect timed out";
        if (why != self->last_error_) {
          LogError(self->Event("down"), {{"addr", self->Addr()}, {"err", why}});
          self->last_error_ = why;
        }
        self->ac_->data = nullptr;
        redisAsyncFree(std::exchange(self->ac_, nullptr));
        self->ScheduleReconnect();
      },
      kConnectTimeoutMs, 0);
}

void RedisConn::ScheduleReconnect() {
  if (stopping_) return;
  have_primary_ = false;  // with Sentinel, the next attempt asks which server is primary
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<RedisConn*>(t->data);
        self->Connect();
      },
      static_cast<uint64_t>(backoff_ms_), 0);
  backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
}

void RedisConn::OnConnect(const redisAsyncContext* ac, int status) noexcept {
  auto* self = static_cast<RedisConn*>(ac->data);
  if (self == nullptr) return;
  uv_timer_stop(self->timer_.get());
  if (status != REDIS_OK) {
    const std::string why = ac->errstr;
    self->ac_ = nullptr;  // hiredis frees a context whose connect failed
    if (why != self->last_error_) {
      LogError(self->Event("down"),
               {{"addr", self->Addr()}, {"err", why}, {"retry_ms", self->backoff_ms_}});
      self->last_error_ = why;
    }
    self->ScheduleReconnect();
    return;
  }
  self->up_ = true;
  ++self->connections_;
  self->backoff_ms_ = 100;
  if (self->down_since_ms_ >= 0) {
    const int64_t down_ms = MonoMs() - std::exchange(self->down_since_ms_, -1);
    self->stats_.down_ms += static_cast<uint64_t>(down_ms);
    LogInfo(self->Event("up"), {{"addr", self->Addr()}, {"down_ms", down_ms}});
  } else {
    LogInfo(self->Event("up"), {{"addr", self->Addr()}});
  }
  self->last_error_.clear();
  self->replicas_ = -1;  // another server, maybe: wait for a replica until ROLE says
  self->lagging_ = false;
  self->probing_ = false;
  self->suspect_until_ms_ = 0;  // a new connection: what it finds decides
  self->CheckReplicas();
  if (self->hooks_.up) self->hooks_.up();
}

void RedisConn::OnDisconnect(const redisAsyncContext* ac, int status) noexcept {
  auto* self = static_cast<RedisConn*>(ac->data);
  if (self == nullptr) return;
  self->ac_ = nullptr;  // hiredis frees the context after this callback
  const bool was_up = std::exchange(self->up_, false);
  if (self->stopping_) return;
  const std::string why = status == REDIS_OK ? "closed" : ac->errstr;
  LogError(self->Event("down"), {{"addr", self->Addr()}, {"err", why}});
  self->last_error_ = why;
  if (was_up) self->WentDown();
  if (was_up && self->hooks_.down) self->hooks_.down();
  self->ScheduleReconnect();
}

void RedisConn::Drop(const std::string& why) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (ac_ == nullptr || stopping_) return;
  redisAsyncContext* ac = std::exchange(ac_, nullptr);
  ac->data = nullptr;  // OnDisconnect: not for this one, handled here
  redisAsyncFree(ac);  // pending commands get their error now
  const bool was_up = std::exchange(up_, false);
  LogError(Event("down"), {{"addr", Addr()}, {"err", why}});
  last_error_ = why;
  if (was_up) WentDown();
  if (was_up && hooks_.down) hooks_.down();
  ScheduleReconnect();
}

void RedisConn::WentDown() { down_since_ms_ = MonoMs(); }

void RedisConn::Follow(const HostPort& primary) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (!url_.sentinel() || stopping_) return;
  if (up_) {
    if (primary == primary_) return;
    announced_ = primary;
    Drop("the sentinels named a new primary " + primary.Display());
    return;
  }
  announced_ = primary;
  if (discovering_) return;  // its end looks at announced_
  if (ac_ != nullptr) {
    if (primary == primary_) return;  // already connecting there
    // Connecting to the old primary (a dead host costs the connect
    // timeout): give that attempt up.
    ac_->data = nullptr;
    redisAsyncFree(std::exchange(ac_, nullptr));
  }
  // Down, waiting out a backoff: ask now.
  uv_timer_stop(timer_.get());
  have_primary_ = false;
  Connect();
}

bool RedisConn::suspect() const { return suspect_until_ms_ > MonoMs(); }

void RedisConn::Suspect(const std::string& why) {
  if (!url_.sentinel() || suspect()) return;
  suspect_until_ms_ = MonoMs() + kSuspectMs;
  LogWarn(Event("suspect"), {{"addr", Addr()}, {"why", why}, {"hold_claims_ms", kSuspectMs}});
}

RedisConn::Stats RedisConn::stats() const {
  Stats s = stats_;
  if (down_since_ms_ >= 0) s.down_ms += static_cast<uint64_t>(MonoMs() - down_since_ms_);
  return s;
}

namespace {
// The replicas ROLE lists on a primary: ["master", offset, [[ip, port,
// offset], ...]]. -1 for another answer (a refusal, a replica's ROLE).
int RoleReplicas(const Reply& r) {
  if (r.is_error() || r.elements.size() < 3 || r.elements[0].AsString() != "master") return -1;
  return static_cast<int>(r.elements[2].elements.size());
}
}  // namespace

void RedisConn::CheckReplicas() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (replica_wait_.count() == 0 || !up_) return;
  Command({"ROLE"}, [this, alive = alive_, ac = ac_](Result<Reply> r) {
    if (!*alive || ac_ != ac || !r.ok()) return;
    const int n = RoleReplicas(*r);
    if (n < 0) {
      // Refused (an ACL without ROLE), or a replica now (a write says
      // READONLY soon): the count stays as it was; unknown, every write waits.
      if (r->is_error() && last_role_error_ != r->str) {
        last_role_error_ = r->str;
        LogWarn(Event("role"), {{"addr", Addr()}, {"err", r->str}});
      }
      return;
    }
    const int before = std::exchange(replicas_, n);
    if (n == 0 && (before > 0 || (before < 0 && expected_replicas_ > 0))) {
      // Promoted away from this primary, or dead: waits tell which.
      Suspect("the primary lists no replica");
    }
    if (n == 0) {
      lagging_ = false;  // a replica that connects later starts from a full copy
      return;
    }
    if (!lagging_ || probing_) return;
    // Lagging: a short WAIT shows whether a replica keeps up again.
    probing_ = true;
    Command({"WAIT", "1", std::to_string(std::min<int64_t>(kProbeWaitMs, replica_wait_.count()))},
            [this, alive, ac](Result<Reply> w) {
              if (!*alive) return;
              probing_ = false;
              if (ac_ != ac || !w.ok() || w->is_error() || w->AsInt() < 1) return;
              lagging_ = false;
              LogInfo(Event("replicated"), {{"addr", Addr()}});
            });
  });
}

void RedisConn::AfterReplicated(Result<Reply> r, ReplicatedCallback cb, const WroteFn& wrote) {
  if (r.ok() && !up_) {
    // Gone between the reply and now: nothing to wait on.
    cb(Error{Errc::kRedis, "redis connection lost before a replica acknowledged"}, false);
    return;
  }
  // No write to wait for (an error, nothing written).
  if (!r.ok() || r->is_error() || replica_wait_.count() == 0 || (wrote && !wrote(*r))) {
    cb(std::move(r), true);
    return;
  }
  if (suspect()) {  // nothing waits: what depends on it holds back
    cb(std::move(r), false);
    return;
  }
  if (lagging_) {
    cb(std::move(r), false);
    return;
  }
  auto reply = std::make_shared<Reply>(std::move(*r));
  if (replicas_ == 0) {
    // None at the last look. A replica may have attached since and have
    // this write only through the stream: look again, now that it is made
    // (one that attaches later gets it in its initial copy).
    Command({"ROLE"}, [this, alive = alive_, reply, cb = std::move(cb)](Result<Reply> role) {
      if (!role.ok()) {
        cb(role.error(), false);  // lost: as if the write's reply had been
        return;
      }
      if (!*alive) {
        cb(std::move(*reply), false);
        return;
      }
      const int n = RoleReplicas(*role);
      if (n == 0) {
        cb(std::move(*reply), true);  // nothing a promotion could lose
        return;
      }
      if (n > 0) replicas_ = n;
      SendWait(std::move(reply), std::move(cb));
    });
    return;
  }
  SendWait(std::move(reply), std::move(cb));
}

void RedisConn::SendWait(std::shared_ptr<Reply> reply, ReplicatedCallback cb) {
  Command({"WAIT", "1", std::to_string(replica_wait_.count())},
          [this, alive = alive_, reply, cb = std::move(cb)](Result<Reply> w) {
            // Lost before a replica acknowledged: for the caller, as if the
            // write's own reply had been lost (its reconcile sorts it out).
            if (!w.ok()) {
              cb(w.error(), false);
              return;
            }
            if (!*alive) {
              cb(std::move(*reply), false);
              return;
            }
            ++stats_.replica_waits;
            const bool acked = !w->is_error() && w->AsInt() >= 1;
            if (!acked) {
              ++stats_.replica_wait_misses;
              Suspect("no replica acknowledged within replica_wait");
              if (!std::exchange(lagging_, true)) {
                LogWarn(Event("unreplicated"),
                        {{"addr", Addr()},
                         {"wait_ms", replica_wait_.count()},
                         {"err", w->is_error() ? w->str : "no replica acknowledged in time"},
                         {"then", "no waits until a replica keeps up"}});
              }
              CheckReplicas();  // gone for good, or only slow?
            }
            cb(std::move(*reply), acked);
          });
}

void RedisConn::CommandReplicated(std::vector<std::string> argv, ReplicatedCallback cb) {
  Command(std::move(argv), [this, alive = alive_, cb = std::move(cb)](Result<Reply> r) mutable {
    if (!*alive) {
      cb(std::move(r), false);
      return;
    }
    AfterReplicated(std::move(r), std::move(cb), nullptr);
  });
}

void RedisConn::EvalReplicated(const Script& script, const std::string& key_base,
                               std::vector<std::string> args, ReplicatedCallback cb,
                               WroteFn wrote) {
  Eval(script, key_base, std::move(args),
       [this, alive = alive_, cb = std::move(cb),
        wrote = std::move(wrote)](Result<Reply> r) mutable {
         if (!*alive) {
           cb(std::move(r), false);
           return;
         }
         AfterReplicated(std::move(r), std::move(cb), wrote);
       });
}

void RedisConn::Fail(Callback cb, std::string why) {
  loop_->Post([cb = std::move(cb), why = std::move(why)]() { cb(Error{Errc::kRedis, why}); });
}

void RedisConn::Command(std::vector<std::string> argv, Callback cb) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (ac_ == nullptr || stopping_) {
    Fail(std::move(cb), "redis not connected");
    return;
  }
  ArgvRef ref(argv);
  auto* call = new PendingCall{this, std::move(cb)};
  if (redisAsyncCommandArgv(ac_, &RedisConn::OnReply, call, ref.argc(), ref.argv(), ref.lens()) !=
      REDIS_OK) {
    Callback failed = std::move(call->cb);
    delete call;  // a failed send never calls back: the sender frees it
    Fail(std::move(failed), "redis send failed");
    return;
  }
  ++commands_sent_;
}

void RedisConn::Eval(const Script& script, const std::string& key_base,
                     std::vector<std::string> args, Callback cb) {
  std::vector<std::string> argv;
  argv.reserve(args.size() + 4);
  argv.push_back("EVALSHA");
  argv.push_back(script.sha1);
  argv.push_back("1");
  argv.push_back(key_base);
  for (auto& a : args) argv.push_back(std::move(a));
  // On NOSCRIPT, the same arguments go again as EVAL, which also caches the script.
  auto retry_argv = std::make_shared<std::vector<std::string>>(argv);
  Command(std::move(argv),
          [this, &script, retry_argv, cb = std::move(cb)](Result<Reply> r) mutable {
            if (r.ok() && r->is_error() && r->str.rfind("NOSCRIPT", 0) == 0) {
              (*retry_argv)[0] = "EVAL";
              (*retry_argv)[1] = std::string(script.body);
              Command(std::move(*retry_argv), [&script, cb = std::move(cb)](Result<Reply> r2) {
                if (r2.ok() && r2->is_error()) r2->str = DescribeScriptError(script, r2->str);
                cb(std::move(r2));
              });
              return;
            }
            if (r.ok() && r->is_error()) r->str = DescribeScriptError(script, r->str);
            cb(std::move(r));
          });
}

void RedisConn::Subscribe(const std::string& channel, MessageFn on_message) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  const bool is_new = subscriptions_.insert_or_assign(channel, std::move(on_message)).second;
  // Not connected: Connect() subscribes.
  if (is_new && ac_ != nullptr && !stopping_) SendSubscription("SUBSCRIBE", channel);
}

void RedisConn::Unsubscribe(const std::string& channel) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (subscriptions_.erase(channel) == 0) return;
  if (ac_ != nullptr && !stopping_) SendSubscription("UNSUBSCRIBE", channel);
}

void RedisConn::SendSubscription(const char* verb, const std::string& channel) {
  std::vector<std::string> argv = {verb, channel};
  ArgvRef ref(argv);
  // hiredis keeps the callback per channel and calls it for every message;
  // `this` is found through ac->data, which is null once the context is ours no more.
  if (redisAsyncCommandArgv(ac_, &RedisConn::OnMessage, nullptr, ref.argc(), ref.argv(),
                            ref.lens()) == REDIS_OK) {
    ++commands_sent_;
  }
  // A failed send means the connection is going: the next one subscribes.
}

void RedisConn::OnMessage(redisAsyncContext* ac, void* reply, void* /*privdata*/) noexcept {
  auto* self = static_cast<RedisConn*>(ac->data);
  const auto* r = static_cast<const redisReply*>(reply);
  // No reply: the connection is gone (hiredis calls every channel's callback so).
  if (self == nullptr || r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
  const redisReply* kind = r->element[0];
  const redisReply* channel = r->element[1];
  const redisReply* payload = r->element[2];
  // "subscribe" and "unsubscribe" confirmations carry a count, not a message.
  if (kind->type != REDIS_REPLY_STRING || std::string_view(kind->str, kind->len) != "message" ||
      channel->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) {
    return;
  }
  auto it = self->subscriptions_.find(std::string(channel->str, channel->len));
  if (it == self->subscriptions_.end()) return;  // unsubscribed meanwhile
  try {
    it->second(std::string(payload->str, payload->len));
  } catch (const std::exception& e) {
    LogError("redis.callback", {{"err", e.what()}});
  }
}

void RedisConn::OnReply(redisAsyncContext* /*ac*/, void* reply, void* privdata) noexcept {
  std::unique_ptr<PendingCall> call(static_cast<PendingCall*>(privdata));
  const auto* r = static_cast<const redisReply*>(reply);  // hiredis frees it after we return
  try {
    if (r == nullptr) {
      call->cb(Error{Errc::kRedis, "redis connection lost"});
    } else {
      // The server became a replica (a failover demoted it): it refuses
      // every write from now on. With Sentinel, drop it and find the
      // primary; the caller sees the refusal, as for any lost connection.
      RedisConn* self = call->conn;
      if (r->type == REDIS_REPLY_ERROR && self->url_.sentinel() &&
          std::string_view(r->str, r->len).substr(0, 8) == "READONLY") {
        // Once per connection: every write pending on it is refused alike.
        self->loop_->Post([self, alive = self->alive_, ac = self->ac_] {
          if (*alive && self->ac_ == ac) self->Drop("READONLY: the server is a replica now");
        });
      }
      call->cb(Reply::CopyOf(*r));
    }
  } catch (const std::exception& e) {
    LogError("redis.callback", {{"err", e.what()}});
  }
}

}  // namespace dropq
