// DirScanner streams one directory's entries to the loop in chunks: each
// chunk (up to 512 names, each lstat'ed) is read on the libuv threadpool and
// handed to the sink on the loop thread. The next chunk is read only when
// the owner calls Continue(), so a directory of a million files never sits in
// memory at once and the first job does not wait for the last name.
//
// Thread: loop. The threadpool part touches only the DIR* and the chunk.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "daemon/loop.h"

namespace dropq {

struct ScanEntry {
  std::string name;
  struct stat st;  // lstat: a symlink is reported as a symlink
};

class DirScanner {
 public:
  // `chunk` is the entries read; `last` is true once the directory is exhausted
  // (or failed: `error` set). The sink calls Continue() to get the next chunk.
  using Sink = std::function<void(std::vector<ScanEntry> chunk, bool last, const Error* error)>;

  // `loop` must outlive the scan.
  DirScanner(Loop* loop, std::string dir, Sink sink);
  // Scans the directory open as `dir_fd` (opened beneath a tree: common/
  // beneath.h); `shown` names it in errors.
  DirScanner(Loop* loop, UniqueFd dir_fd, std::string shown, Sink sink);
  ~DirScanner();
  DirScanner(const DirScanner&) = delete;
  DirScanner& operator=(const DirScanner&) = delete;

  // Opens the directory and reads the first chunk.
  void Start();
  // Reads the next chunk; call once per delivered chunk that was not the last.
  void Continue();
  // No further chunk is delivered. A chunk being read finishes in the
  // background and is discarded.
  void Cancel();

 private:
  struct State;  // shared with the threadpool request, freed by whoever is last
  Loop* const loop_;
  const std::string dir_;
  UniqueFd dir_fd_;  // handed to fdopendir() by Start(); invalid: open `dir_`
  Sink sink_;
  std::shared_ptr<State> state_;
};

}  // namespace dropq
