// Sentinels runs a Sentinel-managed Redis for a test, all on loopback: a
// primary and one replica (redis-server), and three redis-sentinel
// processes monitoring them as "dropq" (quorum 2), with short timings
// (down-after-milliseconds `down_after_ms`, failover-timeout
// `failover_timeout_ms`: Sentinel fails a primary over again only after
// twice that). Thread: owner.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"

namespace dropq::test {

class Sentinels {
 public:
  explicit Sentinels(int down_after_ms = 1000, int failover_timeout_ms = 5000);
  bool ok() const { return ok_; }

  // The config's redis: block for these sentinels (for DropqEnv::redis_yaml).
  std::string RedisYaml(const std::vector<int>& first_ports = {}) const;
  const std::vector<int>& ports() const { return ports_; }

  // The server the sentinels call primary now (nullptr if they disagree or
  // none answers), and the other one.
  RedisServer* Primary();
  RedisServer* Replica();
  // Waits until every sentinel names `server` as primary and it says so.
  bool WaitForPrimary(RedisServer* server, std::chrono::milliseconds timeout);
  // A planned switch (SENTINEL FAILOVER): the replica becomes primary.
  bool Failover();
  // Waits until `server` is a replica in sync with the primary and every
  // sentinel counts it as a healthy replica (it can be promoted again).
  bool WaitForReplica(RedisServer* server, std::chrono::milliseconds timeout);

 private:
  TempDir dir_;
  std::unique_ptr<RedisServer> a_, b_;
  std::vector<int> ports_;
  std::vector<std::unique_ptr<Process>> sentinels_;
  bool ok_ = false;
};

}  // namespace dropq::test
