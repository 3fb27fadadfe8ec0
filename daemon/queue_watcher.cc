#include "daemon/queue_watcher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "common/beneath.h"
#include "common/check.h"
#include "common/clock.h"
#include "common/file_kind.h"
#include "common/log.h"

namespace dropq {
namespace {

// A scanned file this young may still be open for writing.
constexpr int64_t kScanMarginMs = 2000;
// A regular file created and not opened within this long was linked in
// (link(2) makes IN_CREATE alone; a writer's open follows its create at once).
constexpr int64_t kLinkQuietMs = 500;

int64_t MtimeMs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

// The path of `dir` relative to `watch` if it lies below it ("a" or "a/b"),
// else "".
std::string RelBelow(const std::string& watch, const std::string& dir) {
  const std::string prefix = watch == "/" ? "/" : watch + "/";
  if (dir.size() <= prefix.size() || dir.compare(0, prefix.size(), prefix) != 0) return "";
  return dir.substr(prefix.size());
}

std::string Join(const std::string& reldir, std::string_view name) {
  if (reldir.empty()) return std::string(name);
  std::string out = reldir;
  out += '/';
  out += name;
  return out;
}

// Depth of the directory `rel` below the watched one ("" is 0, "a/b" is 2).
int DepthOf(const std::string& rel) {
  return rel.empty() ? 0 : 1 + static_cast<int>(std::count(rel.begin(), rel.end(), '/'));
}

bool Below(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

}  // namespace

QueueWatcher::QueueWatcher(const QueueConfig& q, Loop* loop, QueueRunner* runner)
    : q_(q),
      loop_(loop),
      runner_(runner),
      forget_on_leave_(q.on_success.kind == Disposition::Kind::kKeep ||
                       q.on_failure.kind == Disposition::Kind::kKeep),
      moves_files_(!q.processing_dir.empty() || q.on_success.kind != Disposition::Kind::kKeep ||
                   q.on_failure.kind != Disposition::Kind::kKeep) {
  for (const Disposition* d : {&q.on_success, &q.on_failure}) {
    if (d->kind != Disposition::Kind::kMoveTo) continue;
    std::string rel = RelBelow(q.watch, d->dir);
    if (!rel.empty()) own_dirs_.insert(std::move(rel));
  }
  if (!q.processing_dir.empty()) {
    std::string rel = RelBelow(q.watch, q.processing_dir);
    if (!rel.empty()) own_dirs_.insert(std::move(rel));
  }
  settle_timer_ = MakeTimer(loop_->get(), this);
  rescan_timer_ = MakeTimer(loop_->get(), this);
  rewatch_timer_ = MakeTimer(loop_->get(), this);
  poll_timer_ = MakeTimer(loop_->get(), this);
  prune_timer_ = MakeTimer(loop_->get(), this);
  if (const auto every = static_cast<uint64_t>(q.rescan_interval.count()); every > 0) {
    uv_timer_start(
        rescan_timer_.get(),
        [](uv_timer_t* t) {
          auto* self = static_cast<QueueWatcher*>(t->data);
          if (!self->full_scan_) self->Rescan();  // one still running will do
        },
        every, every);
  }
  if (q.recursive && q.prune_empty_dirs.count() > 0) {
    const auto every =
        static_cast<uint64_t>(std::clamp<int64_t>(q.prune_empty_dirs.count() / 4, 1000, 60 * 1000));
    uv_timer_start(
        prune_timer_.get(),
        [](uv_timer_t* t) { static_cast<QueueWatcher*>(t->data)->OnPruneTimer(); }, every, every);
  }
}

QueueWatcher::~QueueWatcher() { Stop(); }

Status QueueWatcher::Watch(Inotify* inotify) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  inotify_ = inotify;
  uint32_t mask =
      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_OPEN | IN_MOVE_SELF;
  if (q_.settle.count() > 0) mask |= IN_MODIFY | IN_ATTRIB;
  Result<int> wd =
      inotify->Watch(q_.watch, mask, this,
                     [this](int w, uint32_t m, std::string_view name) { OnEvent(w, m, name); });
  if (!wd.ok()) return wd.error();
  root_wd_ = *wd;
  rel_of_wd_[root_wd_] = "";
  wd_of_rel_[""] = root_wd_;
  return OkStatus();
}

bool QueueWatcher::WatchDir(const std::string& rel) {
  if (wd_of_rel_.count(rel) != 0) return true;
  int err = 0;
  std::string reason;
  Result<UniqueFd> fd = OpenDirBeneath(q_.watch, rel, &err);
  if (!fd.ok()) {
    if (err == ENOENT || err == ELOOP || err == ENOTDIR) {
      polled_.erase(rel);  // gone, or not a directory now: nothing to poll
      unusable_.erase(rel);
      return false;
    }
    reason = err == EACCES ? "permission" : "open";
  } else {
    const int need = R_OK | X_OK | (moves_files_ ? W_OK : 0);
    if (::faccessat(fd->get(), ".", need, AT_EACCESS) != 0) {
      reason = "permission";
      err = errno;
    } else {
      uint32_t mask =
          IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_OPEN;
      if (q_.settle.count() > 0) mask |= IN_MODIFY | IN_ATTRIB;
      Result<int> wd = inotify_->Watch(
          ProcPath(fd->get()), mask, this,
          [this](int w, uint32_t m, std::string_view name) { OnEvent(w, m, name); }, &err);
      if (wd.ok()) {
        rel_of_wd_[*wd] = rel;
        wd_of_rel_[rel] = *wd;
        if (polled_.erase(rel) != 0) {
          LogInfo("watch.restored", {{"queue", q_.name}, {"dir", Join(q_.watch, rel)}});
        }
        unusable_.erase(rel);
        return true;
      }
      reason = (err == ENOSPC || err == ENOMEM) ? "limit" : "other";
    }
  }
  auto [it, first] = polled_.try_emplace(rel, reason);
  if (!first && it->second != reason) {
    it->second = reason;  // another cause now: reported as such
    first = true;
  }
  if (reason == "permission") {
    unusable_.insert(rel);
  } else {
    unusable_.erase(rel);
  }
  if (first) {
    ++counters_.watch_errors[reason];
    const std::string dir = q_.watch + "/" + rel;
    if (reason == "limit") {
      if (!limit_logged_) {
        limit_logged_ = true;
        LogError("watch.limit", {{"queue", q_.name},
                                 {"dir", dir},
                                 {"err", std::strerror(err)},
                                 {"sysctl", "fs.inotify.max_user_watches"},
                                 {"hint",
                                  "raise fs.inotify.max_user_watches (sysctl): until then this "
                                  "directory and the others without a watch are scanned every "
                                  "poll_interval"}});
      }
    } else if (reason == "permission") {
      LogError("dir.unusable",
               {{"queue", q_.name},
                {"dir", dir},
                {"err", std::strerror(err)},
                {"why", moves_files_ ? "dropq needs to read it and rename files out of it: "
                                       "give its user rwx (a default ACL on the inbox)"
                                     : "dropq needs to read it: give its user r-x"}});
    } else {
      LogError("watch.failed", {{"queue", q_.name}, {"dir", dir}, {"err", std::strerror(err)}});
    }
  }
  ArmPollTimer();
  return false;
}

void QueueWatcher::DropSubtree(const std::string& rel) {
  // `rel` itself, then the range of paths below it: "rel/" up to "rel0"
  // ('0' follows '/'), so that a sibling such as "rel-old" or "rel.x",
  // which sorts between "rel" and "rel/", is neither dropped nor a stop.
  const std::string lo = rel + "/", hi = rel + "0";
  auto unwatch = [this](std::map<std::string, int>::iterator it) {
    inotify_->Unwatch(it->second, this);
    rel_of_wd_.erase(it->second);
    return wd_of_rel_.erase(it);
  };
  if (auto it = wd_of_rel_.find(rel); it != wd_of_rel_.end()) unwatch(it);
  for (auto it = wd_of_rel_.lower_bound(lo); it != wd_of_rel_.end() && it->first < hi;) {
    it = unwatch(it);
  }
  auto below = [&rel](const std::string& p) { return p == rel || Below(p, rel); };
  std::erase_if(polled_, [&](const auto& e) { return below(e.first); });
  std::erase_if(unusable_, below);
  std::erase_if(left_, [&](const auto& e) { return below(e.first); });
  std::erase_if(scan_todo_, [&](const ScanTask& t) { return below(t.rel); });
  for (auto it = waiting_.lower_bound(lo); it != waiting_.end() && it->first < hi;) {
    by_due_.erase({it->second.due_ms, it->first});
    it = waiting_.erase(it);
  }
  if (scanner_ != nullptr && below(cur_.rel)) {
    scanner_.reset();
    scan_paused_ = false;
    NextDir();
  }
}

void QueueWatcher::AddDir(const std::string& rel, ino_t ino, int depth, bool full, bool from_scan) {
  const std::string_view leaf = std::string_view(rel).substr(rel.rfind('/') + 1);
  if (own_dirs_.count(rel) != 0 || !DirSelected(q_, std::string(leaf))) return;
  if (depth >= q_.max_depth) {
    Skip(rel, "too_deep", ino);  // its files would lie deeper than max_depth
    return;
  }
  const bool known = wd_of_rel_.count(rel) != 0 || polled_.count(rel) != 0;
  if (known && !full) return;  // watched already: its own scan covers it
  if (from_scan && !known) ++counters_.dirs_by_scan;
  // Watch first, then scan: a file written after the watch has its event,
  // one written before is found by the scan.
  if (!WatchDir(rel) && unusable_.count(rel) != 0) return;  // polled until usable
  scan_todo_.push_back(ScanTask{rel, depth, full});
  if (scanner_ == nullptr && !scan_paused_ && !gate_paused_) {
    scanning_ = true;
    NextDir();
  }
}

void QueueWatcher::ArmPollTimer() {
  if (polled_.empty() || !poll_timer_ ||
      uv_is_active(reinterpret_cast<uv_handle_t*>(poll_timer_.get()))) {
    return;
  }
  const auto every = static_cast<uint64_t>(q_.poll_interval.count());
  uv_timer_start(
      poll_timer_.get(), [](uv_timer_t* t) { static_cast<QueueWatcher*>(t->data)->OnPollTimer(); },
      every, every);
}

void QueueWatcher::OnPollTimer() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (stopped_) return;
  if (polled_.empty()) {
    uv_timer_stop(poll_timer_.get());
    if (limit_logged_) {
      limit_logged_ = false;
      LogInfo("watch.limit_cleared", {{"queue", q_.name}});
    }
    return;
  }
  // Each polled directory is watched again if it can be now, and scanned
  // (a full task: its subdirectories have no watch either).
  std::vector<std::string> dirs;
  for (const auto& [rel, reason] : polled_) dirs.push_back(rel);
  bool any_limit = false;
  for (const std::string& rel : dirs) {
    if (polled_.count(rel) == 0) continue;  // dropped with a subtree meanwhile
    bool covered = false;                   // a polled directory above scans this one
    for (const ScanTask& t : scan_todo_) covered |= t.rel == rel;
    if (covered) continue;
    const bool watched = WatchDir(rel);  // logs and counts only what is new
    if (!watched && polled_.count(rel) == 0) {
      DropSubtree(rel);  // gone with no event to say so (its parent was polled)
      continue;
    }
    if (!watched && unusable_.count(rel) != 0) continue;
    if (!watched) any_limit |= polled_.at(rel) == "limit";
    scan_todo_.push_back(ScanTask{rel, DepthOf(rel), true});
  }
  if (!any_limit && limit_logged_) {
    bool still = false;
    for (const auto& [rel, reason] : polled_) still |= reason == "limit";
    if (!still) {
      limit_logged_ = false;
      LogInfo("watch.limit_cleared", {{"queue", q_.name}});
    }
  }
  if (scanner_ == nullptr && !scan_paused_ && !gate_paused_ && !scan_todo_.empty()) {
    scanning_ = true;
    NextDir();
  }
}

