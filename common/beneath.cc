#include "common/beneath.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace dropq {
namespace {

constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;

// -1 with errno ENOSYS where the kernel (or a seccomp filter) lacks openat2.
int OpenAt2(int dirfd, const std::string& path) {
#ifdef SYS_openat2
  struct open_how how {};
  how.flags = kDirFlags;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how));
#else
  errno = ENOSYS;
  return -1;
#endif
}

// One component `c` of a relative path, below `dirfd`, never following a
// symlink; "." and ".." are refused (a job name never holds them).
int OpenComponent(int dirfd, std::string_view c) {
  if (c.empty() || c == "." || c == "..") {
    errno = EINVAL;
    return -1;
  }
  return ::openat(dirfd, std::string(c).c_str(), kDirFlags | O_NOFOLLOW);
}

template <typename F>
void ForEachComponent(std::string_view rel, F f) {
  for (size_t at = 0; at <= rel.size();) {
    const size_t slash = rel.find('/', at);
    const size_t end = slash == std::string_view::npos ? rel.size() : slash;
    if (!f(rel.substr(at, end - at))) return;
    at = end + 1;
  }
}

Error Failed(const std::string& what, std::string_view rel, int err, int* errno_out) {
  if (errno_out != nullptr) *errno_out = err;
  if (err == ELOOP || err == ENOTDIR) {
    // O_NOFOLLOW | O_DIRECTORY on a symlink fails with either.
    return Error{Errc::kIo, what + " " + std::string(rel) +
                                ": a component is a symlink or not a directory (never followed)"};
  }
  return IoError(what + " " + std::string(rel), err);
}

}  // namespace

std::string ProcPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

std::string ProcPath(int fd, std::string_view name) {
  std::string p = ProcPath(fd);
  p += '/';
  p += name;
  return p;
}

std::pair<std::string_view, std::string_view> SplitParent(std::string_view relpath) {
  const size_t slash = relpath.rfind('/');
  if (slash == std::string_view::npos) return {std::string_view(), relpath};
  return {relpath.substr(0, slash), relpath.substr(slash + 1)};
}

Result<UniqueFd> OpenDirBeneathFd(int root_fd, std::string_view reldir, int* errno_out) {
  if (reldir.empty()) {
    UniqueFd fd(::openat(root_fd, ".", kDirFlags));
    if (!fd.valid()) return Failed("open", ".", errno, errno_out);
    return fd;
  }
  const std::string rel(reldir);
  UniqueFd fd(OpenAt2(root_fd, rel));
  if (fd.valid()) return fd;
  if (errno != ENOSYS && errno != EPERM) return Failed("open beneath", reldir, errno, errno_out);
  // No openat2: one component at a time.
  UniqueFd at(::openat(root_fd, ".", kDirFlags));
  int err = at.valid() ? 0 : errno;
  ForEachComponent(reldir, [&](std::string_view c) {
    if (err != 0) return false;
    UniqueFd next(OpenComponent(at.get(), c));
    if (!next.valid()) {
      err = errno;
      return false;
    }
    at = std::move(next);
    return true;
  });
  if (err != 0) return Failed("open beneath", reldir, err, errno_out);
  return at;
}

Result<UniqueFd> OpenDirBeneath(const std::string& root, std::string_view reldir, int* errno_out) {
  UniqueFd r(::open(root.c_str(), kDirFlags));
  if (!r.valid()) return Failed("open", root, errno, errno_out);
  if (reldir.empty()) return r;
  return OpenDirBeneathFd(r.get(), reldir, errno_out);
}

Result<UniqueFd> MakeDirsBeneath(const std::string& root, std::string_view reldir,
                                 const std::string& mode_root) {
  UniqueFd at(::open(root.c_str(), kDirFlags));
  if (!at.valid()) return Failed("open", root, errno, nullptr);
  UniqueFd modes;  // the directory of the same relative path below mode_root, while there is one
  if (!mode_root.empty()) modes.Reset(::open(mode_root.c_str(), kDirFlags));
  mode_t mode = 0755;
  struct stat st;
  if (modes.valid() && ::fstat(modes.get(), &st) == 0) mode = st.st_mode & 07777;
  int err = 0;
  ForEachComponent(reldir, [&](std::string_view c) {
    if (c.empty() && reldir.empty()) return false;
    if (modes.valid()) {
      modes.Reset(OpenComponent(modes.get(), c));
      if (modes.valid() && ::fstat(modes.get(), &st) == 0) mode = st.st_mode & 07777;
    }
    UniqueFd next(OpenComponent(at.get(), c));
    if (!next.valid() && errno == ENOENT) {
      // mkdirat() never follows a symlink in its last component: a symlink
      // there makes it fail with EEXIST, and the open below with ELOOP.
      if (::mkdirat(at.get(), std::string(c).c_str(), mode & 0777) != 0 && errno != EEXIST) {
        err = errno;
        return false;
      }
      next.Reset(OpenComponent(at.get(), c));
      // The umask may have narrowed it; setgid and sticky bits need a chmod.
      if (next.valid()) (void)::fchmod(next.get(), mode);
    }
    if (!next.valid()) {
      err = errno;
      return false;
    }
    at = std::move(next);
    return true;
  });
  if (err != 0) return Failed("mkdir beneath " + root, reldir, err, nullptr);
  return at;
}

Result<BeneathPath> ResolveBeneath(const std::string& root, std::string_view relpath,
                                   bool make_parents, const std::string& mode_root,
                                   int* errno_out) {
  const auto [reldir, name] = SplitParent(relpath);
  BeneathPath out;
  if (reldir.empty()) {
    out.path = root + "/" + std::string(name);
    return out;
  }
  Result<UniqueFd> dir = make_parents ? MakeDirsBeneath(root, reldir, mode_root)
                                      : OpenDirBeneath(root, reldir, errno_out);
  if (!dir.ok()) return dir.error();
  out.dir = std::move(*dir);
  out.path = ProcPath(out.dir.get(), name);
  return out;
}

}  // namespace dropq
