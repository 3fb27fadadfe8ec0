// QueueWatcher is one queue's producer: it turns inotify events and
// directory scans into complete, selected, regular files and hands them to
// the QueueRunner.
//
//  * A file is complete when it is closed after writing (IN_CLOSE_WRITE) or
//    renamed in (IN_MOVED_TO). With `settle` > 0 it is taken only once no
//    event arrived for it during that long (one timer for every waiting file).
//  * A scan (start-up, inotify overflow, Redis back after an outage) streams
//    the directory; a scanned file younger than settle + 2 s may still be
//    open for writing, so it waits for its close event or for the timer to
//    look at it again once it is old enough.
//  * Only regular files become jobs: symlinks, directories, FIFOs, sockets
//    and devices are skipped with a log line naming the kind, and counted.
//  * The queue's own success/failure directories are never looked into.
//  * A watched directory that is removed or replaced is logged, and watched
//    (and rescanned) again once it is back.
//  * Every `rescan_interval` a safety rescan finds whatever inotify missed
//    (on a network filesystem it sees only this host's writes).
//
// Thread: loop. `runner` and `loop` must outlive the watcher.
#pragma once

#include <sys/stat.h>
#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "config/config.h"
#include "daemon/dir_scanner.h"
#include "daemon/inotify.h"
#include "daemon/loop.h"
#include "daemon/queue_runner.h"
#include "daemon/uv_handle.h"

namespace dropq {

class QueueWatcher {
 public:
  struct Counters {
    uint64_t seen = 0;                           // regular files handed to the runner to enqueue
    uint64_t excluded = 0;                       // names the include/exclude globs turned away
    uint64_t skipped = 0;                        // entries that are not regular files
    std::map<std::string, uint64_t> skipped_by;  // the same, by reason (fifo, symlink...)
    uint64_t scans = 0;
  };

  QueueWatcher(const QueueConfig& q, Loop* loop, QueueRunner* runner);
  ~QueueWatcher();
  QueueWatcher(const QueueWatcher&) = delete;
  QueueWatcher& operator=(const QueueWatcher&) = delete;

  // Puts the inotify watch in place. From then on no complete file is missed.
  Status Watch(Inotify* inotify);

  // Scans the whole directory (again), streaming. A scan in progress restarts.
  void Rescan();
  // Called once per loop turn: resumes a scan paused while ENQUEUE was behind.
  void Tick();
  // Stops scanning and settling; inotify events are ignored from now on.
  void Stop();

  const Counters& counters() const { return counters_; }
  // Names turned away so far by reason: `excluded` (the globs), then each
  // kind of entry skipped (fifo, symlink...) and path_too_long.
  std::map<std::string, uint64_t> TurnedAwayByReason() const;

  // What the counters gained since the last call, as fields of the queue's
  // stats hash in Redis: `seen`, `skipped_excluded` and `skipped_<reason>`
  // (zero gains left out). The caller adds them to Redis.
  std::vector<std::pair<std::string, uint64_t>> TakeStatDeltas();

 private:
  void OnEvent(uint32_t mask, std::string_view name);
  // The watched directory was removed or moved away: watch it again once it
  // is back, then rescan.
  void OnWatchLost();
  void OnScanChunk(std::vector<ScanEntry> chunk, bool last, const Error* error);
  // False for names the globs turn away (counted and logged if `count`) and
  // for the queue's own success/failure directories.
  bool Selected(const std::string& name, bool count);
  // A selected name believed complete: skips what is not a regular file,
  // then enqueues it or lets it settle.
  void Consider(const std::string& name, const struct stat& st, bool from_scan);
  // Logs and counts a file that is not taken: its kind (symlink, fifo...) or
  // another reason ("path_too_long"). `ino` (0: unknown) tells the same entry
  // found again by a rescan, which is neither logged nor counted again.
  void Skip(const std::string& name, mode_t mode, ino_t ino);
  void Skip(const std::string& name, std::string_view reason, ino_t ino);
  // True the first time `name` (with inode `ino`; 0 for a name alone) is
  // turned away while it stays in the directory: the caller logs and counts it.
  // A rescan finds the same entries again; each is reported once.
  bool FirstSight(const std::string& name, ino_t ino);
  void Settle(const std::string& name, int64_t due_ms, bool from_scan);
  void ArmSettleTimer();
  void OnSettleTimer();

  const QueueConfig& q_;
  Loop* const loop_;
  QueueRunner* const runner_;
  std::unordered_set<std::string> own_dirs_;  // success/failure/processing dirs inside `watch`
  const bool forget_on_leave_;                // a keep disposition leaves markers to drop
  std::unique_ptr<DirScanner> scanner_;
  bool scan_paused_ = false;
  bool stopped_ = false;

  struct Waiting {
    int64_t due_ms;
    bool from_scan;
  };
  std::map<std::string, Waiting> waiting_;            // name -> when to look again
  std::set<std::pair<int64_t, std::string>> by_due_;  // (due_ms, name): the timer's order
  UvHandle<uv_timer_t> settle_timer_;
  UvHandle<uv_timer_t> rescan_timer_;   // rescan_interval: the safety net for missed events
  UvHandle<uv_timer_t> rewatch_timer_;  // looks for a removed watch directory to come back
  Inotify* inotify_ = nullptr;          // owned by the Daemon, outlives this watcher
  bool scanning_ = false;
  Counters counters_;
  // Names turned away (skipped or excluded) and still in the directory, so
  // that rescans do not report them again: name -> inode and the last scan
  // that saw it. Entries a finished scan did not see are dropped. At most
  // kMaxTurnedAway names (about 1 MiB); beyond that, reports repeat.
  struct TurnedAway {
    ino_t ino;
    uint64_t scan;
  };
  static constexpr size_t kMaxTurnedAway = 10000;
  std::unordered_map<std::string, TurnedAway> turned_away_;
  uint64_t scan_gen_ = 0;                  // incremented by each Rescan()
  std::map<std::string, uint64_t> taken_;  // stats field -> total at the last TakeStatDeltas()
};

}  // namespace dropq
