// Finding the primary of a Sentinel-managed Redis (redis.sentinels). The
// sentinels are asked in turn (SENTINEL get-master-addr-by-name <master>);
// the address one gives is checked with ROLE, logged in with the data nodes'
// credentials, because a sentinel's answer can be stale (a sentinel cut off
// from the others still names the old primary). The first address that says
// "master" wins; a sentinel that is down, hangs (a timeout) or names a
// replica costs a try, not the search.
//
// Blocking (hiredis' synchronous client, getaddrinfo): dropqctl and the
// console call it directly, dropqd on the libuv threadpool, never on its
// loop. Thread: any.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/redis_url.h"

namespace dropq {

struct PrimaryFound {
  HostPort primary;      // a numeric address, ready to connect to
  std::string named_by;  // the sentinel that gave it
  // That sentinel's down-after-milliseconds for the primary (SENTINEL
  // MASTER), -1 if it did not say: how long a dead primary goes unnoticed.
  int64_t down_after_ms = -1;
  // The replicas that sentinel believes up (SENTINEL REPLICAS, flags
  // neither down nor disconnected), -1 if it did not say.
  int64_t replicas = -1;
  std::vector<std::string> misses;  // one line per sentinel that did not help, and why
};

// The numeric address of `host` (itself if it is one), by getaddrinfo: the
// first address it gives. hiredis' asynchronous connect resolves a name with
// a blocking getaddrinfo, so dropqd connects by address only. Blocking.
Result<std::string> NumericHost(const std::string& host);

// Asks the sentinels of `url` (REQUIRES: url.sentinel()) for the primary of
// url.master, each call bounded by `timeout`. Errc::kRedis naming every
// sentinel's failure if none gave a primary that says it is one.
// `announced`: an address a sentinel announced (+switch-master), checked
// with ROLE first; named_by is then "+switch-master", down_after_ms and
// replicas -1.
Result<PrimaryFound> FindPrimary(const RedisUrl& url, std::chrono::milliseconds timeout,
                                 const std::optional<HostPort>& announced = std::nullopt);

}  // namespace dropq
