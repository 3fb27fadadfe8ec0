// The processing area: where a file sits while its handler runs, so that the
// handler and the disposition work on the very file that was checked.
// Uploaders can write the watched directory; they cannot write the area
// (mode 0700, owned by dropqd). Once a file is renamed in, and checked there
// to be the regular file with the inode the job was made for, nobody but
// dropqd can swap it for a symlink or another file. A rename moves a symlink
// itself, never its target, so a link swapped in before the rename is caught
// by the check after it and put back.
//
// A queue uses one of three layouts (LayoutOf()):
//
//   kInPlace   <watch>/<name>                    the file is not moved
//   kFlat      <area>/<job id>.<name>            builtins that move or delete
//   kJobDirs   <area>/<job id>/<name>            exec handlers: {path} keeps the
//                                                name as its last component
//
// where <area> is "<processing_dir>/<queue>". kInPlace with a builtin is as
// safe as the area while the handler runs: the builtin works on a descriptor
// opened with O_NOFOLLOW and checked by fstat() to be the job's inode. Only
// the disposition needs the area then, and only when it moves or deletes:
// Linux has no "rename or unlink this name only if it is still this inode".
// kFlat costs one rename in and one out (or an unlink) per file and no
// directory operation; kJobDirs adds a directory per job (taken from
// SpareDirs). The file's name stays readable in the area without Redis (in
// the entry's name, or its directory's), so a sweep can put a file back whose
// record is gone. A job run again (after a crash or for a retry) finds its
// file where its last attempt left it, in either area layout: a file left by
// an earlier layout (an upgrade, a changed config) is found too.
//
// Blocking (rename, mkdir, lstat, open): call from a worker or the threadpool.
// Thread: any (no shared state).
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/job.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "config/config.h"
#include "workers/spare_dirs.h"

namespace dropq {

enum class AreaLayout {
  kInPlace,  // the file stays in the watched directory
  kFlat,     // "<area>/<job id>.<name>" (a job directory if that is too long)
  kJobDirs,  // "<area>/<job id>/<name>"
};

// The layout of queue `q`: kInPlace with processing_dir off, or auto with a
// builtin handler whose on_success and on_failure both keep; kJobDirs for an
// exec handler; kFlat for a builtin otherwise.
AreaLayout LayoutOf(const QueueConfig& q);

// The area queue `q` uses: ProcessingArea() where its layout needs one
// (PrepareProcessingArea() makes and checks it). A queue that works in place
// looks in its area only for files an earlier layout left there, and only if
// the area and processing_dir already exist as directories of dropqd's user
// that nobody else can write; otherwise "" (an uploader could make one in the
// inbox). Blocking (lstat).
std::string AreaInUse(const QueueConfig& q);

// "<processing_dir>/<queue>": one queue's processing area (queues that watch
// one directory share processing_dir, never an area); "" when off.
std::string ProcessingArea(const std::string& processing_dir, const std::string& queue);

// "<area>/<job_id>": the directory of one job's file (kJobDirs).
std::string JobDir(const std::string& area, const std::string& job_id);

// True if `path` lies in the job directory of `job_id` in `area` (not "").
bool InJobDir(const std::string& area, const std::string& job_id, const std::string& path);

// Where the file `name` of job `job_id` is worked on in `layout`; in place
// ("<watch>/<name>") when `area` is "" or the path would not fit in PATH_MAX.
std::string WorkPath(AreaLayout layout, const std::string& watch, const std::string& area,
                     const std::string& job_id, const std::string& name);

// What Enter() found.
struct Entered {
  RunResult result = RunResult::kOk;  // kOk, kVanished, kReplaced or kError
  std::string path;                   // kOk: the file to work on
  struct stat st {};                  // kOk: the file's lstat (or fstat of `fd`)
  UniqueFd fd;                        // kOk and asked to open: the checked file, read-only
  std::string error;                  // otherwise: why, one line
};

// Makes the file of `job` ready for its handler: in place, checks that
// "<watch>/<name>" is a regular file whose inode is job.ident.ino (when not
// 0); otherwise moves it into the area first (made 0700 if missing) and
// checks it there. With `open`, the check is an fstat() of a descriptor
// opened with O_NOFOLLOW|O_NONBLOCK, and the handler is to read that
// descriptor: nothing swapped in under the name can reach it. A file found
// in the area from an earlier attempt (in any layout) is used where it is.
// Anything that fails the check after a move (swapped between the check and
// the rename) is put back into `watch` under its name, or "<name>.<job id>"
// if that is taken, and the job ends as kReplaced: a regular file has a job
// of its own, or gets one when it is seen again. Job directories come from
// `spares` when it has one (may be null).
Entered Enter(AreaLayout layout, const std::string& watch, const std::string& area, const Job& job,
              bool open, SpareDirs* spares = nullptr);

// Where the file of job `job_id` is now, for a disposition redone after a
// crash: the first of the area paths (both layouts) that exists, else
// WorkPath() (the watched directory only where the queue works in place).
std::string LocateWork(AreaLayout layout, const std::string& watch, const std::string& area,
                       const std::string& job_id, const std::string& name);

// An entry of a processing area that belongs to a job: "<job id>" (a job
// directory) or "<job id>.<name>" (a flat file).
struct AreaEntry {
  std::string job_id;
  std::string name;  // the flat file's name; "" for a job directory
};
// Parses the entry name `n`; nullopt for anything else (spares, strays).
std::optional<AreaEntry> ParseAreaEntry(std::string_view n);

// Moves what area entry `e` holds (a job that will not run again: its record
// was lost, or it ended without its file being moved) back into `watch`,
// never replacing a file there; a job directory is removed once empty.
// Returns the paths it put back. Errors leave the file where it is.
Result<std::vector<std::string>> PutBack(const std::string& area, const AreaEntry& e,
                                         const std::string& watch);

// Removes the job directory once its file has left it, or gives it to
// `spares` (may be null) for a later job. Best effort: a directory that is
// not empty (or gone) is left as it is.
void RemoveJobDir(const std::string& area, const std::string& job_id, SpareDirs* spares = nullptr);

// Creates the queue's processing area "<processing_dir>/<queue>" (and
// processing_dir), each mode 0700, unless the queue works in place, and checks that they are
// directories of dropqd's user that nobody else can write: whoever could write them could swap a
// file between its check and its handler (Errc::kInvalid otherwise). Warns (processing.unprotected)
// when uploaders could rename processing_dir away: it sits in a directory that others may write and
// that lacks the sticky bit. Does nothing when the area is off or unused.
Status PrepareProcessingArea(const QueueConfig& q);

}  // namespace dropq
