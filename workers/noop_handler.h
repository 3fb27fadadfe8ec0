// NoopHandler is the builtin `noop` handler: it does nothing and succeeds,
// which makes a queue that only disposes of its files (move, delete).
// Thread: any (stateless).
#pragma once

#include <string>

#include "common/job.h"
#include "workers/cancel_token.h"
#include "workers/handler.h"

namespace dropq {

class NoopHandler final : public Handler {
 public:
  // Returns kOk with started_ms and duration_ms filled; ignores `cancel`.
  Outcome Run(const Job& job, const std::string& path, int fd,
              const CancelToken& cancel) noexcept override;
};

}  // namespace dropq
