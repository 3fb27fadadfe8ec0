#include "workers/queue_setup.h"

#include "workers/processing.h"

namespace dropq {

Result<QueueSetup> SetUpQueue(const QueueConfig& q, const std::string& instance) {
  QueueSetup s;
  auto handler = MakeHandler(q, instance);
  if (!handler.ok()) return handler.error();
  s.handler = std::move(*handler);
  if (Status st = PrepareProcessingArea(q); !st.ok()) return st.error();
  if (LayoutOf(q) == AreaLayout::kJobDirs && q.runs_handlers()) {
    s.spares = std::make_shared<SpareDirs>(AreaInUse(q), instance,
                                           static_cast<size_t>(4 * q.workers + 32));
    s.spares->Reset();  // spares an earlier run left go before any worker starts
  }
  return s;
}

}  // namespace dropq
