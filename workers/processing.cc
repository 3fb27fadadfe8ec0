#include "workers/processing.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>

#include "common/beneath.h"
#include "common/file_kind.h"
#include "common/job_id.h"
#include "common/log.h"
#include "workers/disposition.h"

namespace dropq {
namespace {

// mkdir(2) that accepts an existing directory (not a symlink to one).
int MakeDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return 0;
  const int err = errno;
  if (err != EEXIST) return err;
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

// Makes the area and, if missing, processing_dir above it. Returns 0 or an
// errno value.
int MakeArea(const std::string& area) {
  int err = MakeDir(area);
  if (err == ENOENT) {
    err = MakeDir(area.substr(0, area.rfind('/')));
    if (err == 0) err = MakeDir(area);
  }
  return err;
}

Entered Fail(RunResult r, std::string error) {
  Entered e;
  e.result = r;
  e.error = std::move(error);
  return e;
}

std::string ErrnoText(const std::string& what, int err) { return what + ": " + std::strerror(err); }

// Puts `path` back into `watch_dir` as `name` (a path relative to it: its
// directories are made again beneath it if they went), or "<name>.<job id>"
// if that is taken. `where` gets the path it took. Returns 0 or an errno value.
int MoveBack(const std::string& path, const std::string& watch_dir, const std::string& name,
             const std::string& job_id, std::string* where) {
  const auto [reldir, leaf] = SplitParent(name);
  int err = 0;
  Result<BeneathPath> to = ResolveBeneath(watch_dir, name, /*make_parents=*/true, watch_dir, &err);
  if (!to.ok()) return err != 0 ? err : ELOOP;  // a directory of the path is a symlink...
  Disposition back;
  back.kind = Disposition::Kind::kMoveTo;
  back.dir = to->dir.valid() ? ProcPath(to->dir.get()) : watch_dir;
  const std::string shown = reldir.empty() ? watch_dir : watch_dir + "/" + std::string(reldir);
  const std::string leaf_s(leaf);
  *where = shown + "/" + leaf_s;
  err = RenameNoReplace(path, MoveTarget(back, leaf_s));
  if (err == EEXIST) {
    const std::string fallback = MoveFallbackTarget(back, leaf_s, job_id);
    *where = shown + fallback.substr(back.dir.size());
    err = RenameNoReplace(path, fallback);
  }
  return err;
}

// The last component of a job's name: what its file is called in the area.
std::string Leaf(const std::string& name) { return std::string(SplitParent(name).second); }

std::string FlatPath(const std::string& area, const std::string& job_id, const std::string& name) {
  return area + "/" + job_id + "." + name;
}

// Where an earlier attempt of a job may have left its file in the area:
// `layout`'s own path first, then the other area layout's.
std::vector<std::string> AreaPaths(AreaLayout layout, const std::string& area,
                                   const std::string& job_id, const std::string& relpath) {
  const std::string name = Leaf(relpath);
  std::vector<std::string> paths;
  if (job_id.size() + 1 + name.size() <= NAME_MAX) paths.push_back(FlatPath(area, job_id, name));
  paths.push_back(JobDir(area, job_id) + "/" + name);
  if (layout == AreaLayout::kJobDirs && paths.size() == 2) std::swap(paths[0], paths[1]);
  return paths;
}

// Takes a job directory from `spares` or makes it; makes the area (and
// processing_dir above it) too if it is missing (the watched directory was
// removed and made again). Returns 0 or an errno value.
int MakeJobDir(const std::string& area, const std::string& dir, SpareDirs* spares) {
  if (spares != nullptr && spares->Take(dir)) return 0;
  int err = MakeDir(dir);
  if (err == ENOENT) {
    err = MakeArea(area);
    if (err == 0) err = MakeDir(dir);
  }
  return err;
}

// Checks the file at `path` is the regular file `job` was made for: by
// lstat(), or with `open` by fstat() of a descriptor kept in `in`.
RunResult Check(const std::string& path, const Job& job, bool open, Entered* in) {
  if (open) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    // O_NOFOLLOW: a symlink could point anywhere, /dev/zero included.
    in->fd.Reset(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!in->fd.valid()) {
      const int err = errno;
      if (err == ENOENT) return RunResult::kVanished;
      if (err == ELOOP) {
        in->st.st_mode = S_IFLNK;
        return RunResult::kReplaced;
      }
      in->error = ErrnoText("open " + path, err);
      // Its identity, for the outcome: a kept file that cannot be read is
      // not taken up again by every rescan.
      if (::lstat(path.c_str(), &in->st) != 0) in->st = {};
      return RunResult::kError;
    }
    if (::fstat(in->fd.get(), &in->st) != 0) {
      in->error = ErrnoText("fstat " + path, errno);
      in->fd.Reset();
      return RunResult::kError;
    }
  } else if (::lstat(path.c_str(), &in->st) != 0) {
    const int err = errno;
    if (err == ENOENT) return RunResult::kVanished;
    in->error = ErrnoText("lstat " + path, err);
    return RunResult::kError;
  }
  if (!S_ISREG(in->st.st_mode) || (job.ident.ino != 0 && in->st.st_ino != job.ident.ino)) {
    in->fd.Reset();
    return RunResult::kReplaced;
  }
  return RunResult::kOk;
}

// The check of a file in the area, at `in.path`. Whatever came in that is
// not the job's file (swapped in between the check and the rename) goes
// back out, untouched, and is seen there again as what it is.
Entered CheckEntered(const std::string& watch, const std::string& area, const Job& job, bool open,
                     Entered in) {
  const RunResult r = Check(in.path, job, open, &in);
  if (r == RunResult::kOk) return in;
  if (r != RunResult::kReplaced) return Fail(r, std::move(in.error));
  std::string where;
  if (int back = MoveBack(in.path, watch, job.name, job.id, &where); back != 0) {
    return Fail(RunResult::kError, ErrnoText("put back " + in.path, back));
  }
  if (InJobDir(area, job.id, in.path)) ::rmdir(JobDir(area, job.id).c_str());
  return Fail(RunResult::kReplaced, "replaced by another file (" +
                                        std::string(FileKindName(in.st.st_mode)) +
                                        ") before it ran; put back as " + where);
}

}  // namespace

