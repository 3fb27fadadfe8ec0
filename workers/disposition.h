// Disposition puts a processed file where the queue's on_success/on_failure
// says: keep it, delete it, or move it into a directory. A move never
// overwrites: if the target name is taken, the file gets the job id in its
// name ("<stem>.<job_id>.<ext>", or "<name>.<job_id>" without an extension).
// Across filesystems (EXDEV) it copies to a temporary name in the target
// directory, fsyncs, links into place without replacing and unlinks the
// source. Blocking: call it from a worker or the libuv threadpool, never the loop.
// Thread: any (no shared state).
#pragma once

#include <string>

#include "common/result.h"
#include "config/config.h"

namespace dropq {

// Primary target path of a move: "<dir>/<name>".
std::string MoveTarget(const Disposition& d, const std::string& name);
// Fallback target used when the primary one exists.
std::string MoveFallbackTarget(const Disposition& d, const std::string& name,
                               const std::string& job_id);

// Applies `d` to the file at `src` (named `name`, processed by `job_id`).
// Returns the file's final absolute path for kMoveTo, `src` for kKeep, ""
// for kDelete. Errc::kVanished if `src` does not exist.
Result<std::string> Dispose(const Disposition& d, const std::string& src, const std::string& name,
                            const std::string& job_id);

}  // namespace dropq
