// CurlMulti drives libcurl's multi-socket interface on dropqd's libuv loop
// (libcurl's documented libuv integration): a uv_poll_t per socket libcurl
// asks to watch, one uv_timer_t for the timeout it asks for, and
// curl_multi_socket_action() on each. Transfers run side by side without a
// thread; name resolution runs in libcurl's own resolver thread.
//
//   socket callback --(CURL_POLL_IN/OUT)--> uv_poll_start --ready--> socket_action
//   timer callback  --(timeout_ms)-------> uv_timer_start --fires--> socket_action
//   after each socket_action: curl_multi_info_read() -> Done(easy, result)
//
// Thread: loop. Ownership: the caller owns each easy handle; CurlMulti holds
// it from Add() until its Done runs or Remove() is called, and never frees it.
#pragma once

#include <curl/curl.h>
#include <uv.h>

#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "common/result.h"
#include "daemon/uv_handle.h"

namespace dropq {

class CurlMulti {
 public:
  // Called on the loop when a transfer ends (any result), after the handle
  // was removed from the multi: the callee may clean it up, or Add() it again.
  using Done = std::function<void(CURL* easy, CURLcode result)>;

  // Calls curl_global_init() once per process. `loop` must outlive this.
  explicit CurlMulti(uv_loop_t* loop);
  // Removes every handle still added (their Done is not called).
  ~CurlMulti();
  CurlMulti(const CurlMulti&) = delete;
  CurlMulti& operator=(const CurlMulti&) = delete;

  // Starts the transfer `easy` (configured by the caller); `done` runs when
  // it ends, on a later turn of the loop. Fails if libcurl refuses it.
  Status Add(CURL* easy, Done done);
  // Stops the transfer `easy` now, if added; its Done never runs. Not from
  // inside one of `easy`'s own libcurl callbacks.
  void Remove(CURL* easy);
  // Transfers added and not ended.
  size_t size() const { return done_.size(); }

 private:
  // One socket libcurl watches: its poll handle, freed in its close callback.
  struct Socket {
    CurlMulti* owner;
    curl_socket_t fd;
    uv_poll_t* poll;
    int events = 0;  // what `poll` watches (UV_READABLE, UV_WRITABLE)
  };

  static int OnSocket(CURL* easy, curl_socket_t s, int what, void* userp, void* socketp) noexcept;
  static int OnTimer(CURLM* multi, long timeout_ms, void* userp) noexcept;
  static void OnPoll(uv_poll_t* h, int status, int events) noexcept;
  static void OnTimeout(uv_timer_t* t) noexcept;
  // Runs socket_action on `fd` (CURL_SOCKET_TIMEOUT: the timer) and hands
  // out the transfers that ended.
  void Act(curl_socket_t fd, int ev_bitmask);
  void ReapDone();

  uv_loop_t* const loop_;
  CURLM* multi_ = nullptr;
  UvHandle<uv_timer_t> timer_;
  std::unordered_map<CURL*, Done> done_;  // every handle added and not ended
  std::unordered_set<Socket*> sockets_;   // every socket watched now
  bool reaping_ = false;                  // inside ReapDone(): no nested reap
};

}  // namespace dropq
