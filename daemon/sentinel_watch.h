// SentinelWatch listens for the sentinels' announcement of a failover: it
// keeps one connection subscribed to `+switch-master` on one sentinel, and
// hands each announcement for this primary's name to `on_switch`, so that
// dropqd's connections move to the new primary when it is promoted, not
// only once the old one drops them or refuses a write.
//
// One sentinel at a time, with the sentinels' credentials, by address (a
// name is resolved on the threadpool first): the first one listed, and the
// next whenever the connection to it is lost or cannot be made for kRotateMs (a sentinel that is
// down must not leave the watch blind). Announcements made while no sentinel is listened to are
// missed; the connections still follow the failover through their own reconnects.
//
// Thread: loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "config/redis_url.h"
#include "daemon/loop.h"
#include "daemon/redis_conn.h"

namespace dropq {

class SentinelWatch {
 public:
  // `url` must list sentinels. `loop` must outlive the watch. `on_switch`
  // gets the new primary's address as the sentinel announced it.
  SentinelWatch(Loop* loop, RedisUrl url, std::function<void(const HostPort&)> on_switch);
  ~SentinelWatch();
  SentinelWatch(const SentinelWatch&) = delete;
  SentinelWatch& operator=(const SentinelWatch&) = delete;

  // Connects to the first sentinel and subscribes.
  void Start();
  // Called every few seconds: moves to the next sentinel when the current
  // one has not been reachable for kRotateMs.
  void Tick();

  // Parses a +switch-master message: "<name> <old-ip> <old-port> <new-ip>
  // <new-port>". Returns the new primary if it is about `master`.
  static std::optional<HostPort> ParseSwitch(const std::string& payload, const std::string& master);

  static constexpr int64_t kRotateMs = 5000;

 private:
  // Replaces the connection with one to sentinel number `index` (modulo):
  // resolves its name on the threadpool, then Open()s.
  void ListenTo(size_t index);
  // Connects to sentinel index_ at `numeric_host` and subscribes.
  void Open(const std::string& numeric_host);

  Loop* const loop_;
  const RedisUrl url_;
  const std::function<void(const HostPort&)> on_switch_;
  size_t index_ = 0;                   // the sentinel listened to, in url_.sentinels
  std::unique_ptr<RedisConn> conn_;    // to sentinel index_
  int64_t unreachable_since_ms_ = -1;  // monotonic; -1: up
  bool resolving_ = false;             // a sentinel's name is being resolved
  const std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dropq
