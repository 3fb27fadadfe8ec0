#include "daemon/queue_watcher.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>

#include "common/check.h"
#include "common/clock.h"
#include "common/file_kind.h"
#include "common/log.h"

namespace dropq {
namespace {

// A scanned file this young may still be open for writing.
constexpr int64_t kScanMarginMs = 2000;

int64_t MtimeMs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

// The name of `dir` if it sits directly in `watch`, else "".
std::string ChildName(const std::string& watch, const std::string& dir) {
  const std::string prefix = watch == "/" ? "/" : watch + "/";
  if (dir.size() <= prefix.size() || dir.compare(0, prefix.size(), prefix) != 0) return "";
  const std::string rest = dir.substr(prefix.size());
  return rest.find('/') == std::string::npos ? rest : "";
}

}  // namespace

QueueWatcher::QueueWatcher(const QueueConfig& q, Loop* loop, QueueRunner* runner)
    : q_(q),
      loop_(loop),
      runner_(runner),
      forget_on_leave_(q.on_success.kind == Disposition::Kind::kKeep ||
                       q.on_failure.kind == Disposition::Kind::kKeep) {
  for (const Disposition* d : {&q.on_success, &q.on_failure}) {
    if (d->kind != Disposition::Kind::kMoveTo) continue;
    std::string child = ChildName(q.watch, d->dir);
    if (!child.empty()) own_dirs_.insert(std::move(child));
  }
  if (!q.processing_dir.empty()) {
    std::string child = ChildName(q.watch, q.processing_dir);
    if (!child.empty()) own_dirs_.insert(std::move(child));
  }
  settle_timer_ = MakeTimer(loop_->get(), this);
  rescan_timer_ = MakeTimer(loop_->get(), this);
  rewatch_timer_ = MakeTimer(loop_->get(), this);
  if (const auto every = static_cast<uint64_t>(q.rescan_interval.count()); every > 0) {
    uv_timer_start(
        rescan_timer_.get(),
        [](uv_timer_t* t) {
          auto* self = static_cast<QueueWatcher*>(t->data);
          if (!self->scanning_) self->Rescan();  // one still running will do
        },
        every, every);
  }
}

QueueWatcher::~QueueWatcher() { Stop(); }

Status QueueWatcher::Watch(Inotify* inotify) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  inotify_ = inotify;
  uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM;
  if (q_.settle.count() > 0) mask |= IN_MODIFY | IN_ATTRIB;
  return inotify->Watch(q_.watch, mask,
                        [this](uint32_t m, std::string_view name) { OnEvent(m, name); });
}

void QueueWatcher::OnWatchLost() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  LogError("watch.lost", {{"queue", q_.name}, {"dir", q_.watch}, {"reason", "removed or moved"}});
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
  if (inotify_ != nullptr) inotify_->Unwatch(q_.watch);  // its sink points here
  scanner_.reset();
  settle_timer_.Reset();
  rescan_timer_.Reset();
  rewatch_timer_.Reset();
  waiting_.clear();
  by_due_.clear();
}

