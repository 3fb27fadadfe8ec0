// What a queue needs made on the filesystem before it runs: its handler
// (which may open a manifest file), its processing area (made, and checked
// to be private to dropqd), and the stock of spare job directories (the
// spares an earlier run of this instance left removed). dropqd makes it
// before its loop runs, and on the libuv threadpool when a reload adds or
// restarts a queue, so that a slow filesystem never stalls the loop.
//
// Blocking (open, mkdir, lstat, chmod, readdir, rmdir). Thread: any.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "config/config.h"
#include "workers/handler.h"
#include "workers/spare_dirs.h"

namespace dropq {

struct QueueSetup {
  std::unique_ptr<Handler> handler;
  // Empty job directories for reuse; null unless the queue runs handlers in
  // job directories (workers/processing.h: AreaLayout::kJobDirs).
  std::shared_ptr<SpareDirs> spares;
};

// Makes queue `q`'s set-up for instance `instance`. Fails (Errc::kInvalid
// for a setting the host contradicts, e.g. a processing_dir of another
// user's) with a message naming what is wrong.
Result<QueueSetup> SetUpQueue(const QueueConfig& q, const std::string& instance);

}  // namespace dropq
