#include "common/rename.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "common/log.h"

namespace dropq {

int RenameNoReplace(const std::string& src, const std::string& dst, bool force_link) {
  if (!force_link) {
    if (::renameat2(AT_FDCWD, src.c_str(), AT_FDCWD, dst.c_str(), RENAME_NOREPLACE) == 0) return 0;
    const int err = errno;
    // EINVAL: this filesystem does not support the flag (NFS, some FUSE).
    // ENOSYS: a kernel without renameat2 (< 3.15).
    if (err != EINVAL && err != ENOSYS) return err;
    // A degraded mode, worth one line, not one per file.
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true)) {
      LogWarn("disposition.no_rename_noreplace",
              {{"path", dst}, {"errno", err}, {"using", "link"}});
    }
  }
  // link(2) never replaces an existing name either. Not atomic as a whole: a
  // crash between the two calls leaves the file under both names, which is
  // safe (nothing is lost) and what a re-run of the job would find.
  if (::link(src.c_str(), dst.c_str()) != 0) return errno;
  if (::unlink(src.c_str()) != 0 && errno != ENOENT) {
    const int err = errno;
    ::unlink(dst.c_str());  // undo: the file stays at `src` only
    return err;
  }
  return 0;
}

}  // namespace dropq
