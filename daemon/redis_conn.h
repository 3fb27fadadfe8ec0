// RedisConn is dropqd's one asynchronous Redis connection, driven by the
// libuv loop through hiredis' libuv adapter. hiredis pipelines by itself:
// commands sent before the first reply arrives share round trips.
//
// It connects, authenticates and selects the database, and when the
// connection drops or cannot be made it reconnects with exponential backoff
// (100 ms doubling to 5 s). hiredis 0.14.1's libuv adapter drops poll errors,
// so a refused connect may never reach the connect callback: a connect timer
// gives up on such an attempt and frees the context itself.
//
// With Sentinel (redis.sentinels), each connect attempt first asks the
// sentinels for the primary (store/sentinel.h: blocking, so on the libuv
// threadpool, never on the loop; a sentinel that hangs costs a timeout
// there), then connects to the numeric address found. Every reconnect asks
// again, so a failover is followed: the old primary drops the connection or
// refuses writes with READONLY, which drops it too; a sentinel's
// +switch-master notice (daemon/sentinel_watch.h) calls Follow(). A new
// primary is logged as "<log_name>.failover from=... to=...".
//
// Replica waits (redis.replica_wait): a primary acknowledges a write before
// its replicas have it, and a failover promotes a replica, so a write can be
// lost after it was answered. The writes the no-overlap promise rests on
// (claims, heartbeat renewals) go through CommandReplicated() and
// EvalReplicated(): WAIT 1 <timeout> follows them on this connection, and
// their callback runs once a replica has them. Meanwhile this connection's
// later commands wait in Redis behind the WAIT. No WAIT is sent while ROLE
// lists no replica: a primary without one has nothing a promotion could
// lose. ROLE is asked at each connect and each CheckReplicas(), and again
// after each such write while the last answer listed none (a replica that
// attached meanwhile must be waited for).
//
// With Sentinel, a replica that stops acknowledging may have been promoted:
// the primary in use keeps taking writes a failover is about to throw away.
// A wait that misses, or ROLE listing no replica where there were some (or
// where the sentinels know some), makes the connection "suspect" for
// kSuspectMs: suspect() is true, and callers start nothing on unconfirmed
// claims (QueueRunner gives them back). An announced failover ends it by
// moving to the new primary; if none comes, the replica was only slow or
// gone, and the connection goes on "lagging": no WAIT at all (every call
// would cost the whole timeout) until a short probe WAIT at a
// CheckReplicas() finds a replica keeping up again. Without Sentinel a
// missed wait goes straight to lagging.
//
// Ownership: hiredis frees the context itself after the disconnect callback
// and after a failed connect; those callbacks null ac_. Replies belong to
// hiredis and die when the callback returns: callbacks get an owned copy.
//
// Thread: loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/redis_url.h"
#include "daemon/loop.h"
#include "daemon/uv_handle.h"
#include "store/reply.h"
#include "store/scripts.h"
#include "store/sentinel.h"

struct redisAsyncContext;

namespace dropq {

class RedisConn {
 public:
  using Callback = std::function<void(Result<Reply>)>;

  struct Hooks {
    std::function<void()> up;    // connected and authenticated: resend, reconcile
    std::function<void()> down;  // the connection was lost (or an attempt failed)
    // Sentinel: a primary was found (each time one is, before connecting).
    std::function<void(const PrimaryFound&)> primary;
    // Its log lines are "<log_name>.up", ".down", ".auth" and ".select".
    std::string log_name = "redis";
  };

  // `loop` must outlive this connection. Nothing happens until Start().
  RedisConn(Loop* loop, RedisUrl url, Hooks hooks);
  ~RedisConn();
  RedisConn(const RedisConn&) = delete;
  RedisConn& operator=(const RedisConn&) = delete;

  void Start();
  // Disconnects after every command sent so far has been answered, and stops
  // reconnecting. The down hook is not called.
  void Stop();

