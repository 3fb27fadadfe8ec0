// The file half of a retry. A retry (store/scripts.h: RETRY_PREPARE, then
// the file, then RETRY_COMMIT or RETRY_ABORT) puts a failed job's file back
// where it was found, in the watched directory, from where it was moved
// (the record's `disposed_to`, a path on the host whose dropqd moved it).
// dropqctl and the console do it themselves when they see that path; when
// they do not (they run on another host, or as a user who cannot read the
// failure directory), they ask the dropqd that moved it, through Redis
// (QueueKeys::RetryRequests(), docs/redis-keys.md), and that dropqd does it
// with these same functions. Thread: any (plain system calls).
#pragma once

#include <string>

#include "config/config.h"

namespace dropq {

enum class RetryFileSeen {
  kHere,       // at `where`, or already back in the watched directory
  kGone,       // this process sees the directory it was put in, and it is not there
  kElsewhere,  // this process cannot see that directory: another host, or another user
};

// Where the file of a retry of a job of `q` is, as this process sees it:
// `name` relative to q.watch, `where` the record's disposed_to. A directory
// that does not exist here counts as elsewhere, unless it lies below the
// queue's failure directory and that one is here (a subdirectory removed).
RetryFileSeen SeeRetryFile(const QueueConfig& q, const std::string& name, const std::string& where);

// Moves the file from `where` back to q.watch/`name`, through the
// descriptors of its directories (made again where they went, with the
// modes of those `where` sits in), never through a symlink on the way
// (common/beneath.h), never over a file that is there. A record edited by
// hand cannot make it move anything else: `name` must be a job name, and
// `where` the file's place in the watched directory or a path below the
// queue's failure directory (on_failure: move_to). A file already back
// counts as moved. Returns "" or why not.
std::string MoveBackForRetry(const QueueConfig& q, const std::string& name,
                             const std::string& where);

}  // namespace dropq
