#include "workers/disposition.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_NOREPLACE (glibc >= 2.28, _GNU_SOURCE)
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "common/beneath.h"
#include "common/log.h"
#include "common/placeholders.h"
#include "common/unique_fd.h"

namespace dropq {
namespace {

constexpr std::size_t kCopyChunk = std::size_t{64} * 1024;

Error Vanished(const std::string& src) { return Error{Errc::kVanished, "file vanished: " + src}; }

// Turns a failed operation on `src` into an Error: kVanished if `src` is
// gone (ENOENT may also mean a missing target directory, so look), else kIo.
Error FailedOn(const std::string& what, const std::string& src, int err) {
  struct stat st;
  if (err == ENOENT && ::lstat(src.c_str(), &st) != 0 && errno == ENOENT) return Vanished(src);
  return IoError(what, err);
}

// Writes all of `n` bytes at `p` to `fd`. Returns 0 or an errno value.
int WriteAll(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return 0;
}

// Copies what `in` holds to `out`. Returns 0 or an errno value.
int CopyData(int in, int out) {
  std::vector<char> buf(kCopyChunk);
  while (true) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (int err = WriteAll(out, buf.data(), static_cast<std::size_t>(n))) return err;
  }
}

// Unlinks a path on scope exit unless Disarm()ed: the temporary copy.
class UnlinkGuard {
 public:
  explicit UnlinkGuard(std::string path) : path_(std::move(path)) {}
  ~UnlinkGuard() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  UnlinkGuard(const UnlinkGuard&) = delete;
  UnlinkGuard& operator=(const UnlinkGuard&) = delete;
  void Disarm() { path_.clear(); }

 private:
  std::string path_;
};

// fsync(2)s the directory `dir`, making the names created in it durable.
Status SyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return IoError("open " + dir, errno);
  // EINVAL: a filesystem that cannot sync a directory; nothing more to do there.
  if (::fsync(fd.get()) != 0 && errno != EINVAL) return IoError("fsync " + dir, errno);
  return OkStatus();
}

Result<std::string> Move(const Disposition& d, const std::string& src, const std::string& name,
                         const std::string& job_id, const std::string& mode_root);

// Move() of a file whose name holds directories ("alice/2026/a.pdf"): they
// are made beneath d.dir where missing (common/beneath.h: never through a
// symlink; modes from the same directories below `mode_root`), and the file
// goes into the last of them through its descriptor.
Result<std::string> MoveIntoTree(const Disposition& d, const std::string& src,
                                 const std::string& relpath, const std::string& job_id,
                                 const std::string& mode_root) {
  const auto [reldir, leaf] = SplitParent(relpath);
  Result<UniqueFd> dir = MakeDirsBeneath(d.dir, reldir, mode_root);
  if (!dir.ok()) return dir.error();
  Disposition sub = d;
  sub.dir = ProcPath(dir->get());
  Result<std::string> r = Move(sub, src, std::string(leaf), job_id, "");
  if (!r.ok()) return r;
  return d.dir + "/" + std::string(reldir) + r->substr(sub.dir.size());
}

Result<std::string> Move(const Disposition& d, const std::string& src, const std::string& name,
                         const std::string& job_id, const std::string& mode_root) {
  if (name.find('/') != std::string::npos) return MoveIntoTree(d, src, name, job_id, mode_root);
  const std::string primary = MoveTarget(d, name);
  int err = RenameNoReplace(src, primary);
  if (err == 0) return primary;
  if (err == EXDEV) return CopyIntoPlace(d, src, name, job_id);  // `name` holds no '/' here
  if (err != EEXIST) return FailedOn("move " + src + " -> " + primary, src, err);

  const std::string fallback = MoveFallbackTarget(d, name, job_id);
  err = RenameNoReplace(src, fallback);
  if (err == 0) return fallback;
  if (err == EEXIST) {
    return Error{Errc::kIo, "move " + src + ": " + primary + " and " + fallback + " both exist"};
  }
  return FailedOn("move " + src + " -> " + fallback, src, err);
}

}  // namespace

std::string MoveTarget(const Disposition& d, const std::string& name) { return d.dir + "/" + name; }

std::string MoveFallbackTarget(const Disposition& d, const std::string& relpath,
                               const std::string& job_id) {
  const auto [reldir, name] = SplitParent(relpath);
  const std::string dir = reldir.empty() ? d.dir : d.dir + "/" + std::string(reldir);
  std::string_view stem, ext;
  SplitName(name, &stem, &ext);
  // The job id must fit in NAME_MAX too: a long stem is shortened (at a
  // UTF-8 character boundary), never the id or the extension.
  const size_t extra = job_id.size() + 1 + (ext.empty() ? 0 : ext.size() + 1);
  if (stem.size() + extra > NAME_MAX) {
    size_t keep = extra < NAME_MAX ? NAME_MAX - extra : 1;
    while (keep > 1 && (static_cast<unsigned char>(stem[keep]) & 0xC0) == 0x80) --keep;
    stem = stem.substr(0, keep);
  }
  if (ext.empty()) return dir + "/" + std::string(stem) + "." + job_id;
  std::string out = dir + "/";
  out.append(stem);
  out += ".";
  out += job_id;
  out += ".";
  out.append(ext);
  return out;
}

