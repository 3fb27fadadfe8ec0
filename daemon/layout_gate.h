// LayoutGate keeps dropqd off a Redis it would misread. Before the queues
// work on a (re)connected Redis it checks that everything sharing the
// namespace speaks this layout of the keys (kLayout, store/protocol.h):
//
//   * every live instance's heartbeat names the layout it reads (an instance
//     of a dropq before layout 2 names none), and
//   * every queue is brought to it by UPGRADE, which moves a queue of the
//     previous layout in one short call and refuses one of a later layout.
//
// An instance of another layout, or a queue of a later one, refuses the
// start: jobs are never stranded by two versions reading each other's keys.
// A dropqd older than layout 2 meeting an upgraded queue stops on its own
// checks (docs/redis-keys.md, "Upgrades").
//
// Owned by the Daemon. Thread: loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dropq {

class Loop;
class RedisConn;

class LayoutGate {
 public:
  enum class Verdict {
    kOpen,     // every check passed: the queues may start
    kRefused,  // another layout is in use (`why` says where): do not start
    kRetry,    // Redis answered with an error that may pass (LOADING...): check again later
  };
  using Done = std::function<void(Verdict, const std::string& why)>;

  // `loop` and `redis` must outlive the gate.
  LayoutGate(Loop* loop, RedisConn* redis, std::string prefix, std::string instance);
  ~LayoutGate();
  LayoutGate(const LayoutGate&) = delete;
  LayoutGate& operator=(const LayoutGate&) = delete;

  // Checks the instances and upgrades the queues whose key bases are given
  // (none: the instances only). `done` runs once, on the loop, unless the
  // connection drops first (the reconnect is the time to check again) or
  // the gate is destroyed. Checks may overlap; each answers on its own.
  void Check(std::vector<std::string> queue_bases, Done done);

 private:
  struct Run;
  void CheckInstances(const std::shared_ptr<Run>& run);
  void Upgrade(const std::shared_ptr<Run>& run);
  void Finish(const std::shared_ptr<Run>& run);

  Loop* const loop_;
  RedisConn* const redis_;
  const std::string prefix_;
  const std::string instance_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Parses a heartbeat's JSON for the layout it names: 1 for one that names
// none (a dropq before layout 2), -1 for one that is not a heartbeat.
int HeartbeatLayout(const std::string& heartbeat);

}  // namespace dropq
