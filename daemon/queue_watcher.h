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
//  * The queue's own success/failure/processing directories are never
//    looked into.
//  * A watched directory that is removed or replaced is logged, and watched
//    (and rescanned) again once it is back.
//  * A regular file created with no open (link(2): `ln tmp final`, or
//    O_TMPFILE + linkat) has no close event: with IN_OPEN in the mask, a
//    file whose IN_CREATE is followed by no IN_OPEN within max(settle,
//    kLinkQuietMs) is taken then.
//
// A recursive queue (`recursive: true`) watches the whole tree below
// `watch`, down to `max_depth`, and a job's name is the file's path relative
// to `watch`. A directory that appears is watched first and scanned after,
// so that no file written into it in between is missed; what the scan and
// the events both report is enqueued once (ENQUEUE knows a pending file).
// Every directory is opened beneath `watch` without following symlinks
// (common/beneath.h) and watched through its descriptor. When the kernel
// refuses a watch (fs.inotify.max_user_watches, or a directory dropq cannot
// read), that subtree is scanned every `poll_interval` instead, and watched
// again as soon as it can be. A directory renamed or moved out is unwatched
// with its subtree; one renamed inside is watched and scanned under its new
// path, so its files' pending jobs end vanished and they are enqueued again
// under their new names (each file still processed once). Memory: one watch
// entry per directory (its relative path twice and two map nodes, about
// 200 bytes), and nothing per file beyond the settle and turned-away maps.
//  * Every `rescan_interval` a safety rescan finds whatever inotify missed
//    (on a network filesystem it sees only this host's writes).
//
// Thread: loop. `runner` and `loop` must outlive the watcher.
#pragma once

#include <sys/stat.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/unique_fd.h"
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
    uint64_t dirs_by_scan = 0;                     // directories found by a scan, not by inotify
    std::map<std::string, uint64_t> watch_errors;  // directories left unwatched, by reason
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
  // Directories watched now (the watched directory included).
  size_t watched_dirs() const { return wd_of_rel_.size(); }
  // Directories covered by polling scans instead (no watch could be added).
  size_t polled_dirs() const { return polled_.size(); }
  // Names turned away so far by reason: `excluded` (the globs), then each
  // kind of entry skipped (fifo, symlink...) and path_too_long.
  std::map<std::string, uint64_t> TurnedAwayByReason() const;

  // What the counters gained since the last call, as fields of the queue's
  // stats hash in Redis: `seen`, `skipped_excluded`, `skipped_<reason>`,
  // `dirs_by_scan` and `watch_errors_<reason>` (zero gains left out). The caller adds them to
  // Redis.
  std::vector<std::pair<std::string, uint64_t>> TakeStatDeltas();

 private:
  // Why a name waits in waiting_: for its settle time after an event, for a
  // scanned file to be old enough, or a created file not (yet) opened.
  enum class Why { kEvent, kScan, kLink };
  // A directory to scan: `rel` ("" for `watch`) at `depth` (its files are
  // at depth + 1). `full`: part of a whole-tree scan, which descends into
  // every subdirectory; otherwise only into those not watched yet.
  struct ScanTask {
    std::string rel;
    int depth;
    bool full;
  };

  void OnEvent(int wd, uint32_t mask, std::string_view name);
  // The watched directory was removed or moved away: watch it again once it
  // is back, then rescan.
  void OnWatchLost();
  void OnScanChunk(std::vector<ScanEntry> chunk, bool last, const Error* error);
  // Starts scanning the next directory of scan_todo_, unless the inotify
  // gate is closed (each open queues events); FinishScan() when none is left.
  void NextDir();
  void FinishScan();
  // A subdirectory `rel` found at `depth` by an event or a scan: unless it
  // is excluded or too deep, watches it (or polls it) and queues its scan.
  // `from_scan` counts it as found by a scan; `full` passes on.
  void AddDir(const std::string& rel, ino_t ino, int depth, bool full, bool from_scan);
  // Puts a watch on directory `rel`, opened beneath `watch`; on failure,
  // logs and counts it once and adds it to polled_. True if watched.
  bool WatchDir(const std::string& rel);
  // Forgets `rel` and everything below it: a directory deleted or moved away.
  void DropSubtree(const std::string& rel);
  void ArmPollTimer();
  void OnPollTimer();
  void OnPruneTimer();
  // lstat() of `rel` (a path relative to `watch`) resolved beneath it.
  int StatRel(const std::string& rel, struct stat* st);
  bool InUnusableDir(const std::string& rel) const;
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
  void Settle(const std::string& name, int64_t due_ms, Why why);
  void Unsettle(const std::string& name);
  void ArmSettleTimer();
  void OnSettleTimer();

  const QueueConfig& q_;
  Loop* const loop_;
  QueueRunner* const runner_;
  std::unordered_set<std::string> own_dirs_;  // success/failure/processing dirs below `watch`
  const bool forget_on_leave_;                // a keep disposition leaves markers to drop
  const bool moves_files_;                    // dropq renames files out of their directory
  std::unique_ptr<DirScanner> scanner_;
  std::unique_ptr<DirScanner> finished_;  // the last one done, freed when the next one is
  ScanTask cur_{"", 0, false};            // the directory scanner_ reads
  std::deque<ScanTask> scan_todo_;        // directories found and not scanned yet
  bool full_scan_ = false;                // a whole-tree scan is in scan_todo_/scanner_
  bool scan_failed_ = false;  // a directory of that scan could not be read: no sweeps after it
  bool scan_paused_ = false;  // waits for ENQUEUE to catch up (Tick() resumes)
  bool gate_paused_ = false;  // waits for the inotify gate to open (Tick() resumes)
  bool stopped_ = false;

  struct Waiting {
    int64_t due_ms;
    Why why;
  };
  std::map<std::string, Waiting> waiting_;            // name -> when to look again
  std::set<std::pair<int64_t, std::string>> by_due_;  // (due_ms, name): the timer's order
  UvHandle<uv_timer_t> settle_timer_;
  UvHandle<uv_timer_t> rescan_timer_;   // rescan_interval: the safety net for missed events
  UvHandle<uv_timer_t> rewatch_timer_;  // looks for a removed watch directory to come back
  UvHandle<uv_timer_t> poll_timer_;     // poll_interval: scans of subtrees without a watch
  Inotify* inotify_ = nullptr;          // owned by the Daemon, outlives this watcher
  int root_wd_ = -1;
  bool scanning_ = false;
  // The watched directories: wd -> path relative to `watch` ("" for it),
  // and back. Events of a wd not here are stale (unwatched since).
  std::unordered_map<int, std::string> rel_of_wd_;
  std::map<std::string, int> wd_of_rel_;
  // Directories no watch could be added for (by reason), and those dropq
  // cannot use (read, search and, if it moves files, write): each polled.
  std::map<std::string, std::string> polled_;
  std::set<std::string> unusable_;
  bool limit_logged_ = false;  // watch.limit logged since the limit was last hit
  // prune_empty_dirs: subdirectories a file left (renamed out or deleted)
  // -> the time of their last event; removed once empty and idle that long.
  std::unordered_map<std::string, int64_t> left_;
  UvHandle<uv_timer_t> prune_timer_;
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
