#include "workers/processing.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>

#include "common/file_kind.h"
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

Entered Fail(RunResult r, std::string error) {
  Entered e;
  e.result = r;
  e.error = std::move(error);
  return e;
}

std::string ErrnoText(const std::string& what, int err) { return what + ": " + std::strerror(err); }

// Puts `path` back into `watch_dir` as `name`, or "<name>.<job id>" if that
// is taken. Returns 0 or an errno value.
int MoveBack(const std::string& path, const std::string& watch_dir, const std::string& name,
             const std::string& job_id, std::string* where) {
  Disposition back;
  back.kind = Disposition::Kind::kMoveTo;
  back.dir = watch_dir;
  *where = MoveTarget(back, name);
  int err = RenameNoReplace(path, *where);
  if (err == EEXIST) {
    *where = MoveFallbackTarget(back, name, job_id);
    err = RenameNoReplace(path, *where);
  }
  return err;
}

}  // namespace

std::string ProcessingArea(const std::string& processing_dir, const std::string& queue) {
  return processing_dir.empty() ? std::string() : processing_dir + "/" + queue;
}

std::string JobDir(const std::string& processing_dir, const std::string& job_id) {
  return processing_dir + "/" + job_id;
}

std::string WorkPath(const std::string& watch_dir, const std::string& processing_dir,
                     const std::string& job_id, const std::string& name) {
  if (!processing_dir.empty()) {
    std::string p = JobDir(processing_dir, job_id) + "/" + name;
    if (p.size() < PATH_MAX) return p;
  }
  return watch_dir + "/" + name;
}

Entered Enter(const std::string& watch_dir, const std::string& processing_dir, const Job& job,
              SpareDirs* spares) {
  const std::string dir = JobDir(processing_dir, job.id);
  Entered in;
  in.path = WorkPath(watch_dir, processing_dir, job.id, job.name);
  if (in.path == watch_dir + "/" + job.name) {
    if (::lstat(in.path.c_str(), &in.st) != 0) {
      const int err = errno;
      return Fail(err == ENOENT ? RunResult::kVanished : RunResult::kError,
                  ErrnoText("lstat", err));
    }
    if (!S_ISREG(in.st.st_mode) || (job.ident.ino != 0 && in.st.st_ino != job.ident.ino)) {
      return Fail(RunResult::kReplaced,
                  "replaced before it ran (now: " + std::string(FileKindName(in.st.st_mode)) + ")");
    }
    return in;
  }

  // Whatever came in that is not the job's file (swapped in between the
  // check and the rename) goes back out, untouched, and is seen there again
  // as what it is.
  const auto put_back = [&]() -> Entered {
    std::string where;
    if (int back = MoveBack(in.path, watch_dir, job.name, job.id, &where); back != 0) {
      return Fail(RunResult::kError, ErrnoText("put back " + in.path, back));
    }
    ::rmdir(dir.c_str());
    return Fail(RunResult::kReplaced, "replaced by another file (" +
                                          std::string(FileKindName(in.st.st_mode)) +
                                          ") before it ran; put back as " + where);
  };
  const auto is_the_file = [&] {
    return S_ISREG(in.st.st_mode) && (job.ident.ino == 0 || in.st.st_ino == job.ident.ino);
  };

  // An earlier attempt of this job (a crash, a retry) left the file here.
  if (::lstat(in.path.c_str(), &in.st) == 0) return is_the_file() ? in : put_back();

  const std::string src = watch_dir + "/" + job.name;
  struct stat st;
  if (::lstat(src.c_str(), &st) != 0) {
    const int err = errno;
    return Fail(err == ENOENT ? RunResult::kVanished : RunResult::kError, ErrnoText("lstat", err));
  }
  if (!S_ISREG(st.st_mode) || (job.ident.ino != 0 && st.st_ino != job.ident.ino)) {
    // Another file, or a symlink, FIFO..., took the name before the run. A
    // regular file has a job of its own (ENQUEUE makes one for a new inode);
    // anything else is skipped when it is seen. This job's file is gone.
    return Fail(RunResult::kReplaced,
                "replaced before it ran (now: " + std::string(FileKindName(st.st_mode)) + ")");
  }

  int err = spares != nullptr && spares->Take(dir) ? 0 : MakeDir(dir);
  if (err == ENOENT) {
    // The area itself is missing (the watched directory was removed and
    // made again): make it, and processing_dir above it if need be.
    err = MakeDir(processing_dir);
    if (err == ENOENT) {
      err = MakeDir(processing_dir.substr(0, processing_dir.rfind('/')));
      if (err == 0) err = MakeDir(processing_dir);
    }
    if (err == 0) err = MakeDir(dir);
  }
  if (err != 0) return Fail(RunResult::kError, ErrnoText("mkdir " + dir, err));

  err = RenameNoReplace(src, in.path);
  if (err != 0) {
    ::rmdir(dir.c_str());
    if (err == ENOENT) return Fail(RunResult::kVanished, ErrnoText("rename", err));
    if (err == EXDEV) {
      return Fail(RunResult::kError, "processing_dir " + processing_dir +
                                         " is on another filesystem than " + watch_dir);
    }
    return Fail(RunResult::kError, ErrnoText("rename into " + dir, err));
  }

  if (::lstat(in.path.c_str(), &in.st) != 0) {
    return Fail(RunResult::kError, ErrnoText("lstat " + in.path, errno));
  }
  return is_the_file() ? in : put_back();
}

Result<std::vector<std::string>> PutBack(const std::string& job_dir, const std::string& watch_dir,
                                         const std::string& job_id) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(job_dir.c_str()), ::closedir);
  if (!d) {
    if (errno == ENOENT) return std::vector<std::string>();  // its job just finished
    return IoError("opendir " + job_dir, errno);
  }
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  d.reset();
  std::vector<std::string> moved;
  for (const std::string& n : names) {
    std::string where;
    if (int err = MoveBack(job_dir + "/" + n, watch_dir, n, job_id, &where); err != 0) {
      return IoError("put back " + job_dir + "/" + n, err);
    }
    moved.push_back(std::move(where));
  }
  ::rmdir(job_dir.c_str());
  return moved;
}

void RemoveJobDir(const std::string& processing_dir, const std::string& job_id, SpareDirs* spares) {
  const std::string dir = JobDir(processing_dir, job_id);
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
  if (dir.empty()) return OkStatus();
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