AreaLayout LayoutOf(const QueueConfig& q) {
  if (q.processing_dir.empty()) return AreaLayout::kInPlace;
  // A program opens {path} by name: a directory of its own per job.
  if (q.handler.kind == HandlerConfig::Kind::kExec ||
      q.handler.kind == HandlerConfig::Kind::kServe) {
    return AreaLayout::kJobDirs;
  }
  const bool keeps = q.on_success.kind == Disposition::Kind::kKeep &&
                     q.on_failure.kind == Disposition::Kind::kKeep;
  return q.processing_auto && keeps ? AreaLayout::kInPlace : AreaLayout::kFlat;
}

std::string AreaInUse(const QueueConfig& q) {
  const std::string area = ProcessingArea(q.processing_dir, q.name);
  if (area.empty() || LayoutOf(q) != AreaLayout::kInPlace) return area;
  for (const std::string& dir : {q.processing_dir, area}) {
    struct stat st;
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
        (st.st_mode & 0022) != 0) {
      return std::string();
    }
  }
  return area;
}

std::string ProcessingArea(const std::string& processing_dir, const std::string& queue) {
  return processing_dir.empty() ? std::string() : processing_dir + "/" + queue;
}

std::string JobDir(const std::string& area, const std::string& job_id) {
  return area + "/" + job_id;
}

bool InJobDir(const std::string& area, const std::string& job_id, const std::string& path) {
  return !area.empty() && path.size() > area.size() + 1 + job_id.size() + 1 &&
         path.compare(0, area.size(), area) == 0 && path[area.size()] == '/' &&
         path.compare(area.size() + 1, job_id.size(), job_id) == 0 &&
         path[area.size() + 1 + job_id.size()] == '/';
}

std::string WorkPath(AreaLayout layout, const std::string& watch, const std::string& area,
                     const std::string& job_id, const std::string& relpath) {
  if (layout != AreaLayout::kInPlace && !area.empty()) {
    const std::string name = Leaf(relpath);
    std::string p;
    if (layout == AreaLayout::kFlat && job_id.size() + 1 + name.size() <= NAME_MAX) {
      p = FlatPath(area, job_id, name);
    } else {
      p = JobDir(area, job_id) + "/" + name;
    }
    if (p.size() < PATH_MAX) return p;
  }
  return watch + "/" + relpath;
}

