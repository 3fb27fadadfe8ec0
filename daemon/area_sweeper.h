// AreaSweeper does a queue's two clean-ups after a full scan of its
// directory, both in pages and off the loop where they touch the disk:
//
//   SweepMarkers()     drops the "handled and kept" markers in :files of
//                      files no longer in the directory (they left while
//                      dropqd was not watching): HSCAN, lstat on the threadpool.
//   SweepProcessing()  puts back into the watched directory any file left in
//                      the processing area by a job that will not run again
//                      (its record is gone, or it ended without its file
//                      moving: Redis lost the acknowledgement's effects), so
//                      that the scan takes it as new.
//
// Every reply and threadpool completion it waits for holds a shared state
// whose owner the destructor clears, so a queue retired by a reload in the
// middle of a sweep is freed safely: what is still running finishes (a
// lstat, a rename back into the inbox) and its report is dropped.
//
// Thread: loop (made, used and destroyed there); the disk work runs on the threadpool.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "daemon/loop.h"
#include "daemon/redis_conn.h"
#include "store/keys.h"
#include "workers/processing.h"

namespace dropq {

class AreaSweeper {
 public:
  struct Hooks {
    // True while the sweeps may go on (Redis reconciled, not draining).
    std::function<bool()> may_run;
    // True if the runner holds job `id` (then its files are its own business).
    std::function<bool(const std::string& id)> holds;
    // The kept file `name` left the directory: drop its marker.
    std::function<void(const std::string& name)> forget;
  };

  // `loop`, `redis` and `keys` must outlive the sweeper. `area` is the
  // queue's processing area ("" when off: SweepProcessing() does nothing).
  AreaSweeper(Loop* loop, RedisConn* redis, const QueueKeys* keys, std::string queue,
              std::string watch, std::string area, Hooks hooks);
  ~AreaSweeper();
  AreaSweeper(const AreaSweeper&) = delete;
  AreaSweeper& operator=(const AreaSweeper&) = delete;

  // Starts the sweep unless one of its kind runs already or may_run() says no.
  void SweepMarkers();
  void SweepProcessing();

  bool busy() const { return markers_ || processing_; }

 private:
  struct Shared {
    AreaSweeper* owner;  // null once the sweeper is gone
  };
  void MarkersPage(std::string cursor);
  void ProcessingStates(std::vector<AreaEntry> entries);
  void PutBackOrphans(std::vector<AreaEntry> orphans);

  Loop* const loop_;
  RedisConn* const redis_;
  const QueueKeys* const keys_;
  const std::string queue_, watch_, area_;
  const Hooks hooks_;
  const std::shared_ptr<Shared> shared_;
  bool markers_ = false;     // a marker sweep runs
  bool processing_ = false;  // a processing-area sweep runs
};

}  // namespace dropq
