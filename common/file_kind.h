// Names the kind of a directory entry the way skip log lines and counters do.
#pragma once

#include <sys/stat.h>

#include <string_view>

namespace dropq {

// "file", "symlink", "directory", "fifo", "socket", "device" or "unknown".
inline std::string_view FileKindName(mode_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISLNK(mode)) return "symlink";
  if (S_ISDIR(mode)) return "directory";
  if (S_ISFIFO(mode)) return "fifo";
  if (S_ISSOCK(mode)) return "socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "device";
  return "unknown";
}

}  // namespace dropq
