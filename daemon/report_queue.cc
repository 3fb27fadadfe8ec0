#include "daemon/report_queue.h"

#include <utility>

namespace dropq {

ReportQueue::ReportQueue(Loop* loop, Executor::Sink sink, std::function<bool()> stopped)
    : loop_(loop), sink_(std::move(sink)), stopped_(std::move(stopped)) {}

void ReportQueue::Add(RunReport&& report) {
  reports_.push_back(std::move(report));
  Schedule();
}

void ReportQueue::Schedule() {
  if (posted_) return;
  posted_ = true;
  loop_->Post([this, alive = alive_] {
    if (*alive) Flush();
  });
}

void ReportQueue::Flush() {
  posted_ = false;
  if (!reports_.empty()) {
    std::vector<RunReport> batch;
    batch.swap(reports_);
    const std::shared_ptr<bool> alive = alive_;
    sink_.report(std::move(batch));
    if (!*alive) return;  // the sink's owner let go of the executor
  }
  if (!stop_reported_ && reports_.empty() && stopped_()) {
    stop_reported_ = true;
    if (sink_.stopped) sink_.stopped();
  }
}

}  // namespace dropq
