// Inotify reads one inotify descriptor through a uv_poll_t and hands each
// event to the sink registered for its watch. libuv's uv_fs_event cannot
// report IN_CLOSE_WRITE on Linux, and close-after-write is how dropq knows a
// file written in place is complete, so dropqd reads inotify itself.
//
// Thread: loop. The descriptor is O_CLOEXEC (a handler must not inherit it).
#pragma once

#include <sys/inotify.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"
#include "common/unique_fd.h"
#include "daemon/loop.h"
#include "daemon/uv_handle.h"

namespace dropq {

class Inotify {
 public:
  // `mask` is the event's inotify mask; `name` the entry's name (may be empty
  // for events about the watched directory itself). IN_IGNORED (with an empty
  // name) says that the watch is gone: the directory was removed or renamed
  // away; it is the sink's last event.
  using Sink = std::function<void(uint32_t mask, std::string_view name)>;

  // `on_overflow` runs when the kernel queue overflowed (events were lost):
  // every watched directory must be rescanned. `loop` must outlive this.
  static Result<std::unique_ptr<Inotify>> Create(Loop* loop, std::function<void()> on_overflow);
  ~Inotify();

  // Watches `dir` for `mask` and sends its events to `sink`.
  Status Watch(const std::string& dir, uint32_t mask, Sink sink);
  // Stops watching `dir`: its sink is dropped now and never runs again (a
  // watcher about to be destroyed calls this; a reload stops queues).
  void Unwatch(const std::string& dir);

  // Stops reading and closes the descriptor; no sink runs afterwards.
  void Stop();

  // Backpressure: `open` is asked before each read of the descriptor. While
  // it returns false nothing is read, and the events wait in the kernel's
  // queue (which holds max_queued_events; past that the overflow is
  // recovered by a rescan) instead of in dropqd's memory. Call
  // MaybeResume() once per loop turn to read again once it opens.
  void SetGate(std::function<bool()> open) { gate_ = std::move(open); }
  void MaybeResume();

  uint64_t overflows() const { return overflows_; }

 private:
  Inotify(Loop* loop, UniqueFd fd, std::function<void()> on_overflow);
  static void OnReadable(uv_poll_t* p, int status, int events) noexcept;
  void Drain();

  Loop* const loop_;
  UniqueFd fd_;
  UvHandle<uv_poll_t> poll_;
  std::function<void()> on_overflow_;
  std::function<bool()> gate_;  // may the descriptor be read now? (null: always)
  bool paused_ = false;         // the poll handle is stopped by the gate
  std::unordered_map<int, std::pair<std::string, Sink>> watches_;  // wd -> (dir, sink)
  uint64_t overflows_ = 0;
};

}  // namespace dropq