void QueueWatcher::OnPruneTimer() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (stopped_) return;
  const int64_t now = MonoMs();
  std::vector<std::string> due;
  for (const auto& [rel, at] : left_) {
    if (now - at >= q_.prune_empty_dirs.count()) due.push_back(rel);
  }
  // Deepest first: a parent emptied by its child's removal goes in a later round.
  std::sort(due.rbegin(), due.rend());
  for (const std::string& rel : due) {
    left_.erase(rel);
    const auto [reldir, leaf] = SplitParent(rel);
    Result<UniqueFd> parent = OpenDirBeneath(q_.watch, reldir);
    if (!parent.ok()) continue;
    // ENOTEMPTY: in use again. AT_REMOVEDIR never follows a symlink.
    if (::unlinkat(parent->get(), std::string(leaf).c_str(), AT_REMOVEDIR) == 0) {
      LogInfo("dir.pruned", {{"queue", q_.name}, {"dir", q_.watch + "/" + rel}});
      if (!reldir.empty()) left_[std::string(reldir)] = now;
    }
  }
}

void QueueWatcher::OnWatchLost() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  LogError("watch.lost", {{"queue", q_.name}, {"dir", q_.watch}, {"reason", "removed or moved"}});
  inotify_->UnwatchAll(this);
  rel_of_wd_.clear();
  wd_of_rel_.clear();
  polled_.clear();
  unusable_.clear();
  left_.clear();
  root_wd_ = -1;
  // A scan of the directory that went would go on through its descriptor,
  // and a waiting name could be taken from the one that comes back.
  scanner_.reset();
  scan_todo_.clear();
  scan_paused_ = gate_paused_ = false;
  scanning_ = full_scan_ = false;
  waiting_.clear();
  by_due_.clear();
  // Look for it again every second; files written meanwhile go nowhere we
  // can see, and the rescan after the watch is back takes whatever is there.
  uv_timer_start(
      rewatch_timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<QueueWatcher*>(t->data);
        if (self->stopped_) return;
        struct stat st;
        if (stat(self->q_.watch.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
        if (Status s = self->Watch(self->inotify_); !s.ok()) {
          LogWarn("watch.retry", {{"queue", self->q_.name}, {"err", s.error().what}});
          return;
        }
        uv_timer_stop(t);
        LogInfo("watch.restored", {{"queue", self->q_.name}, {"dir", self->q_.watch}});
        self->Rescan();
      },
      1000, 1000);
}

