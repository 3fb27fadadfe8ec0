// Loop is dropqd's one libuv event loop and the thread that runs it. It owns
// the uv_loop_t and a wake-up handle through which other threads Post()
// functions to run on the loop thread. Everything that touches libuv or the
// Redis connection runs there.
//
// Thread: Post() from any thread; everything else on the loop thread.
#pragma once

#include <uv.h>

#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "daemon/uv_handle.h"

namespace dropq {

class Loop {
 public:
  Loop();
  // The loop must have been drained (no handle left): uv_loop_close must succeed.
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* get() { return &loop_; }

  // Runs until no active handle remains (or Stop()). The calling thread
  // becomes the loop thread.
  void Run();

  // Runs `fn` on the loop thread on a later turn. libuv merges wake-ups, so
  // one wake-up may find many functions: it drains them all, in order.
  // Thread: any. `fn` must not throw.
  void Post(std::function<void()> fn);

  bool OnLoopThread() const { return std::this_thread::get_id() == thread_; }

  // Closes the wake-up handle, so Run() can return once the rest is closed.
  // Posts arriving afterwards are dropped. Thread: loop.
  void CloseWakeup();

  // Runs the loop until every closed handle is freed (their owners must be gone);
  // returns uv_loop_close()'s result (0 when everything is gone).
  int Close();

 private:
  static void OnWakeup(uv_async_t* a) noexcept;

  uv_loop_t loop_;
  std::thread::id thread_;
  UvHandle<uv_async_t> wakeup_;
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;  // guarded by posted_mu_
  bool closed_ = false;                        // guarded by posted_mu_
};

}  // namespace dropq
