#include "workers/cancel_token.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "common/check.h"

namespace dropq {

CancelToken::CancelToken() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  DROPQ_CHECK(fd_.valid());
}

void CancelToken::Cancel() {
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof one);
}

}  // namespace dropq
