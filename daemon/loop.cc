#include "daemon/loop.h"

#include "common/check.h"
#include "common/log.h"

namespace dropq {

Loop::Loop() : thread_(std::this_thread::get_id()) {
  DROPQ_CHECK(uv_loop_init(&loop_) == 0);
  auto w = UvHandle<uv_async_t>::Make(
      [&](uv_async_t* a) { return uv_async_init(&loop_, a, &Loop::OnWakeup); });
  DROPQ_CHECK(w.ok());
  wakeup_ = std::move(*w);
  wakeup_.get()->data = this;
}

Loop::~Loop() {
  const int rc = Close();
  if (rc != 0) LogError("loop.close", {{"err", uv_strerror(rc)}});
}

void Loop::Run() {
  thread_ = std::this_thread::get_id();
  uv_run(&loop_, UV_RUN_DEFAULT);
}

void Loop::Post(std::function<void()> fn) {
  std::lock_guard lock(posted_mu_);
  if (closed_) return;
  posted_.push_back(std::move(fn));
  uv_async_send(wakeup_.get());  // the one libuv call allowed off the loop thread
}

void Loop::OnWakeup(uv_async_t* a) noexcept {
  auto* self = static_cast<Loop*>(a->data);
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lock(self->posted_mu_);
    fns.swap(self->posted_);
  }
  for (auto& fn : fns) fn();
}

void Loop::CloseWakeup() {
  std::vector<std::function<void()>> left;
  {
    std::lock_guard lock(posted_mu_);
    closed_ = true;
    left.swap(posted_);
  }
  for (auto& fn : left) fn();  // run what arrived before closing, so nothing is lost
  wakeup_.Reset();
}

int Loop::Close() {
  if (wakeup_) CloseWakeup();
  uv_run(&loop_, UV_RUN_DEFAULT);
  return uv_loop_close(&loop_);
}

}  // namespace dropq
