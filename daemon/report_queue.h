// ReportQueue carries a loop-driven executor's reports to its Sink
// (workers/executor.h): the reports of one loop turn reach the sink
// together, on a later turn, and `stopped` follows once the executor says
// it has stopped and every report is out.
//
// Thread: loop. Ownership: the executor owns it; a sink that lets go of the
// executor while it is called is safe (Flush() looks no further).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "daemon/loop.h"
#include "workers/executor.h"

namespace dropq {

class ReportQueue {
 public:
  // `stopped`: the executor's own test (Executor::stopped()).
  ReportQueue(Loop* loop, Executor::Sink sink, std::function<bool()> stopped);
  ~ReportQueue() { *alive_ = false; }
  ReportQueue(const ReportQueue&) = delete;
  ReportQueue& operator=(const ReportQueue&) = delete;

  void Add(RunReport&& report);
  // Looks at `stopped` on a later turn (after Stop() or TakeBack()).
  void Schedule();

 private:
  void Flush();

  Loop* const loop_;
  const Executor::Sink sink_;
  const std::function<bool()> stopped_;
  std::vector<RunReport> reports_;  // not yet handed to the sink
  bool posted_ = false;
  bool stop_reported_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dropq
