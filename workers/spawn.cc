#include "workers/spawn.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <initializer_list>
#include <utility>

#include "common/clock.h"
#include "common/log.h"
#include "common/result.h"
#include "common/tail_buffer.h"
#include "common/unique_fd.h"

namespace dropq {
namespace {

// Without a pidfd (kernel < 5.3, or a seccomp filter refusing pidfd_open) the
// wait loop cannot sleep until the child exits: it wakes this often to call
// waitpid(WNOHANG) instead.
constexpr int kNoPidfdStepMs = 20;

// Bytes read from the stderr pipe per read(2).
constexpr std::size_t kReadChunk = std::size_t{16} * 1024;

// After the child is reaped, its stderr pipe is drained without blocking; a
// grandchild still writing into it must not keep the worker forever, so the
// drain stops after this many reads.
constexpr int kMaxDrainReads = 64;

// Reads up to `max_reads` chunks from the non-blocking `fd` into `tail`.
// Returns false at end of file or on a read error (stop polling `fd`), true
// when the pipe is merely empty for now.
bool ReadSome(int fd, TailBuffer* tail, int max_reads) {
  char buf[kReadChunk];
  for (int i = 0; i < max_reads; ++i) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      tail->Append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
  return true;
}

// Blocks until `pid` is reaped. Returns 0 and fills `status`, or an errno
// value (ECHILD if SIGCHLD is ignored and the kernel reaped it already).
int Reap(pid_t pid, int* status) {
  while (true) {
    const pid_t r = ::waitpid(pid, status, 0);
    if (r == pid) return 0;
    if (r < 0 && errno == EINTR) continue;
    return r < 0 ? errno : ECHILD;
  }
}

// posix_spawnattr_t and posix_spawn_file_actions_t, destroyed on scope exit.
class SpawnSetup {
 public:
  SpawnSetup() {
    attr_ok_ = posix_spawnattr_init(&attr_) == 0;
    fa_ok_ = posix_spawn_file_actions_init(&fa_) == 0;
  }
  ~SpawnSetup() {
    if (fa_ok_) posix_spawn_file_actions_destroy(&fa_);
    if (attr_ok_) posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  // Describes the child (see spawn.h): each {from, to} of `dups` makes
  // dropqd's descriptor `from` the child's `to` (no `from` may be another's
  // `to`), stdin is /dev/null, and no descriptor from `close_from` on stays
  // open. Returns 0 or the errno value of the first failing call.
  int Prepare(std::initializer_list<std::pair<int, int>> dups, int close_from) {
    if (!attr_ok_ || !fa_ok_) return ENOMEM;
    // dup2 first: should a pipe's end be descriptor 0 (dropqd started with
    // stdin closed), opening /dev/null onto 0 must not clobber it first.
    // dup2 clears FD_CLOEXEC on the copy, even when from == to.
    for (const auto& [from, to] : dups) {
      if (int rc = posix_spawn_file_actions_adddup2(&fa_, from, to)) return rc;
    }
    if (int rc = posix_spawn_file_actions_addopen(&fa_, STDIN_FILENO, "/dev/null", O_RDONLY, 0)) {
      return rc;
    }
    // Every dropqd descriptor is O_CLOEXEC, but a library (or a test) may have
    // opened one without it: close them all, whatever their flags.
    if (int rc = posix_spawn_file_actions_addclosefrom_np(&fa_, close_from)) return rc;

    sigset_t none;
    sigemptyset(&none);
    sigset_t all;
    sigfillset(&all);  // glibc leaves out its internal signals by itself
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    const short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (int rc = posix_spawnattr_setflags(&attr_, flags)) return rc;
    if (int rc = posix_spawnattr_setpgroup(&attr_, 0)) return rc;  // leads its own group
    if (int rc = posix_spawnattr_setsigmask(&attr_, &none)) return rc;
    if (int rc = posix_spawnattr_setsigdefault(&attr_, &all)) return rc;
    return 0;
  }

  // Starts the child. Returns 0 (and `*pid`) or an errno value; glibc's
  // posix_spawn reports exec failures (ENOENT, EACCES...) here as well.
  int Spawn(const std::vector<std::string>& args, const std::vector<std::string>& env, pid_t* pid) {
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    envp.reserve(env.size() + 1);
    for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    // A bare name is looked up in dropqd's PATH; a name with a '/' is used as is.
    const bool search = args[0].find('/') == std::string::npos;
    return search ? posix_spawnp(pid, argv[0], &fa_, &attr_, argv.data(), envp.data())
                  : posix_spawn(pid, argv[0], &fa_, &attr_, argv.data(), envp.data());
  }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t fa_;
  bool attr_ok_ = false;
  bool fa_ok_ = false;
};

// How the wait loop ended.
enum class End { kExited, kTimeout, kCancelled, kPollFailed };

}  // namespace

ChildResult SpawnAndWait(const SpawnRequest& req, const CancelToken& cancel) {
  ChildResult out;
  if (req.argv.empty() || req.argv[0].empty()) {
    out.error = "spawn: empty program name";
    return out;
  }
  if (cancel.cancelled()) {
    out.result = RunResult::kInterrupted;
    out.error = "cancelled before start";
    return out;
  }

  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    out.error = IoError("pipe2", errno).what;
    return out;
  }
  UniqueFd err_r(p[0]);
  UniqueFd err_w(p[1]);
  // Only our end is non-blocking: the child's stderr stays a blocking pipe.
  if (::fcntl(err_r.get(), F_SETFL, O_NONBLOCK) != 0) {
    out.error = IoError("fcntl O_NONBLOCK", errno).what;
    return out;
  }

