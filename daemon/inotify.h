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
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "daemon/loop.h"
#include "daemon/uv_handle.h"

namespace dropq {

class Inotify {
 public:
  // `wd` is the watch the event came from (Watch() returned it); `mask` the
  // event's inotify mask; `name` the entry's name (empty for events about
  // the watched directory itself). IN_IGNORED (with an empty name) says that
  // the watch is gone: the directory was removed (or the watch dropped); it
  // is the last event of `wd`. IN_MOVE_SELF is passed on: the owner decides
  // whether a directory renamed away is still watched.
  using Sink = std::function<void(int wd, uint32_t mask, std::string_view name)>;

  // `on_overflow` runs when the kernel queue overflowed (events were lost):
  // every watched directory must be rescanned. `loop` must outlive this.
  static Result<std::unique_ptr<Inotify>> Create(Loop* loop, std::function<void()> on_overflow);
  ~Inotify();

  // Watches the directory `path` for `mask` on behalf of `owner` (any key:
  // the QueueWatcher) and sends its events to `sink`. Returns the watch
  // descriptor, or the errno value in Errc::kIo's text and in `*err` (when
  // not null): ENOSPC and ENOMEM mean fs.inotify.max_user_watches is
  // reached. Several owners may watch one directory (two queues on one
  // inbox; a tree's subdirectory that is another queue's inbox): the kernel
  // keeps one watch with the union of their masks, and each owner's sink
  // gets every event of it. `path` may be ProcPath() of a descriptor opened
  // beneath a tree (common/beneath.h).
  Result<int> Watch(const std::string& path, uint32_t mask, const void* owner, Sink sink,
                    int* err = nullptr);
  // Stops `owner`'s watch `wd`: its sink is dropped now and never runs
  // again; the kernel's watch goes with its last owner.
  void Unwatch(int wd, const void* owner);
  // Unwatch() of every watch of `owner` (a watcher about to be destroyed; a
  // reload stops queues).
  void UnwatchAll(const void* owner);

  // Is the gate (SetGate()) open: are events being read? A tree scan opens
  // no new directory while it is closed: each open queues IN_OPEN events.
  bool reading() const { return !gate_ || gate_(); }

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

  // MonoMs() of the last read that emptied the kernel's queue: every event
  // that happened before it has been delivered. A decision that rests on an
  // event not coming (a hard link: IN_CREATE with no IN_OPEN) waits for a
  // drain later than its deadline; timers can run before a pending read
  // (after a stall, or while the gate is closed).
  int64_t drained_ms() const { return drained_ms_; }
  // Reads what the kernel holds now, unless the gate is closed: sinks run
  // from inside this call (the caller holds no iterator into what they touch).
  void CatchUp();

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
  struct Sub {
    const void* owner;
    Sink sink;
  };
  std::unordered_map<int, std::vector<Sub>> watches_;  // wd -> its owners' sinks
  uint64_t overflows_ = 0;
  int64_t drained_ms_ = 0;
};

}  // namespace dropq
