// Disposer moves or deletes the files of jobs whose outcome is recorded, as
// the queue's on_success / on_failure says (workers/disposition.h), on
// libuv's threadpool: the blocking renames, copies across filesystems and
// unlinks never run on the loop. Several files go in one threadpool item,
// since each item costs two thread wake-ups, which on a burst of small files
// weigh more than the renames.
//
// Each move reports once, on the loop thread, through the callback given at
// construction. Work still on the threadpool when the Disposer is destroyed
// finishes there, but its report is dropped (a shared state whose owner is
// cleared): the owner counts in_flight() before it lets a queue go, so in
// practice none is left.
//
// Thread: loop (made, used and destroyed there); the moves run on the threadpool.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "daemon/loop.h"
#include "workers/disposition.h"
#include "workers/processing.h"
#include "workers/spare_dirs.h"

namespace dropq {

class Disposer {
 public:
  struct Move {
    std::string id;    // the job's id
    Disposition d;     // what to do with the file
    std::string src;   // where the file is now; "": not known (a redisposal), looked for
    std::string name;  // its name in the watched directory
    DisposeOptions opt;
  };
  // Where the file ended up ("" for a delete), or why it did not move.
  using Done = std::function<void(const std::string& id, Result<std::string> where)>;

  // `loop` must outlive the Disposer. `watch` is the queue's directory,
  // `area` its processing area ("" when off) used as `layout` says: a file
  // out of place goes home for kKeep, and a job's directory is removed (or
  // kept as a spare in `spares`, may be null) once its file left it.
  Disposer(Loop* loop, std::string watch, AreaLayout layout, std::string area,
           std::shared_ptr<SpareDirs> spares, Done done);
  ~Disposer();
  Disposer(const Disposer&) = delete;
  Disposer& operator=(const Disposer&) = delete;

  // Starts every move; each reports through `done` on a later loop turn.
  void Start(std::vector<Move> moves);

  // Moves started and not reported yet.
  int in_flight() const { return in_flight_; }

 private:
  struct Shared {
    Disposer* owner;  // null once the Disposer is gone
  };
  void Report(const std::string& id, Result<std::string> where);

  Loop* const loop_;
  const std::string watch_;
  const AreaLayout layout_;
  const std::string area_;
  const std::shared_ptr<SpareDirs> spares_;  // may be null
  const Done done_;
  const std::shared_ptr<Shared> shared_;
  int in_flight_ = 0;
};

}  // namespace dropq