  pid_t pid = -1;
  {
    SpawnSetup setup;
    int rc = setup.Prepare({{err_w.get(), STDERR_FILENO}}, 3);
    if (rc == 0) rc = setup.Spawn(req.argv, req.env, &pid);
    if (rc != 0) {
      out.error = IoError("spawn " + req.argv[0], rc).what;
      return out;
    }
  }
  err_w.Reset();  // the child holds the only write end now: EOF when it and its children are done
  out.pid = pid;

  // The child cannot be reaped by anyone else before we wait for it, so its
  // pid (and process group id) stays ours until Reap() below.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) {
    static std::atomic<bool> logged{false};  // a degraded mode: one line, not one per run
    if (!logged.exchange(true)) {
      LogWarn("spawn.no_pidfd", {{"errno", errno}, {"poll_ms", kNoPidfdStepMs}});
    }
  }

  TailBuffer tail(kStderrTailBytes);
  const int64_t deadline = MonoMs() + req.timeout_ms;
  // poll() ignores negative descriptors: a missing pidfd or a finished pipe drop out.
  pollfd fds[3] = {{pidfd.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}, {cancel.fd(), POLLIN, 0}};
  End end = End::kExited;
  int status = 0;
  int wait_err = -1;  // -1: not reaped yet; else Reap()'s result
  int poll_err = 0;
  while (true) {
    const int64_t left = deadline - MonoMs();
    if (left <= 0) {
      end = End::kTimeout;
      break;
    }
    const int64_t step = pidfd.valid() ? INT_MAX : kNoPidfdStepMs;
    const int n = ::poll(fds, 3, static_cast<int>(std::min(left, step)));
    if (n < 0) {
      if (errno == EINTR) continue;
      poll_err = errno;
      end = End::kPollFailed;
      break;
    }
    if (fds[1].revents != 0 && !ReadSome(fds[1].fd, &tail, 4)) fds[1].fd = -1;
    // An exit wins over a cancel or a deadline seen in the same turn: the
    // handler finished, its result is real.
    if (pidfd.valid()) {
      if (fds[0].revents != 0) break;
    } else {
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        wait_err = 0;
        break;
      }
      if (r < 0 && errno != EINTR) {
        wait_err = errno;
        break;
      }
    }
    if (fds[2].revents != 0) {
      end = End::kCancelled;
      break;
    }
  }

  if (end != End::kExited) {
    // The leader is not reaped yet, so its group id cannot have been reused.
    // SIGKILL at once: a handler that overran its deadline gets no grace.
    ::kill(-pid, SIGKILL);
  }
  if (wait_err < 0) wait_err = Reap(pid, &status);
  // What the child wrote just before it exited is in the pipe; a grandchild
  // may still hold the write end open, so read only what is there.
  if (fds[1].fd >= 0) ReadSome(fds[1].fd, &tail, kMaxDrainReads);
  out.stderr_tail = tail.Take();

  switch (end) {
    case End::kExited:
      if (wait_err != 0) {
        out.result = RunResult::kError;
        out.error = IoError("waitpid " + req.argv[0], wait_err).what;
      } else if (WIFEXITED(status)) {
        out.exit_code = WEXITSTATUS(status);
        out.result = out.exit_code == 0 ? RunResult::kOk : RunResult::kExit;
      } else if (WIFSIGNALED(status)) {
        out.result = RunResult::kSignal;
        out.signal = WTERMSIG(status);
      } else {
        out.result = RunResult::kError;  // stopped/continued: not requested, cannot happen
        out.error = "waitpid " + req.argv[0] + ": unexpected status " + std::to_string(status);
      }
      break;
    case End::kTimeout:
      out.result = RunResult::kTimeout;
      out.signal = SIGKILL;
      out.error = "timeout after " + std::to_string(req.timeout_ms) + "ms";
      break;
    case End::kCancelled:
      out.result = RunResult::kInterrupted;
      out.signal = SIGKILL;
      out.error = "cancelled";
      break;
    case End::kPollFailed:
      out.result = RunResult::kError;
      out.error = IoError("poll", poll_err).what;
      break;
  }
  return out;
}