void QueueWatcher::Stop() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  stopped_ = true;
  if (inotify_ != nullptr) inotify_->UnwatchAll(this);  // their sinks point here
  rel_of_wd_.clear();
  wd_of_rel_.clear();
  polled_.clear();
  unusable_.clear();
  left_.clear();
  scanner_.reset();
  finished_.reset();
  scan_todo_.clear();
  settle_timer_.Reset();
  rescan_timer_.Reset();
  rewatch_timer_.Reset();
  poll_timer_.Reset();
  prune_timer_.Reset();
  waiting_.clear();
  by_due_.clear();
}

int QueueWatcher::StatRel(const std::string& rel, struct stat* st) {
  const auto [reldir, leaf] = SplitParent(rel);
  if (reldir.empty()) return ::lstat((q_.watch + "/" + rel).c_str(), st) == 0 ? 0 : errno;
  int err = 0;
  Result<UniqueFd> dir = OpenDirBeneath(q_.watch, reldir, &err);
  if (!dir.ok()) return err;
  return ::fstatat(dir->get(), std::string(leaf).c_str(), st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
}

bool QueueWatcher::InUnusableDir(const std::string& rel) const {
  if (unusable_.empty()) return false;
  const size_t slash = rel.rfind('/');
  return slash != std::string::npos && unusable_.count(rel.substr(0, slash)) != 0;
}

void QueueWatcher::OnEvent(int wd, uint32_t mask, std::string_view view) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (stopped_) return;
  const auto dir_it = rel_of_wd_.find(wd);
  if (dir_it == rel_of_wd_.end()) return;  // a directory unwatched since
  if (mask & (IN_IGNORED | IN_MOVE_SELF)) {
    if (wd == root_wd_) {
      // Moved: its events would come from elsewhere.
      if (!(mask & IN_IGNORED)) inotify_->Unwatch(wd, this);
      OnWatchLost();
    } else if (mask & IN_IGNORED) {
      // A subdirectory deleted (its parent's IN_DELETE did the rest) or
      // its watch dropped: nothing of it is watched any more.
      wd_of_rel_.erase(dir_it->second);
      rel_of_wd_.erase(dir_it);
    }
    return;
  }
  if (view.empty()) return;
  const std::string& reldir = dir_it->second;
  if (!reldir.empty() && q_.prune_empty_dirs.count() > 0) {
    if (auto it = left_.find(reldir); it != left_.end()) it->second = MonoMs();
  }
  std::string name = Join(reldir, view);
  if (mask & IN_OPEN) {
    // A writer opened it: not a hard link. Its close will tell.
    if (auto it = waiting_.find(name); it != waiting_.end() && it->second.why == Why::kLink) {
      Unsettle(name);
    }
    return;
  }
  if (mask & (IN_DELETE | IN_MOVED_FROM)) {
    turned_away_.erase(name);  // a new entry under this name is reported anew
    if (mask & IN_ISDIR) {
      if (q_.recursive) DropSubtree(name);  // pending jobs of its files end vanished
      return;
    }
    Unsettle(name);
    if (forget_on_leave_) runner_->Forget(name);
    if (!reldir.empty() && q_.prune_empty_dirs.count() > 0) left_[reldir] = MonoMs();
    return;
  }
  if (mask & IN_ISDIR) {
    if (!(mask & (IN_CREATE | IN_MOVED_TO))) return;
    if (own_dirs_.count(name) != 0) return;
    struct stat st;
    const ino_t ino = StatRel(name, &st) == 0 ? st.st_ino : 0;
    if (q_.recursive) {
      AddDir(name, ino, DepthOf(name), /*full=*/false, /*from_scan=*/false);
    } else {
      Skip(name, S_IFDIR, ino);
    }
    return;
  }
  if (mask & (IN_MODIFY | IN_ATTRIB)) {
    // Still being written: push its settle deadline back.
    if (auto it = waiting_.find(name); it != waiting_.end() && it->second.why == Why::kEvent) {
      Settle(name, MonoMs() + q_.settle.count(), Why::kEvent);
    }
    return;
  }
  const bool complete = (mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) != 0;
  if (!Selected(name, complete)) return;  // before the lstat: *.part files close often
  if (InUnusableDir(name)) return;        // taken when its directory can be used
  if (q_.watch.size() + 1 + name.size() >= PATH_MAX) {
    Skip(name, "path_too_long", 0);  // no handler could open it by its path
    return;
  }
  struct stat st;
  if (StatRel(name, &st) != 0) return;  // already gone again
  if (mask & IN_CREATE) {
    // A regular file is taken on its close; anything else never closes-after-write.
    // One created with no open following (a hard link) is taken once quiet.
    if (!S_ISREG(st.st_mode)) {
      Skip(name, st.st_mode, st.st_ino);
    } else if (waiting_.count(name) == 0) {
      Settle(name, MonoMs() + std::max<int64_t>(q_.settle.count(), kLinkQuietMs), Why::kLink);
    }
    return;
  }
  // A kept file the runner put back from the processing area is its own.
  if ((mask & IN_MOVED_TO) && runner_->TakeOwnReturn(name, FileIdentity::FromStat(st))) return;
  if (complete) Consider(name, st, false);
}

