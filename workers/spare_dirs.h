// SpareDirs: a small stock of empty directories kept in one processing area,
// so that a job's directory is renamed into place rather than made with
// mkdir(2), and renamed back into the stock rather than removed with
// rmdir(2) once its file has left. On ext4 a mkdir/rmdir pair allocates and
// frees a directory block (and, mounted with `discard`, trims it): about
// 120-200 µs per file here against 10 µs for two renames, which made it the
// largest cost of the in-process path.
//
// Spares are named ".spare-<instance>-<n>": never a job id, so the recovery
// sweep and PutBack() pass them by, and instances that share an area (on
// shared storage) never take each other's. The stock lives in memory; spares
// a previous run left behind are removed by Reset() at start-up.
//
// Blocking (rename, rmdir, getdents): call from a worker or the threadpool.
// Thread: any (a mutex guards the stock).
#pragma once

#include <mutex>
#include <string>
#include <vector>

namespace dropq {

class SpareDirs {
 public:
  // `area` is the processing area ("<processing_dir>/<queue>"), `instance`
  // this instance's name; keeps at most `capacity` spares.
  SpareDirs(std::string area, std::string instance, size_t capacity);
  SpareDirs(const SpareDirs&) = delete;
  SpareDirs& operator=(const SpareDirs&) = delete;

  // Removes this instance's spares left in the area by an earlier run (empty
  // ones; a spare something wrote into is left for an operator to see).
  // Call once, before the workers start.
  void Reset();

  // Makes `dir` (a job directory in the area) from a spare. Returns false if
  // there was none, or it could not be used (`dir` exists already, or the
  // rename failed): the caller then makes `dir` itself.
  bool Take(const std::string& dir);

  // Puts the job directory `dir`, whose file has left, into the stock if it
  // is empty and the stock has room; removes it otherwise (rmdir: a
  // directory that is not empty stays, as RemoveJobDir() documents).
  void Give(const std::string& dir);

  size_t stocked() const;

 private:
  const std::string area_;
  const std::string prefix_;  // ".spare-<instance>-"
  const size_t capacity_;
  mutable std::mutex mu_;
  std::vector<std::string> stock_;  // guarded by mu_: paths of empty spares
  unsigned long next_ = 0;          // guarded by mu_: the next spare's number
};

}  // namespace dropq