  bool up() const { return up_; }
  // Changes with every new connection (counts the connects that succeeded;
  // 0 before the first): what a caller set up on one connection, such as a
  // queue's reconcile, is known not to hold on the next one.
  uint64_t connection() const { return connections_; }
  // The server's address for logs and STATUS=: with Sentinel, the primary
  // in use (or the sentinels' description before one is found).
  std::string Addr() const;

  // Gives up on the current connection (it stopped answering): pending
  // commands fail, `down` runs if it was up, and a new one is made after the
  // usual backoff. Nothing happens when there is no connection.
  void Drop(const std::string& why);

  // Waits for a replica after the writes sent through CommandReplicated()
  // and EvalReplicated(), for at most `timeout`; 0 (the default) never waits.
  // Call before Start().
  void SetReplicaWait(std::chrono::milliseconds timeout) { replica_wait_ = timeout; }

  // Sentinel: the sentinels announced `primary` as the new primary. If the
  // connection is up to another server, it is dropped and the primary found
  // again, trying `primary` first (store/sentinel.h). If it is down, the
  // reconnect backoff ends now; an attempt under way to another server is
  // given up; a discovery under way is followed by another at once unless
  // it found `primary`.
  void Follow(const HostPort& primary);

  // Sends one command. `cb` runs exactly once on the loop thread, on a later
  // turn: with the reply (which may be a Redis error reply), or with an Error
  // (Errc::kRedis) if the connection is down or drops before the reply.
  void Command(std::vector<std::string> argv, Callback cb);

  // Runs `script` with KEYS[1] = key_base: EVALSHA, and EVAL once if Redis
  // does not know the script yet (after a restart, or on a new connection).
  void Eval(const Script& script, const std::string& key_base, std::vector<std::string> args,
            Callback cb);

  // Like Command() and Eval(), but `cb` runs only once a replica has every
  // write this connection sent up to this one (WAIT 1), or the wait timed
  // out. `replicated` is false when no replica acknowledged: the wait timed
  // out (logged once as "<log_name>.unreplicated", counted), or the
  // connection is lagging and did not wait. It is true when no wait was
  // needed: waits off, a primary without replicas, an error reply, or
  // `wrote` (when given) saying the reply shows nothing written that a
  // promotion could lose (a claim that claimed nothing). If the connection
  // is lost before a replica acknowledged, `cb` gets an Error, as if the
  // write's own reply had been lost.
  using ReplicatedCallback = std::function<void(Result<Reply>, bool replicated)>;
  using WroteFn = std::function<bool(const Reply&)>;
  void CommandReplicated(std::vector<std::string> argv, ReplicatedCallback cb);
  void EvalReplicated(const Script& script, const std::string& key_base,
                      std::vector<std::string> args, ReplicatedCallback cb,
                      WroteFn wrote = nullptr);
  // Asks the primary how many replicas it has (ROLE), for the waits above,
  // and while lagging probes whether one caught up (WAIT 1, at most
  // kProbeWaitMs). Does nothing with waits off or no connection up.
  void CheckReplicas();
  static constexpr int kProbeWaitMs = 100;

  // Sentinel: a failover may be under way (see above). Claims answered
  // unreplicated meanwhile must not start. Ends kSuspectMs after it began.
  bool suspect() const;
  static constexpr int64_t kSuspectMs = 5000;

  // Pub/Sub. `on_message` runs on the loop with each message published on
  // `channel`, on this connection and every one it makes again (SUBSCRIBE
  // is sent at each connect), until Unsubscribe(channel). Messages published
  // while no connection is up are lost: the `up` hook is where a subscriber
  // catches up. A connection with subscriptions runs no other command (Redis
  // refuses them): keep one RedisConn for them alone.
  using MessageFn = std::function<void(const std::string& payload)>;
  void Subscribe(const std::string& channel, MessageFn on_message);
  void Unsubscribe(const std::string& channel);

  // Commands sent on this connection since start (for the summary line).
  uint64_t commands_sent() const { return commands_sent_; }
  // Writes of the pipelined output to the socket since start: the round
  // trips dropqd makes (many commands share one).
  uint64_t flushes() const { return flushes_; }

