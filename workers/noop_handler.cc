#include "workers/noop_handler.h"

#include "common/clock.h"

namespace dropq {

Outcome NoopHandler::Run(const Job& /*job*/, const std::string& /*path*/, int /*fd*/,
                         const CancelToken& /*cancel*/) noexcept {
  Outcome o;
  o.started_ms = NowUnixMs();
  const int64_t t0 = MonoMs();
  o.result = RunResult::kOk;
  o.duration_ms = MonoMs() - t0;
  return o;
}

}  // namespace dropq
