// RunCheck: what a burst through a fault (a Redis restart, a failover) must
// leave behind, checked from the outside. The handler (RunLogHandler())
// appends "<name> <pid> start" and "<name> <pid> end" to a log, one write(2)
// per line; CheckRuns() reads that log, the done/ directory, the inbox and
// every job record, and counts what went wrong:
//   unprocessed  a file not run to the end or not in done/
//   lost         that, and the file is nowhere under the inbox either
//   unexplained  runs of a file past the first that its job does not count
//                as `interrupted`
//   overlaps     a run started while another run of the same file had not ended
//   unfinished   runs that started and never ended
//   not_done     names with no job, two jobs, or a job not `done`
// Thread: owner.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/redis_server.h"

namespace dropq::test {

// The `handler:` value of a queue whose handler logs its runs to `log` and
// sleeps `sleep` (e.g. "0.2") between start and end. The script is written
// to `script`.
std::string RunLogHandler(const std::string& script, const std::string& log,
                          const std::string& sleep);

struct RunCheck {
  int files = 0;
  int unprocessed = 0, lost = 0, duplicates = 0, unexplained = 0, overlaps = 0, unfinished = 0,
      not_done = 0;
  std::vector<std::string> details;  // the first few problems, one line each
  std::string Summary() const;       // "files=... unprocessed=... ..."
};

// Checks `names` (the files dropped into env.inbox) against `log`, env.done
// and the job records of queue "q" in `redis` (the primary now).
RunCheck CheckRuns(const DropqEnv& env, const RedisServer& redis, const std::string& log,
                   const std::vector<std::string>& names);

}  // namespace dropq::test