Entered Enter(AreaLayout layout, const std::string& watch, const std::string& area, const Job& job,
              bool open, SpareDirs* spares) {
  const std::string logical = watch + "/" + job.name;
  const std::string dst = WorkPath(layout, watch, area, job.id, job.name);
  Entered in;
  in.path = dst;
  RunResult found;
  // A file below a subdirectory is reached through that directory's
  // descriptor, opened beneath `watch`: a directory swapped for a symlink
  // since the file was seen leads nowhere (common/beneath.h).
  int beneath_err = 0;
  Result<BeneathPath> at = ResolveBeneath(watch, job.name, false, "", &beneath_err);
  if (!at.ok()) {
    if (beneath_err != ENOENT && beneath_err != ELOOP && beneath_err != ENOTDIR) {
      return Fail(RunResult::kError, at.error().what);  // EACCES, EMFILE...: tried again
    }
    // Gone, or a directory on its path replaced by a symlink or a file.
    found = beneath_err == ENOENT ? RunResult::kVanished : RunResult::kReplaced;
    in.st.st_mode = S_IFLNK;
  } else if (dst == logical) {
    found = Check(at->path, job, open, &in);
    if (found == RunResult::kOk) return in;  // in.path: the logical path, for the handler
  } else {
    const std::string& src = at->path;
    // The usual case first: the file is in the watched directory.
    found = Check(src, job, /*open=*/false, &in);
    if (found == RunResult::kOk) {
      const std::string dir = InJobDir(area, job.id, dst) ? JobDir(area, job.id) : std::string();
      if (!dir.empty()) {
        if (int err = MakeJobDir(area, dir, spares); err != 0) {
          return Fail(RunResult::kError, ErrnoText("mkdir " + dir, err));
        }
      }
      int err = RenameNoReplace(src, dst);
      if (err == ENOENT && dir.empty() && MakeArea(area) == 0) {
        // The area itself was missing (the watched directory was removed
        // and made again): made now.
        err = RenameNoReplace(src, dst);
      }
      if (err == 0) return CheckEntered(watch, area, job, open, std::move(in));
      if (!dir.empty()) ::rmdir(dir.c_str());
      if (err == ENOENT) {
        found = RunResult::kVanished;
      } else if (err == EXDEV) {
        return Fail(RunResult::kError,
                    "the processing area " + area + " is on another filesystem than " + watch);
      } else if (err != EEXIST) {
        return Fail(RunResult::kError, ErrnoText("rename into " + area, err));
      }
      // EEXIST: an earlier attempt's file is in the way; looked for below.
    }
  }
  // Not in the watched directory (or another file is there now): an earlier
  // attempt of this job (a crash, a retry, another layout) may have left it
  // in the area.
  const mode_t there = in.st.st_mode;  // what is under the name now
  if (!area.empty()) {
    for (const std::string& p : AreaPaths(layout, area, job.id, job.name)) {
      if (::lstat(p.c_str(), &in.st) != 0) continue;
      in.path = p;
      return CheckEntered(watch, area, job, open, std::move(in));
    }
  }
  if (found == RunResult::kVanished) return Fail(found, "vanished before it ran");
  if (found == RunResult::kReplaced) {
    // Another file, or a symlink, FIFO..., took the name before the run. A
    // regular file has a job of its own (ENQUEUE makes one for a new inode);
    // anything else is skipped when it is seen. This job's file is gone.
    return Fail(RunResult::kReplaced,
                "replaced before it ran (now: " + std::string(FileKindName(there)) + ")");
  }
  if (found == RunResult::kOk) return Fail(RunResult::kVanished, "vanished before it ran");
  Entered e = Fail(found, std::move(in.error));
  e.st = in.st;  // what was found, if anything: the outcome's identity
  return e;
}

std::string LocateWork(AreaLayout layout, const std::string& watch, const std::string& area,
                       const std::string& job_id, const std::string& name) {
  struct stat st;
  if (!area.empty()) {
    for (const std::string& p : AreaPaths(layout, area, job_id, name)) {
      if (::lstat(p.c_str(), &st) == 0) return p;
    }
  }
  // Only a queue that works in place disposes from the watched directory:
  // elsewhere a file there now is a newer upload with a job of its own, and
  // a file gone from the area was disposed of before the crash.
  return WorkPath(layout, watch, area, job_id, name);
}