bool QueueWatcher::Selected(const std::string& name, bool count) {
  if (own_dirs_.count(name) != 0) return false;
  if (NameSelected(q_, name)) return true;
  if (count && FirstSight(name, 0)) {
    ++counters_.excluded;
    LogDebug("file.excluded", {{"queue", q_.name}, {"path", q_.watch + "/" + name}});
  }
  return false;
}

void QueueWatcher::Consider(const std::string& name, const struct stat& st, bool from_scan) {
  if (!S_ISREG(st.st_mode)) {
    Skip(name, st.st_mode, st.st_ino);
    return;
  }
  if (q_.watch.size() + 1 + name.size() >= PATH_MAX) {
    Skip(name, "path_too_long", st.st_ino);  // no handler could open it by its path
    return;
  }
  if (from_scan) {
    // Wall-clock ages: mtime is wall-clock. Convert the wait to the monotonic timer.
    const int64_t age_ms = NowUnixMs() - MtimeMs(st);
    const int64_t need_ms = q_.settle.count() + kScanMarginMs;
    if (age_ms < need_ms) {
      Settle(name, MonoMs() + (need_ms - std::max<int64_t>(age_ms, 0)), Why::kScan);
      return;
    }
  } else if (q_.settle.count() > 0) {
    Settle(name, MonoMs() + q_.settle.count(), Why::kEvent);
    return;
  }
  Unsettle(name);
  ++counters_.seen;
  runner_->Enqueue(name, FileIdentity::FromStat(st));
}