Result<ServeChild> SpawnServe(const std::vector<std::string>& argv,
                              const std::vector<std::string>& env) {
  if (argv.empty() || argv[0].empty()) return Error{Errc::kHandler, "spawn: empty program name"};
  // Each pipe: {read end, write end}, dropqd's end non-blocking, every
  // descriptor moved to 5 or above so that none is a target of the dups.
  UniqueFd ends[4][2];  // fd 3 (jobs), fd 4 (answers), stdout, stderr
  for (auto& e : ends) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return IoError("pipe2", errno);
    const UniqueFd low[2] = {UniqueFd(p[0]), UniqueFd(p[1])};  // closed on every way out
    for (int k = 0; k < 2; ++k) {
      const int high = ::fcntl(low[k].get(), F_DUPFD_CLOEXEC, 5);
      if (high < 0) return IoError("fcntl F_DUPFD_CLOEXEC", errno);
      e[k] = UniqueFd(high);
    }
  }
  const int ours[4] = {ends[0][1].get(), ends[1][0].get(), ends[2][0].get(), ends[3][0].get()};
  for (int fd : ours) {
    if (::fcntl(fd, F_SETFL, O_NONBLOCK) != 0) return IoError("fcntl O_NONBLOCK", errno);
  }
  ServeChild c;
  {
    SpawnSetup setup;
    int rc = setup.Prepare({{ends[0][0].get(), 3},
                            {ends[1][1].get(), 4},
                            {ends[2][1].get(), STDOUT_FILENO},
                            {ends[3][1].get(), STDERR_FILENO}},
                           5);
    if (rc == 0) rc = setup.Spawn(argv, env, &c.pid);
    if (rc != 0) return IoError("spawn " + argv[0], rc);
  }
  // The child holds the only copies of its ends now: EOF when it is gone.
  c.jobs = std::move(ends[0][1]);
  c.answers = std::move(ends[1][0]);
  c.out = std::move(ends[2][0]);
  c.err = std::move(ends[3][0]);
  c.pidfd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, c.pid, 0)));
  return c;
}

}  // namespace dropq
