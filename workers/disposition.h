// Disposition puts a processed file where the queue's on_success/on_failure
// says: keep it, delete it, or move it into a directory. A move never
// overwrites: if the target name is taken, the file gets the job id in its
// name ("<stem>.<job_id>.<ext>", or "<name>.<job_id>" without an extension).
// Across filesystems (EXDEV) it copies to a temporary name in the target
// directory, fsyncs, links into place without replacing and unlinks the
// source. Blocking: call it from a worker or the libuv threadpool, never the loop.
// Thread: any (no shared state).
#pragma once

#include <cstdint>
#include <string>

#include "common/job.h"
#include "common/rename.h"
#include "common/result.h"
#include "config/config.h"

namespace dropq {

// Primary target path of a move: "<dir>/<name>". `name` is the job's name,
// a path relative to the watched directory: a move keeps the tree, making
// missing directories beneath <dir> (never through a symlink) with the modes
// of the same directories of the watched directory.
std::string MoveTarget(const Disposition& d, const std::string& name);
// Fallback target used when the primary one exists.
std::string MoveFallbackTarget(const Disposition& d, const std::string& name,
                               const std::string& job_id);

// How Dispose() treats the file beyond the disposition itself.
struct DisposeOptions {
  // The processed file: its inode is checked before the file is moved (0: not
  // checked), and in recovery its size and mtime recognise a finished copy.
  FileIdentity ident;
  // kKeep when `src` is in the processing area: the watched directory the
  // file goes back to. Empty: the file is kept where it is.
  std::string keep_dir;
  // A redo after a crash between the recording of the outcome and the
  // acknowledgement: an earlier try may have finished all or part of the
  // move. A target that already holds this very file (same inode, or for a
  // cross-filesystem copy the same size and mtime) is taken as the result,
  // and only the source is unlinked; it is never treated as a name collision.
  bool recovering = false;
  // The watched directory, for a name that holds directories: those made
  // below a kMoveTo target take the modes of the same directories here.
  std::string mode_root;
};

// Applies `d` to the file at `src` (named `name`, processed by `job_id`).
// Returns the file's final absolute path for kMoveTo and kKeep, "" for
// kDelete. Errc::kVanished if `src` does not exist, or if `opt.ident.ino` is
// not 0 and the file at `src` is another one (it was replaced during the run:
// that file has a job of its own and is left alone).
Result<std::string> Dispose(const Disposition& d, const std::string& src, const std::string& name,
                            const std::string& job_id, const DisposeOptions& opt = {});

// The cross-filesystem (EXDEV) half of a kMoveTo, callable on its own since
// tests cannot easily make a second filesystem: copies the regular file `src`
// to "<d.dir>/.dropq-tmp-<job_id>" (mode, owner when permitted, and times
// kept), fsyncs it, moves it with RenameNoReplace() to MoveTarget() or, if
// that is taken, MoveFallbackTarget(), fsyncs `d.dir` and only then unlinks
// `src`. Returns the final path. Errc::kVanished if `src` does not exist;
// on any failure `src` stays where it was and no temporary file is left.
Result<std::string> CopyIntoPlace(const Disposition& d, const std::string& src,
                                  const std::string& name, const std::string& job_id);

}  // namespace dropq
