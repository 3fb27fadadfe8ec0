#include "workers/handler.h"

#include "workers/exec_handler.h"
#include "workers/noop_handler.h"
#include "workers/sha256_handler.h"

namespace dropq {

Result<std::unique_ptr<Handler>> MakeHandler(const QueueConfig& q, const std::string& instance) {
  switch (q.handler.kind) {
    case HandlerConfig::Kind::kExec:
      // LoadConfig() already refuses an empty exec; a hand-made config may not.
      if (q.handler.argv.empty() || q.handler.argv[0].empty()) {
        return Error{Errc::kConfig, "queue " + q.name + ": exec handler without a program"};
      }
      return std::unique_ptr<Handler>(std::make_unique<ExecHandler>(q, instance));
    case HandlerConfig::Kind::kSha256: {
      auto h = Sha256Handler::Make(q.handler.manifest);
      if (!h.ok()) return h.error();
      return std::unique_ptr<Handler>(std::move(h).value());
    }
    case HandlerConfig::Kind::kNoop:
      return std::unique_ptr<Handler>(std::make_unique<NoopHandler>());
    case HandlerConfig::Kind::kHttp:
    case HandlerConfig::Kind::kServe:
      // Requests and serve processes run from the loop, not in worker threads.
      return std::unique_ptr<Handler>();
  }
  return Error{Errc::kConfig, "queue " + q.name + ": unknown handler kind"};
}

}  // namespace dropq