Result<std::string> CopyIntoPlace(const Disposition& d, const std::string& src,
                                  const std::string& name, const std::string& job_id) {
  UniqueFd in(::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!in.valid()) {
    const int err = errno;
    if (err == ENOENT) return Vanished(src);
    return IoError("open " + src, err);
  }
  struct stat st;
  if (::fstat(in.get(), &st) != 0) return IoError("fstat " + src, errno);
  if (!S_ISREG(st.st_mode)) return Error{Errc::kIo, "copy " + src + ": not a regular file"};

  // The name is the job's own: a leftover is from an earlier attempt of this
  // very job that died mid-copy, never another job's work.
  const std::string tmp = d.dir + "/.dropq-tmp-" + job_id;
  ::unlink(tmp.c_str());
  UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out.valid()) return IoError("create " + tmp, errno);
  UnlinkGuard remove_tmp(tmp);

  if (int err = CopyData(in.get(), out.get())) return IoError("copy " + src + " -> " + tmp, err);
  // Best effort, as mv(1): only root may give the copy another owner. Before
  // fchmod, since a chown clears set-id bits.
  if (::fchown(out.get(), st.st_uid, st.st_gid) != 0) {
    // not permitted: the copy stays ours
  }
  if (::fchmod(out.get(), st.st_mode & 07777) != 0) return IoError("fchmod " + tmp, errno);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::futimens(out.get(), times) != 0) return IoError("futimens " + tmp, errno);
  if (::fsync(out.get()) != 0) return IoError("fsync " + tmp, errno);
  if (::close(out.Release()) != 0) return IoError("close " + tmp, errno);

  std::string dst = MoveTarget(d, name);
  int err = RenameNoReplace(tmp, dst);
  if (err == EEXIST) {
    const std::string fallback = MoveFallbackTarget(d, name, job_id);
    err = RenameNoReplace(tmp, fallback);
    if (err == EEXIST) {
      return Error{Errc::kIo, "move " + src + ": " + dst + " and " + fallback + " both exist"};
    }
    dst = fallback;
  }
  if (err != 0) return IoError("move " + tmp + " -> " + dst, err);
  remove_tmp.Disarm();

  // The new name is made durable before the old one goes: a crash in between
  // leaves two copies, never none.
  if (Status s = SyncDir(d.dir); !s.ok()) {
    ::unlink(dst.c_str());
    return s.error();
  }
  if (::unlink(src.c_str()) != 0 && errno != ENOENT) {
    // Keep the file in one place only: `src`, where a retry will find it.
    const int uerr = errno;
    ::unlink(dst.c_str());
    return IoError("unlink " + src, uerr);
  }
  return dst;
}

namespace {

// Recovery: where an earlier try of this job's disposition already put the
// file, if it did. `src_st` is the source's lstat, or null if it is gone.
std::optional<std::string> AlreadyPlaced(const Disposition& d, const std::string& name,
                                         const std::string& job_id, const DisposeOptions& opt,
                                         const struct stat* src_st) {
  Disposition where = d;
  if (d.kind == Disposition::Kind::kKeep) {
    if (opt.keep_dir.empty()) return std::nullopt;
    where.kind = Disposition::Kind::kMoveTo;
    where.dir = opt.keep_dir;
  }
  if (where.kind != Disposition::Kind::kMoveTo) return std::nullopt;
  for (const std::string& t : {MoveTarget(where, name), MoveFallbackTarget(where, name, job_id)}) {
    struct stat st;
    if (::lstat(t.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (src_st != nullptr && st.st_dev == src_st->st_dev) {
      // Same filesystem: only the very inode counts (a link(2) that was not
      // followed by its unlink(2)).
      if (st.st_ino == src_st->st_ino) return t;
      continue;
    }
    const bool same_ino = opt.ident.ino != 0 && st.st_ino == opt.ident.ino;
    const bool same_copy = opt.ident.ino != 0 &&
                           static_cast<uint64_t>(st.st_size) == opt.ident.size &&
                           FileIdentity::FromStat(st).mtime_ns == opt.ident.mtime_ns;
    if (same_ino || same_copy) return t;
  }
  return std::nullopt;
}

}  // namespace

Result<std::string> Dispose(const Disposition& d, const std::string& src, const std::string& name,
                            const std::string& job_id, const DisposeOptions& opt) {
  struct stat st;
  const bool present = ::lstat(src.c_str(), &st) == 0;
  const int lstat_err = present ? 0 : errno;
  if (opt.recovering) {
    if (auto t = AlreadyPlaced(d, name, job_id, opt, present ? &st : nullptr)) {
      // The move finished before the crash, or stopped after the file reached
      // its target: what is left to do is drop the source.
      if (present && ::unlink(src.c_str()) != 0 && errno != ENOENT) {
        return IoError("unlink " + src, errno);
      }
      return *t;
    }
    if (!present && lstat_err == ENOENT && d.kind == Disposition::Kind::kDelete) {
      return std::string();  // deleted before the crash
    }
  }
  if (!present) {
    if (lstat_err == ENOENT) return Vanished(src);
    return IoError("stat " + src, lstat_err);
  }
  if (opt.ident.ino != 0 && st.st_ino != opt.ident.ino) {
    // Only possible where the file was processed in place (no processing
    // area): a narrow window remains between this check and the rename.
    return Error{Errc::kVanished, src + ": replaced by another file during the run"};
  }
  switch (d.kind) {
    case Disposition::Kind::kKeep: {
      if (opt.keep_dir.empty()) return src;
      Disposition back = d;
      back.kind = Disposition::Kind::kMoveTo;
      back.dir = opt.keep_dir;
      return Move(back, src, name, job_id, opt.mode_root);
    }
    case Disposition::Kind::kDelete:
      if (::unlink(src.c_str()) != 0) {
        const int err = errno;
        if (err == ENOENT) return Vanished(src);
        return IoError("unlink " + src, err);
      }
      return std::string();
    case Disposition::Kind::kMoveTo:
      return Move(d, src, name, job_id, opt.mode_root);
  }
  return Error{Errc::kInvalid, "unknown disposition"};
}

}  // namespace dropq
