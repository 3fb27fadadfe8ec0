#include "store/retry_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/beneath.h"
#include "common/escape.h"
#include "common/rename.h"
#include "store/job_record.h"

namespace dropq {

RetryFileSeen SeeRetryFile(const QueueConfig& q, const std::string& name,
                           const std::string& where) {
  struct stat st;
  if (lstat((q.watch + "/" + name).c_str(), &st) == 0) return RetryFileSeen::kHere;
  if (where.empty() || where == "(deleted)" || where.front() != '/') return RetryFileSeen::kGone;
  if (lstat(where.c_str(), &st) == 0) return RetryFileSeen::kHere;
  const std::string dir = where.substr(0, std::max<size_t>(where.rfind('/'), 1));
  if (access(dir.c_str(), X_OK) == 0) return RetryFileSeen::kGone;
  if (errno == ENOENT && q.on_failure.kind == Disposition::Kind::kMoveTo &&
      where.compare(0, q.on_failure.dir.size() + 1, q.on_failure.dir + "/") == 0 &&
      access(q.on_failure.dir.c_str(), X_OK) == 0) {
    return RetryFileSeen::kGone;
  }
  return RetryFileSeen::kElsewhere;
}

std::string MoveBackForRetry(const QueueConfig& q, const std::string& name,
                             const std::string& where) {
  const std::string& watch = q.watch;
  const std::string home = watch + "/" + name;
  struct stat st;
  if (std::string why; !ValidJobName(name, &why)) return "job record field `name`: " + why;
  if (!where.empty() && where != "(deleted)" && where.front() != '/') {
    return "job record field `disposed_to`: " + EscapeName(where) + " is not an absolute path";
  }
  const bool below_failed =
      q.on_failure.kind == Disposition::Kind::kMoveTo &&
      where.compare(0, q.on_failure.dir.size() + 1, q.on_failure.dir + "/") == 0 &&
      where.find("/../") == std::string::npos;
  if (!where.empty() && where != "(deleted)" && where != home && !below_failed) {
    return "job record field `disposed_to`: " + EscapeName(where) +
           " is not below the queue's failure directory (move it back by hand)";
  }
  if (where.empty() || where == "(deleted)" || where == home) {
    if (lstat(home.c_str(), &st) != 0) return "file not found at " + EscapeName(home);
    return "";
  }
  if (lstat(where.c_str(), &st) != 0) {
    if (lstat(home.c_str(), &st) != 0) return "file not found at " + EscapeName(where);
    return "";  // an earlier retry already moved it back
  }
  // Into the tree through the descriptors of its directories, made again
  // where they went (with the modes of the ones `where` sits in).
  const bool same_tail = where.size() > name.size() &&
                         where.compare(where.size() - name.size(), name.size(), name) == 0 &&
                         where[where.size() - name.size() - 1] == '/';
  const std::string mode_root =
      same_tail ? where.substr(0, where.size() - name.size() - 1) : std::string();
  Result<BeneathPath> to = ResolveBeneath(watch, name, /*make_parents=*/true, mode_root);
  if (!to.ok()) {
    return "cannot move " + EscapeName(where) + " back to " + EscapeName(home) + ": " +
           to.error().what;
  }
  if (int rc = RenameNoReplace(where, to->path); rc != 0) {
    return "cannot move " + EscapeName(where) + " back to " + EscapeName(home) + ": " +
           std::strerror(rc);
  }
  return "";
}

}  // namespace dropq