void QueueWatcher::Skip(const std::string& name, mode_t mode, ino_t ino) {
  Skip(name, FileKindName(mode), ino);
}

bool QueueWatcher::FirstSight(const std::string& name, ino_t ino) {
  auto it = turned_away_.find(name);
  if (it != turned_away_.end()) {
    it->second.scan = scan_gen_;
    if (ino != 0 && it->second.ino == ino) return false;
    if (ino == 0 && it->second.ino == 0) return false;
    it->second.ino = ino;  // another entry under the same name
    return true;
  }
  if (turned_away_.size() < kMaxTurnedAway) turned_away_.emplace(name, TurnedAway{ino, scan_gen_});
  return true;
}

void QueueWatcher::Skip(const std::string& name, std::string_view reason, ino_t ino) {
  if (!FirstSight(name, ino)) return;
  ++counters_.skipped;
  ++counters_.skipped_by[std::string(reason)];
  LogWarn("file.skip", {{"queue", q_.name}, {"path", q_.watch + "/" + name}, {"reason", reason}});
}

void QueueWatcher::Settle(const std::string& name, int64_t due_ms, Why why) {
  auto [it, inserted] = waiting_.try_emplace(name, Waiting{due_ms, why});
  if (!inserted) {
    by_due_.erase({it->second.due_ms, name});
    // A scanned file seen by an event is the event's; a link candidate that
    // was written to or closed is no longer one.
    const Why was = it->second.why;
    it->second = Waiting{due_ms, was == Why::kScan && why == Why::kScan ? Why::kScan : why};
  }
  by_due_.insert({due_ms, name});
  ArmSettleTimer();
}

