// The processing area: where a file sits while its handler runs, so that the
// handler and the disposition work on the very file that was checked.
//
//   <watch>/<name>  --rename-->  <processing_dir>/<queue>/<job id>/<name>
//
// Uploaders can write the watched directory; they cannot write the
// processing directory (mode 0700, owned by dropqd). Once a file is renamed
// in, and checked there to be the regular file with the inode the job was
// made for, nobody but dropqd can swap it for a symlink or another file. The
// handler's {path} points into it and keeps the original name as its last
// component. A rename moves a symlink itself, never its target, so a link
// swapped in before the rename is caught by the check after it and put back.
//
// Each job has a directory of its own, so two jobs for files of the same name
// never meet, and a job run again (after a crash or for a retry) finds its
// file where its last attempt left it.
//
// Blocking (rename, mkdir, lstat): call from a worker or the threadpool.
// Thread: any (no shared state).
#pragma once

#include <sys/stat.h>

#include <string>
#include <vector>

#include "common/job.h"
#include "common/result.h"
#include "config/config.h"
#include "workers/spare_dirs.h"

namespace dropq {

// "<processing_dir>/<queue>": one queue's processing area (queues that watch
// one directory share processing_dir, never an area); "" when off.
std::string ProcessingArea(const std::string& processing_dir, const std::string& queue);

// "<area>/<job_id>": the directory of one job's file.
std::string JobDir(const std::string& processing_dir, const std::string& job_id);

// Where the file `name` of job `job_id` is worked on: "<JobDir>/<name>";
// "<watch_dir>/<name>" (in place) when `processing_dir` is "" (off) or that
// path would not fit in PATH_MAX. Enter() and the disposition agree on it.
std::string WorkPath(const std::string& watch_dir, const std::string& processing_dir,
                     const std::string& job_id, const std::string& name);

// What Enter() found.
struct Entered {
  RunResult result = RunResult::kOk;  // kOk, kVanished, kReplaced or kError
  std::string path;                   // kOk: "<JobDir>/<name>", the file to work on
  struct stat st {};                  // kOk: the file's lstat
  std::string error;                  // otherwise: why, one line
};

// Moves the file of `job` from `watch_dir` into its job directory under
// `processing_dir` (both created 0700 if missing), unless an earlier attempt
// of this job left it there already. Checks it is a regular file whose inode
// is job.ident.ino (when not 0). A file that fails the check after the move
// (swapped between the check and the rename) is put back into `watch_dir`
// under its name, or "<name>.<job id>" if that is taken, and the job ends as
// kReplaced; it has a job of its own, or gets one when it is seen again.
// Where WorkPath() is in place, only checks the file there: a narrow window
// remains between that check and the handler's open. The job directory comes
// from `spares` when it has one (may be null).
Entered Enter(const std::string& watch_dir, const std::string& processing_dir, const Job& job,
              SpareDirs* spares = nullptr);

// Moves what is left in `job_dir` (a file of a job that will not run again:
// its record was lost, or it ended without its file being moved) back into
// `watch_dir`, never replacing a file there, then removes `job_dir`. Returns
// the paths it put back. Errors leave the file where it is.
Result<std::vector<std::string>> PutBack(const std::string& job_dir, const std::string& watch_dir,
                                         const std::string& job_id);

// Removes the job directory once its file has left it, or gives it to
// `spares` (may be null) for a later job. Best effort: a directory that is
// not empty (or gone) is left as it is.
void RemoveJobDir(const std::string& processing_dir, const std::string& job_id,
                  SpareDirs* spares = nullptr);

// Creates the queue's processing area "<processing_dir>/<queue>" (and
// processing_dir), each mode 0700, and checks that they are directories of
// dropqd's user that nobody else can write: whoever could write them could
// swap a file between its check and its handler (Errc::kInvalid otherwise).
// Warns (processing.unprotected) when uploaders could rename processing_dir
// away: it sits in a directory that others may write and that lacks the
// sticky bit. Does nothing when the area is off.
Status PrepareProcessingArea(const QueueConfig& q);

}  // namespace dropq
