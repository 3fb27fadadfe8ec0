#include "daemon/area_sweeper.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <random>

#include "common/check.h"
#include "common/job_id.h"
#include "common/log.h"
#include "daemon/pool_work.h"
#include "store/protocol.h"
#include "store/scripts.h"
#include "workers/processing.h"

namespace dropq {

AreaSweeper::AreaSweeper(Loop* loop, RedisConn* redis, const QueueKeys* keys, std::string queue,
                         std::string watch, std::string area, Hooks hooks)
    : loop_(loop),
      redis_(redis),
      keys_(keys),
      queue_(std::move(queue)),
      watch_(std::move(watch)),
      area_(std::move(area)),
      hooks_(std::move(hooks)),
      shared_(std::make_shared<Shared>(Shared{this})) {}

AreaSweeper::~AreaSweeper() { shared_->owner = nullptr; }

// ---------------------------------------------------------------- markers

void AreaSweeper::SweepMarkers() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (markers_ || !hooks_.may_run()) return;
  markers_ = true;
  MarkersPage("0");
}

void AreaSweeper::MarkersPage(std::string cursor) {
  redis_->Command(
      {"HSCAN", keys_->Files(), cursor, "COUNT", "512"}, [shared = shared_](Result<Reply> r) {
        AreaSweeper* self = shared->owner;
        if (self == nullptr) return;
        if (!r.ok() || r->is_error() || r->elements.size() != 2 || !self->hooks_.may_run()) {
          self->markers_ = false;
          return;
        }
        std::vector<std::string> kept;  // names whose marker says "handled and kept"
        const auto& kv = r->elements[1].elements;
        for (size_t i = 0; i + 1 < kv.size(); i += 2) {
          if (kv[i + 1].str.rfind('~', 0) == 0) kept.push_back(kv[i].str);
        }
        auto gone = std::make_shared<std::vector<std::string>>();
        const int rc = QueueWork(
            self->loop_->get(),
            [dir = self->watch_, kept = std::move(kept), gone] {  // threadpool
              struct stat st;
              for (const auto& n : kept) {
                if (lstat((dir + "/" + n).c_str(), &st) != 0 && errno == ENOENT) gone->push_back(n);
              }
            },
            [shared, gone, next = r->elements[0].AsString()] {  // loop
              AreaSweeper* me = shared->owner;
              if (me == nullptr) return;
              for (auto& name : *gone) me->hooks_.forget(name);
              if (next == "0" || !me->hooks_.may_run()) {
                me->markers_ = false;
              } else {
                me->MarkersPage(next);
              }
            });
        if (rc < 0) self->markers_ = false;
      });
}

// ---------------------------------------------------------------- processing area

void AreaSweeper::SweepProcessing() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (area_.empty() || processing_ || !hooks_.may_run()) return;
  processing_ = true;
  // 1. (threadpool) the jobs' entries in the processing area...
  auto entries = std::make_shared<std::vector<AreaEntry>>();
  const int rc = QueueWork(
      loop_->get(),
      [dir = area_, entries] {
        std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
        if (!d) return;
        while (const dirent* e = readdir(d.get())) {
          if (auto entry = ParseAreaEntry(e->d_name)) entries->push_back(std::move(*entry));
        }
      },
      [shared = shared_, entries] {
        if (AreaSweeper* self = shared->owner) self->ProcessingStates(std::move(*entries));
      });
  if (rc < 0) processing_ = false;
}

void AreaSweeper::ProcessingStates(std::vector<AreaEntry> all) {
  // 2. ...of jobs the runner does not hold...
  std::vector<AreaEntry> entries;
  for (auto& e : all) {
    if (!hooks_.holds(e.job_id)) entries.push_back(std::move(e));
  }
  // Many live jobs (retries waiting, other instances' runs): look at a
  // random part of them, so that every sweep can reach any orphan.
  constexpr size_t kMaxPerSweep = 4096;
  if (entries.size() > kMaxPerSweep) {
    std::shuffle(entries.begin(), entries.end(), std::mt19937(std::random_device{}()));
    entries.resize(kMaxPerSweep);
  }
  if (entries.empty() || !hooks_.may_run() || !redis_->up()) {
    processing_ = false;
    return;
  }
  std::vector<std::string> args;
  args.reserve(entries.size());
  for (const auto& e : entries) args.push_back(e.job_id);
  redis_->Eval(StatesScript(), keys_->base(), args,
               [shared = shared_, entries = std::move(entries)](Result<Reply> r) {
                 AreaSweeper* self = shared->owner;
                 if (self == nullptr) return;
                 auto states = r.ok() ? DecodeStates(*r, entries.size())
                                      : Result<std::vector<std::string>>(r.error());
                 if (!states.ok()) {
                   LogWarn("processing.sweep_failed",
                           {{"queue", self->queue_}, {"err", states.error().what}});
                   self->processing_ = false;
                   return;
                 }
                 // 3. ...that will not run again (record gone, or ended) give their file
                 // back to the watched directory, where it is new.
                 std::vector<AreaEntry> orphans;
                 for (size_t i = 0; i < entries.size(); ++i) {
                   const std::string& st = (*states)[i];
                   if (!self->hooks_.holds(entries[i].job_id) &&
                       (st.empty() || st == "done" || st == "failed")) {
                     orphans.push_back(entries[i]);
                   }
                 }
                 self->PutBackOrphans(std::move(orphans));
               });
}

void AreaSweeper::PutBackOrphans(std::vector<AreaEntry> orphans) {
  struct PutBackResult {
    std::string id;
    Result<std::vector<std::string>> moved{std::vector<std::string>()};
  };
  auto results = std::make_shared<std::vector<PutBackResult>>();
  const int rc = QueueWork(
      loop_->get(),
      [area = area_, watch = watch_, orphans = std::move(orphans), results] {
        for (const auto& e : orphans) results->push_back({e.job_id, PutBack(area, e, watch)});
      },
      [shared = shared_, results] {
        AreaSweeper* self = shared->owner;
        // The files are back in the inbox either way; only the log lines
        // of a retired queue are lost.
        if (self == nullptr) return;
        self->processing_ = false;
        for (const auto& [id, moved] : *results) {
          if (!moved.ok()) {
            LogError("processing.put_back_failed",
                     {{"queue", self->queue_}, {"job", id}, {"err", moved.error().what}});
            continue;
          }
          for (const auto& path : *moved) {
            LogWarn("processing.put_back", {{"queue", self->queue_}, {"job", id}, {"path", path}});
          }
        }
      });
  if (rc < 0) processing_ = false;
}

}  // namespace dropq
