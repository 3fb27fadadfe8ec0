// Spawn runs one handler program as a child process and waits for it: the
// posix_spawn + pidfd/poll part of the exec handler, kept apart from argv
// templates and environment building (workers/exec_handler.h).
//
// The child:
//   - is started with glibc posix_spawn(3) (posix_spawnp(3) when argv[0] has
//     no '/'), never through a shell: each argv element is one argument;
//   - leads its own process group (POSIX_SPAWN_SETPGROUP, pgroup 0), so a
//     timeout or a cancel kills its children as well (kill(-pgid, SIGKILL));
//   - starts with an empty signal mask and every catchable signal at its
//     default action (dropqd may block or ignore some, e.g. SIGPIPE);
//   - gets stdin from /dev/null, dropqd's stdout, stderr into a pipe that
//     dropqd reads, and no other descriptor (closefrom(3) in the child).
//
// A grandchild that leaves the process group (setsid, setpgid) escapes the
// kill; one that outlives a handler which exited on its own is left running.
// If dropqd set SIGCHLD to SIG_IGN the kernel reaps children itself and the
// exit status is lost: the run ends as kError "waitpid: ...".
//
// Thread: any. SpawnAndWait() keeps no state between calls; several workers
// run it at once.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/job.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "workers/cancel_token.h"

namespace dropq {

// How many trailing bytes of a child's stderr a run keeps.
inline constexpr std::size_t kStderrTailBytes = 4096;

// What to run.
struct SpawnRequest {
  std::vector<std::string> argv;  // argv[0] is the program; never empty
  std::vector<std::string> env;   // the child's whole environment, "NAME=value" entries
  int64_t timeout_ms = 0;         // the child is killed once this passed (monotonic)
};

// How the child ended.
struct ChildResult {
  RunResult result = RunResult::kError;  // kOk kExit kSignal kTimeout kInterrupted kError
  int exit_code = 0;                     // kExit
  int signal = 0;                        // kSignal; SIGKILL for kTimeout and kInterrupted
  std::string stderr_tail;               // the last kStderrTailBytes bytes of its stderr
  std::string error;                     // kError, kTimeout: one line
  pid_t pid = -1;                        // the child (and process group) id; -1 if not spawned
};

// Spawns `req.argv` and blocks until it exits, `req.timeout_ms` passes
// (kTimeout, error "timeout after <N>ms") or `cancel` fires (kInterrupted);
// the last two SIGKILL the child's whole process group and reap the child.
// stderr is read all along, so a chatty child never blocks on a full pipe.
// A spawn failure (ENOENT, EACCES...) is kError naming the program and the
// errno text. A token that already fired spawns nothing: kInterrupted.
// Never throws (std::bad_alloc aside).
ChildResult SpawnAndWait(const SpawnRequest& req, const CancelToken& cancel);

// A long-lived child for a serve handler (daemon/serve_executor.h), started
// as SpawnAndWait's (posix_spawn, its own process group, default signals,
// stdin /dev/null, nothing else inherited) but with four pipes: it reads
// jobs on fd 3 and writes answers on fd 4, and its stdout and stderr go to
// dropqd. Returns at once; the caller reaps it.
struct ServeChild {
  pid_t pid = -1;
  UniqueFd jobs;     // the write end of the child's fd 3
  UniqueFd answers;  // the read end of its fd 4
  UniqueFd out;      // the read end of its stdout
  UniqueFd err;      // the read end of its stderr
  UniqueFd pidfd;    // readable once it exits; invalid where pidfd_open is refused
};
// dropqd's ends are non-blocking and close-on-exec. A spawn failure is an
// Error naming the program and the errno text.
Result<ServeChild> SpawnServe(const std::vector<std::string>& argv,
                              const std::vector<std::string>& env);

}  // namespace dropq
