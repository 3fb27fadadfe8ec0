// Paths below a watched directory, resolved without ever leaving it. An
// uploader can replace any directory of an upload tree by a symlink (to
// /etc, to another queue's inbox) between two of dropq's steps; every path
// below the watched directory is therefore resolved from a descriptor of the
// tree's root, one component at a time, following no symlink in any
// component: openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) (Linux >= 5.6),
// or openat(O_NOFOLLOW | O_DIRECTORY) per component where openat2 is
// missing. The root itself is opened by its configured path: it belongs to
// the operator, who may reach it through a symlink.
//
// A descriptor found this way is used through ProcPath() ("/proc/self/fd/N/
// <name>"): the kernel resolves /proc/self/fd/N to the directory itself, so
// path-taking calls (rename, lstat, open, inotify_add_watch) act inside it
// whatever happened to its path since.
//
// Blocking (open, mkdir): call from a worker or the threadpool, except where
// a caller states otherwise. Thread: any (no shared state).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/result.h"
#include "common/unique_fd.h"

namespace dropq {

// Opens the directory `reldir` ("a/b"; "" for `root` itself) below `root`
// for reading. ELOOP (as Errc::kIo, errno in the text) if a component is a
// symlink, ENOTDIR if one is not a directory, ENOENT if one is missing;
// `errno_out` (optional) receives the errno value.
Result<UniqueFd> OpenDirBeneath(const std::string& root, std::string_view reldir,
                                int* errno_out = nullptr);

// Like OpenDirBeneath(), from an open directory descriptor `root_fd`.
Result<UniqueFd> OpenDirBeneathFd(int root_fd, std::string_view reldir, int* errno_out = nullptr);

// Opens `reldir` below `root`, making each missing component with mkdirat()
// beneath its parent's descriptor. A component made gets the permission bits
// of the directory of the same relative path below `mode_root` when there is
// one (so that per-user folders stay as private as they were), else those of
// `mode_root` itself, else 0755; `mode_root` "" means 0755 throughout.
Result<UniqueFd> MakeDirsBeneath(const std::string& root, std::string_view reldir,
                                 const std::string& mode_root);

// "/proc/self/fd/<fd>/<name>": `name` inside the directory open as `fd`.
std::string ProcPath(int fd, std::string_view name);
// "/proc/self/fd/<fd>": the directory open as `fd` itself.
std::string ProcPath(int fd);

// Splits a relative path at its last '/': ("a/b", "c") for "a/b/c", ("",
// "c") for "c".
std::pair<std::string_view, std::string_view> SplitParent(std::string_view relpath);

// A file named by its relative path below a root: `dir` is its directory,
// opened beneath the root, and `path` the file through it (ProcPath()). For
// a file directly in the root, `dir` is empty and `path` is "<root>/<name>":
// nothing below the root can be swapped there.
struct BeneathPath {
  UniqueFd dir;
  std::string path;
};

// The BeneathPath of `relpath` below `root`: its parent opened with
// OpenDirBeneath() (or with MakeDirsBeneath() when `make_parents`, modes as
// there from `mode_root`).
Result<BeneathPath> ResolveBeneath(const std::string& root, std::string_view relpath,
                                   bool make_parents = false, const std::string& mode_root = "",
                                   int* errno_out = nullptr);

}  // namespace dropq