void QueueWatcher::Unsettle(const std::string& name) {
  if (auto it = waiting_.find(name); it != waiting_.end()) {
    by_due_.erase({it->second.due_ms, name});
    waiting_.erase(it);
  }
}

void QueueWatcher::ArmSettleTimer() {
  if (by_due_.empty() || !settle_timer_) return;
  const int64_t wait = std::max<int64_t>(0, by_due_.begin()->first - MonoMs());
  uv_timer_start(
      settle_timer_.get(),
      [](uv_timer_t* t) { static_cast<QueueWatcher*>(t->data)->OnSettleTimer(); },
      static_cast<uint64_t>(wait), 0);
}

void QueueWatcher::OnSettleTimer() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  const int64_t now = MonoMs();
  if (inotify_ != nullptr && inotify_->drained_ms() < now) {
    // A link candidate is taken only if no IN_OPEN for it waits unread.
    bool links_due = false;
    for (auto it = by_due_.begin(); it != by_due_.end() && it->first <= now; ++it) {
      links_due |= waiting_.at(it->second).why == Why::kLink;
    }
    if (links_due) {
      inotify_->CatchUp();  // may run OnEvent() for this watcher
      if (stopped_) return;
    }
  }
  while (!by_due_.empty() && by_due_.begin()->first <= now) {
    const std::string name = by_due_.begin()->second;
    const Why why = waiting_.at(name).why;
    const int64_t due = by_due_.begin()->first;
    if (why == Why::kLink && inotify_ != nullptr && inotify_->drained_ms() < due) {
      // Its IN_OPEN may still wait in the kernel's queue (unread under
      // backpressure, or the loop was late): look again after a read.
      by_due_.erase(by_due_.begin());
      waiting_.at(name).due_ms = now + 50;
      by_due_.insert({now + 50, name});
      continue;
    }
    by_due_.erase(by_due_.begin());
    waiting_.erase(name);
    struct stat st;
    if (StatRel(name, &st) != 0) continue;
    if (why == Why::kScan) {
      Consider(name, st, true);  // still too young: waits again
    } else if (S_ISREG(st.st_mode)) {
      if (why == Why::kLink) {
        LogDebug("file.linked", {{"queue", q_.name}, {"path", q_.watch + "/" + name}});
      }
      ++counters_.seen;
      runner_->Enqueue(name, FileIdentity::FromStat(st));
    }
  }
  ArmSettleTimer();
}

void QueueWatcher::Rescan() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (stopped_) return;
  ++counters_.scans;
  ++scan_gen_;
  scanning_ = true;
  full_scan_ = true;
  LogInfo("scan.start", {{"queue", q_.name}, {"dir", q_.watch}});
  scan_paused_ = false;
  gate_paused_ = false;
  scanner_.reset();
  scan_todo_.clear();
  scan_failed_ = false;
  scan_todo_.push_back(ScanTask{"", 0, true});
  NextDir();
}