  // What the connection went through since start, for metrics.
  struct Stats {
    uint64_t failovers = 0;            // a new primary found (Sentinel)
    uint64_t down_ms = 0;              // time without a connection after the first, so far
    uint64_t replica_waits = 0;        // WAITs answered (probes not counted)
    uint64_t replica_wait_misses = 0;  // of those, no replica acknowledged (timeout or error)
  };
  Stats stats() const;

 private:
  struct PendingCall;
  void Connect();
  // Sentinel: finds the primary on the threadpool, then Connect()s to it.
  void Discover();

  void ScheduleReconnect();
  // The connection that was up is gone: counts the time until the next one.
  void WentDown();
  // Runs `cb` with `r` once a replica has the writes sent so far (see
  // CommandReplicated()).
  void AfterReplicated(Result<Reply> r, ReplicatedCallback cb, const WroteFn& wrote);
  // WAIT 1 <replica_wait>, then `cb` with `reply` (AfterReplicated()).
  void SendWait(std::shared_ptr<Reply> reply, ReplicatedCallback cb);
  // Starts a suspect spell (Sentinel only), logged with `why`.
  void Suspect(const std::string& why);
  void Fail(Callback cb, std::string why);
  static void OnConnect(const redisAsyncContext* ac, int status) noexcept;
  static void OnDisconnect(const redisAsyncContext* ac, int status) noexcept;
  static void OnReply(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
  // SUBSCRIBE or UNSUBSCRIBE `channel` on the current connection.
  void SendSubscription(const char* verb, const std::string& channel);
  std::string Event(const char* what) const { return hooks_.log_name + "." + what; }
  static void OnMessage(redisAsyncContext* ac, void* reply, void* privdata) noexcept;

  Loop* const loop_;
  const RedisUrl url_;
  const Hooks hooks_;
  redisAsyncContext* ac_ = nullptr;  // owned; null when hiredis freed it
  UvHandle<uv_timer_t> timer_;       // connect timeout, then reconnect backoff
  bool up_ = false;
  uint64_t connections_ = 0;  // connects that succeeded; see connection()
  bool stopping_ = false;
  int backoff_ms_ = 100;
  uint64_t commands_sent_ = 0;
  uint64_t flushes_ = 0;
  std::chrono::milliseconds replica_wait_{0};
  int replicas_ = -1;               // the primary's replicas by its last ROLE; -1: not known
  bool lagging_ = false;            // a replica wait timed out: no waits until a probe succeeds
  bool probing_ = false;            // a probe WAIT is in flight
  int64_t suspect_until_ms_ = 0;    // monotonic; suspect() before it
  int64_t expected_replicas_ = -1;  // replicas the sentinels know of this primary
  std::string last_role_error_;     // ROLE's refusal, logged once
  int64_t down_since_ms_ = -1;      // monotonic: when the connection went down; -1: up or never
  Stats stats_;
  std::string last_error_;                          // logged once per outage, not per attempt
  std::map<std::string, MessageFn> subscriptions_;  // channel -> handler
  // Sentinel only: the primary last found, and whether Connect() may use it
  // (cleared by every reconnect, so that the next attempt asks again).
  HostPort primary_;
  bool have_primary_ = false;
  bool discovering_ = false;  // a Discover() is on the threadpool
  // The primary the sentinels announced last (Follow()), not yet tried.
  std::optional<HostPort> announced_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed
};

// Wraps a reply callback so that it does nothing once `*alive` is false:
// the owner of `alive` clears it when it is destroyed, and replies still to
// come then find it gone. Thread: loop.
template <typename F>
RedisConn::Callback GuardedBy(std::shared_ptr<bool> alive, F f) {
  return [alive = std::move(alive), f = std::move(f)](Result<Reply> r) mutable {
    if (*alive) f(std::move(r));
  };
}

}  // namespace dropq
