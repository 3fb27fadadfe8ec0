#include "daemon/status_reporter.h"

#include "common/check.h"

namespace dropq {

StatusReporter::StatusReporter(Loop* loop, RedisConn* redis, Done done)
    : loop_(loop), redis_(redis), done_(std::move(done)) {}

StatusReporter::~StatusReporter() { *alive_ = false; }

void StatusReporter::Fetch(const std::vector<QueueRef>& queues) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (in_flight_) return;
  auto round = std::make_shared<Round>();
  if (queues.empty()) {
    done_(round->counts);
    return;
  }
  in_flight_ = true;
  round->left = 3 * queues.size();
  for (const QueueRef& q : queues) {
    round->counts[q.name];  // unknown until answered
    const std::pair<const char*, const std::string*> reads[] = {
        {"LLEN", &q.pending}, {"ZCARD", &q.active}, {"ZCARD", &q.scheduled}};
    for (int which = 0; which < 3; ++which) {
      redis_->Command({reads[which].first, *reads[which].second},
                      [this, alive = alive_, round, name = q.name, which](Result<Reply> r) {
                        if (!*alive) return;
                        const int64_t n = r.ok() && !r->is_error() ? r->AsInt(-1) : -1;
                        Counts& c = round->counts[name];
                        (which == 0 ? c.pending : which == 1 ? c.active : c.scheduled) = n;
                        if (--round->left > 0) return;
                        in_flight_ = false;
                        done_(round->counts);
                      });
    }
  }
}

}  // namespace dropq