void QueueWatcher::NextDir() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  while (!scan_todo_.empty()) {
    if (inotify_ != nullptr && !inotify_->reading() && !scan_todo_.front().rel.empty()) {
      gate_paused_ = true;  // each open queues events that are not being read
      return;
    }
    gate_paused_ = false;
    ScanTask task = std::move(scan_todo_.front());
    scan_todo_.pop_front();
    UniqueFd fd;
    if (task.rel.empty()) {
      fd.Reset(::open(q_.watch.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fd.valid()) {
        scan_failed_ = true;
        LogError("scan.failed",
                 {{"queue", q_.name}, {"err", IoError("opendir " + q_.watch, errno).what}});
        continue;
      }
    } else {
      int err = 0;
      Result<UniqueFd> r = OpenDirBeneath(q_.watch, task.rel, &err);
      if (!r.ok()) {
        if (err != ENOENT && err != ELOOP && err != ENOTDIR) {
          LogWarn("scan.dir_failed", {{"queue", q_.name}, {"err", r.error().what}});
        }
        continue;  // gone or replaced since: nothing of this tree is there
      }
      fd = std::move(*r);
    }
    cur_ = std::move(task);
    scanner_ = std::make_unique<DirScanner>(
        loop_, std::move(fd), Join(q_.watch, cur_.rel),
        [this](std::vector<ScanEntry> chunk, bool last, const Error* error) {
          OnScanChunk(std::move(chunk), last, error);
        });
    scanner_->Start();
    return;
  }
  FinishScan();
}

void QueueWatcher::FinishScan() {
  scanner_.reset();
  scanning_ = false;
  if (!full_scan_) return;
  full_scan_ = false;
  if (std::exchange(scan_failed_, false)) {
    LogInfo("scan.done", {{"queue", q_.name}});
    return;  // no sweep on what a failed scan did not see
  }
  if (forget_on_leave_) runner_->SweepMarkers();  // kept files that left unwatched
  runner_->SweepProcessing();                     // files of jobs that will not run again
  // Names turned away that this whole scan did not find are gone.
  std::erase_if(turned_away_, [this](const auto& e) { return e.second.scan != scan_gen_; });
  LogInfo("scan.done", {{"queue", q_.name}});
}

void QueueWatcher::OnScanChunk(std::vector<ScanEntry> chunk, bool last, const Error* error) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  const bool usable = unusable_.count(cur_.rel) == 0;
  for (const ScanEntry& e : chunk) {
    const std::string name = Join(cur_.rel, e.name);
    if (S_ISDIR(e.st.st_mode) && q_.recursive) {
      AddDir(name, e.st.st_ino, cur_.depth + 1, cur_.full, /*from_scan=*/true);
      continue;
    }
    if (S_ISDIR(e.st.st_mode) && own_dirs_.count(name) != 0) continue;
    if (usable && Selected(name, true)) Consider(name, e.st, true);
  }
  if (last) {
    if (error != nullptr) {
      scan_failed_ = true;  // what it did not see may still be there
      LogError("scan.failed", {{"queue", q_.name}, {"err", error->what}});
    }
    // This very scanner is running this callback: it is kept until the
    // next directory's finishes, and the next directory's starts now.
    finished_ = std::move(scanner_);
    scan_paused_ = false;
    NextDir();
    return;
  }
  scan_paused_ = true;
  Tick();
}

void QueueWatcher::Tick() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (gate_paused_) {
    if (inotify_ == nullptr || inotify_->reading()) NextDir();
    return;
  }
  if (!scan_paused_ || scanner_ == nullptr) return;
  if (runner_->enqueue_behind()) return;
  scan_paused_ = false;
  scanner_->Continue();
}

std::vector<std::pair<std::string, uint64_t>> QueueWatcher::TakeStatDeltas() {
  std::vector<std::pair<std::string, uint64_t>> out;
  auto take = [&](const std::string& field, uint64_t total) {
    uint64_t& last = taken_[field];
    if (total > last) out.emplace_back(field, total - last);
    last = total;
  };
  take("seen", counters_.seen);
  for (const auto& [reason, n] : TurnedAwayByReason()) take("skipped_" + reason, n);
  take("dirs_by_scan", counters_.dirs_by_scan);
  for (const auto& [reason, n] : counters_.watch_errors) take("watch_errors_" + reason, n);
  return out;
}

std::map<std::string, uint64_t> QueueWatcher::TurnedAwayByReason() const {
  std::map<std::string, uint64_t> by = counters_.skipped_by;
  by["excluded"] = counters_.excluded;
  return by;
}

}  // namespace dropq
