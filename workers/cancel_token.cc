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

void CancelToken::Reset() {
  uint64_t value;
  [[maybe_unused]] ssize_t n = ::read(fd_.get(), &value, sizeof value);  // EAGAIN if not fired
  cancelled_.store(false, std::memory_order_release);
}

}  // namespace dropq