void QueueWatcher::OnEvent(uint32_t mask, std::string_view view) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (stopped_) return;
  if (mask & IN_IGNORED) {
    OnWatchLost();
    return;
  }
  if (view.empty()) return;
  std::string name(view);
  if (mask & (IN_DELETE | IN_MOVED_FROM)) {
    turned_away_.erase(name);  // a new entry under this name is reported anew
    if (auto it = waiting_.find(name); it != waiting_.end()) {
      by_due_.erase({it->second.due_ms, name});
      waiting_.erase(it);
    }
    if (forget_on_leave_ && !(mask & IN_ISDIR)) runner_->Forget(name);
    return;
  }
  if (mask & IN_ISDIR) {
    if (own_dirs_.count(name) == 0 && (mask & (IN_CREATE | IN_MOVED_TO))) {
      struct stat st;
      const std::string path = q_.watch + "/" + name;
      Skip(name, S_IFDIR, lstat(path.c_str(), &st) == 0 ? st.st_ino : 0);
    }
    return;
  }
  if (mask & (IN_MODIFY | IN_ATTRIB)) {
    // Still being written: push its settle deadline back.
    if (auto it = waiting_.find(name); it != waiting_.end() && !it->second.from_scan) {
      Settle(name, MonoMs() + q_.settle.count(), false);
    }
    return;
  }
  const bool complete = (mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) != 0;
  if (!Selected(name, complete)) return;  // before the lstat: *.part files close often
  const std::string path = q_.watch + "/" + name;
  if (path.size() >= PATH_MAX) {
    Skip(name, "path_too_long", 0);  // no handler could open it by its path
    return;
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;  // already gone again
  if (mask & IN_CREATE) {
    // A regular file is taken on its close; anything else never closes-after-write.
    if (!S_ISREG(st.st_mode)) Skip(name, st.st_mode, st.st_ino);
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
      Settle(name, MonoMs() + (need_ms - std::max<int64_t>(age_ms, 0)), true);
      return;
    }
  } else if (q_.settle.count() > 0) {
    Settle(name, MonoMs() + q_.settle.count(), false);
    return;
  }
  if (auto it = waiting_.find(name); it != waiting_.end()) {
    by_due_.erase({it->second.due_ms, name});
    waiting_.erase(it);
  }
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

void QueueWatcher::Settle(const std::string& name, int64_t due_ms, bool from_scan) {
  auto [it, inserted] = waiting_.try_emplace(name, Waiting{due_ms, from_scan});
  if (!inserted) {
    by_due_.erase({it->second.due_ms, name});
    it->second = Waiting{due_ms, from_scan && it->second.from_scan};
  }
  by_due_.insert({due_ms, name});
  ArmSettleTimer();
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
  while (!by_due_.empty() && by_due_.begin()->first <= now) {
    const std::string name = by_due_.begin()->second;
    by_due_.erase(by_due_.begin());
    const bool from_scan = waiting_.at(name).from_scan;
    waiting_.erase(name);
    struct stat st;
    if (lstat((q_.watch + "/" + name).c_str(), &st) != 0) continue;
    if (from_scan) {
      Consider(name, st, true);  // still too young: waits again
    } else if (S_ISREG(st.st_mode)) {
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
  LogInfo("scan.start", {{"queue", q_.name}, {"dir", q_.watch}});
  scan_paused_ = false;
  scanner_ = std::make_unique<DirScanner>(
      loop_, q_.watch, [this](std::vector<ScanEntry> chunk, bool last, const Error* error) {
        OnScanChunk(std::move(chunk), last, error);
      });
  scanner_->Start();
}

void QueueWatcher::OnScanChunk(std::vector<ScanEntry> chunk, bool last, const Error* error) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  for (const ScanEntry& e : chunk) {
    if (Selected(e.name, true)) Consider(e.name, e.st, true);
  }
  if (last) {
    scanning_ = false;
    if (error != nullptr) {
      LogError("scan.failed", {{"queue", q_.name}, {"err", error->what}});
    } else {
      if (forget_on_leave_) runner_->SweepMarkers();  // kept files that left unwatched
      runner_->SweepProcessing();                     // files of jobs that will not run again
      // Names turned away that this whole scan did not find are gone.
      std::erase_if(turned_away_, [this](const auto& e) { return e.second.scan != scan_gen_; });
    }
    LogInfo("scan.done", {{"queue", q_.name}});
    return;  // the finished scanner is replaced by the next Rescan()
  }
  scan_paused_ = true;
  Tick();
}

void QueueWatcher::Tick() {
  DROPQ_DCHECK(loop_->OnLoopThread());
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
  return out;
}

std::map<std::string, uint64_t> QueueWatcher::TurnedAwayByReason() const {
  std::map<std::string, uint64_t> by = counters_.skipped_by;
  by["excluded"] = counters_.excluded;
  return by;
}

}  // namespace dropq