std::optional<AreaEntry> ParseAreaEntry(std::string_view n) {
  constexpr size_t kIdLen = 26;
  if (n.size() < kIdLen || !IsJobId(n.substr(0, kIdLen))) return std::nullopt;
  if (n.size() == kIdLen) return AreaEntry{std::string(n), ""};
  if (n[kIdLen] != '.' || n.size() == kIdLen + 1) return std::nullopt;
  return AreaEntry{std::string(n.substr(0, kIdLen)), std::string(n.substr(kIdLen + 1))};
}

Result<std::vector<std::string>> PutBack(const std::string& area, const AreaEntry& e,
                                         const std::string& watch) {
  std::vector<std::string> moved;
  if (!e.name.empty()) {
    std::string where;
    const std::string path = FlatPath(area, e.job_id, e.name);
    if (int err = MoveBack(path, watch, e.name, e.job_id, &where); err != 0) {
      if (err == ENOENT) return moved;  // its job just finished
      return IoError("put back " + path, err);
    }
    moved.push_back(std::move(where));
    return moved;
  }
  const std::string job_dir = JobDir(area, e.job_id);
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(job_dir.c_str()), ::closedir);
  if (!d) {
    if (errno == ENOENT) return moved;  // its job just finished
    return IoError("opendir " + job_dir, errno);
  }
  std::vector<std::string> names;
  while (const dirent* de = ::readdir(d.get())) {
    const std::string_view n = de->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  d.reset();
  for (const std::string& n : names) {
    std::string where;
    if (int err = MoveBack(job_dir + "/" + n, watch, n, e.job_id, &where); err != 0) {
      return IoError("put back " + job_dir + "/" + n, err);
    }
    moved.push_back(std::move(where));
  }
  ::rmdir(job_dir.c_str());
  return moved;
}

void RemoveJobDir(const std::string& area, const std::string& job_id, SpareDirs* spares) {
  const std::string dir = JobDir(area, job_id);
  if (spares != nullptr) {
    spares->Give(dir);
  } else {
    ::rmdir(dir.c_str());
  }
}

// Makes `dir` (mode 0700) if it is missing, and checks it is a directory of
// this user's that nobody else can write: whoever could write it could swap
// a file between its check and its handler.
namespace {

Status PrivateDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return IoError("processing_dir: mkdir " + dir, errno);
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return IoError("processing_dir: " + dir, errno);
  if (!S_ISDIR(st.st_mode)) {
    return Error{Errc::kInvalid, "processing_dir: " + dir + " is a " +
                                     std::string(FileKindName(st.st_mode)) + ", not a directory"};
  }
  if (st.st_uid != geteuid()) {
    return Error{Errc::kInvalid, "processing_dir: " + dir + " belongs to uid " +
                                     std::to_string(st.st_uid) + ", not to dropqd (uid " +
                                     std::to_string(geteuid()) + "): remove it or chown it"};
  }
  if ((st.st_mode & 0077) != 0 && chmod(dir.c_str(), 0700) != 0) {
    return IoError("processing_dir: chmod 700 " + dir, errno);
  }
  return OkStatus();
}

}  // namespace

Status PrepareProcessingArea(const QueueConfig& q) {
  const std::string& dir = q.processing_dir;
  if (LayoutOf(q) == AreaLayout::kInPlace) return OkStatus();
  if (Status s = PrivateDir(dir); !s.ok()) return s;
  if (Status s = PrivateDir(ProcessingArea(dir, q.name)); !s.ok()) return s;
  struct stat parent;
  const std::string up = dir.substr(0, dir.rfind('/'));
  if (stat(up.empty() ? "/" : up.c_str(), &parent) == 0 && (parent.st_mode & 0022) != 0 &&
      (parent.st_mode & S_ISVTX) == 0) {
    LogWarn("processing.unprotected",
            {{"queue", q.name},
             {"dir", dir},
             {"why", "others can write its parent, which lacks the sticky bit (chmod +t it)"}});
  }
  return OkStatus();
}

}  // namespace dropq
