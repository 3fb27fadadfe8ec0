// UvHandle owns one initialised libuv handle (timer, poll, signal, async,
// check). Destruction calls uv_close(); libuv allows freeing the handle's
// memory only in the close callback, a loop turn later, so the close callback
// deletes it. Thread: loop.
#pragma once

#include <uv.h>

#include <utility>

#include "common/check.h"
#include "common/result.h"

namespace dropq {

template <typename T>
class UvHandle {
 public:
  UvHandle() = default;
  // `init` initialises the handle: [&](uv_timer_t* t) { return uv_timer_init(loop, t); }
  template <typename Init>
  static Result<UvHandle> Make(Init init) {
    auto* h = new T{};
    if (int rc = init(h); rc < 0) {
      delete h;  // init failed: libuv never saw the handle, nothing to close
      return Error{Errc::kIo, std::string("uv init: ") + uv_strerror(rc)};
    }
    return UvHandle(h);
  }
  UvHandle(UvHandle&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      Reset();
      h_ = std::exchange(other.h_, nullptr);
    }
    return *this;
  }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  ~UvHandle() { Reset(); }

  T* get() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }

  // Closes the handle now; its memory is freed in the close callback.
  void Reset() {
    if (h_ == nullptr) return;
    uv_close(reinterpret_cast<uv_handle_t*>(std::exchange(h_, nullptr)),
             [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
  }

 private:
  explicit UvHandle(T* h) : h_(h) {}
  T* h_ = nullptr;
};

// A timer on `loop` whose data pointer is `data`. uv_timer_init cannot fail
// on a live loop, so a failure is a broken invariant. Thread: loop.
inline UvHandle<uv_timer_t> MakeTimer(uv_loop_t* loop, void* data) {
  auto t = UvHandle<uv_timer_t>::Make([&](uv_timer_t* h) { return uv_timer_init(loop, h); });
  DROPQ_CHECK(t.ok());
  t->get()->data = data;
  return std::move(*t);
}

}  // namespace dropq
