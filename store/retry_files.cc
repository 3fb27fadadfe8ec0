#include "store/retry_files.h"

#include <sys/stat.h>

#include <cstring>

#include "common/beneath.h"
#include "common/escape.h"
#include "common/rename.h"
#include "store/job_record.h"

namespace dropq {

bool RetryFileHere(const std::string& watch, const std::string& name, const std::string& where) {
  struct stat st;
  if (!where.empty() && where != "(deleted)" && lstat(where.c_str(), &st) == 0) return true;
  return lstat((watch + "/" + name).c_str(), &st) == 0;
}

std::string MoveBackForRetry(const std::string& watch, const std::string& name,
                             const std::string& where) {
  const std::string home = watch + "/" + name;
  struct stat st;
  if (std::string why; !ValidJobName(name, &why)) return "job record field `name`: " + why;
  if (!where.empty() && where != "(deleted)" && where.front() != '/') {
    return "job record field `disposed_to`: " + EscapeName(where) + " is not an absolute path";
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
