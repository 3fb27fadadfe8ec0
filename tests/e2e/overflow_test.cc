// An inotify queue overflow (IN_Q_OVERFLOW: the kernel dropped events) is
// recovered by a rescan of the watched directory: every file still ends
// processed, each by one job. The test makes the overflow certain: dropqd's
// inotify instance gets a queue of 64 events (fs.inotify.max_queued_events
// is copied into an instance when it is created, so it is lowered only
// around dropqd's start and restored at once), dropqd is stopped (SIGSTOP)
// while hundreds of files arrive, then continued. Without the right to
// change that limit (not root), the files outnumber the current limit.
// The limit is system-wide: it is low only from just before dropqd starts
// until its inotify instance shows up in /proc/<pid>/fd.
// It asserts that dropqd logged the overflow, so it cannot pass vacuously.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <optional>
#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kMaxQueuedEvents = "/proc/sys/fs/inotify/max_queued_events";

long ReadLimit() {
  const std::string s = ReadFile(kMaxQueuedEvents);
  return s.empty() ? -1 : std::atol(s.c_str());
}

bool WriteLimit(long value) {
  std::ofstream f(kMaxQueuedEvents);
  if (!f) return false;
  f << value << "\n";
  f.flush();
  return static_cast<bool>(f);
}

// Lowers fs.inotify.max_queued_events for as long as it lives (or until
// Restore()), and puts the old value back in every case. The limit is
// system-wide: tests running in parallel that create an inotify instance
// meanwhile get the small queue too, so the window is kept short.
class InotifyLimitGuard {
 public:
  // Returns nullopt if the limit cannot be read or written (not root).
  static std::optional<long> Lower(InotifyLimitGuard* g, long value) {
    const long old = ReadLimit();
    if (old <= 0 || !WriteLimit(value) || ReadLimit() != value) return std::nullopt;
    g->old_ = old;
    return old;
  }
  ~InotifyLimitGuard() { Restore(); }
  void Restore() {
    if (old_ > 0 && !WriteLimit(old_)) {
      ADD_FAILURE() << "could not restore " << kMaxQueuedEvents << " to " << old_;
    }
    old_ = -1;
  }

 private:
  long old_ = -1;
};

// The pid of a process whose command line contains `needle`, or -1.
pid_t FindProcess(const std::string& needle) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadFile(e.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos) return static_cast<pid_t>(std::stol(pid));
  }
  return -1;
}

// True if `pid` has an inotify instance open.
bool HasInotifyFd(pid_t pid) {
  std::error_code ec;
  const std::string fds = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& e : std::filesystem::directory_iterator(fds, ec)) {
    std::error_code link_ec;
    if (std::filesystem::read_symlink(e.path(), link_ec).string() == "anon_inode:inotify") {
      return true;
    }
  }
  return false;
}

// Resumes a stopped process in every case (a failed assertion included).
struct ContinueOnExit {
  pid_t pid;
  ~ContinueOnExit() { ::kill(pid, SIGCONT); }
};

TEST(OverflowTest, QueueOverflowIsRecoveredByARescan) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: sha256";
  q.workers = 2;
  q.extra =
      "keep_done: 100000";  // every job record stays for the checks (the fallback has ~17,000)
  env.WriteConfig(q);

  constexpr long kSmallQueue = 64;
  InotifyLimitGuard guard;
  const std::optional<long> old = InotifyLimitGuard::Lower(&guard, kSmallQueue);
  // The limit goes back as soon as dropqd holds its inotify instance, long
  // before its start-up scan is done (which Start() waits for).
  auto start = std::async(std::launch::async, [&] { return env.Start(); });
  if (old) {
    pid_t pid = -1;
    EXPECT_TRUE(WaitFor(
        [&] {
          if (pid <= 0) pid = FindProcess(env.config);
          return pid > 0 && HasInotifyFd(pid);
        },
        seconds(30), milliseconds(1)))
        << "dropqd (" << pid << ") never opened an inotify instance";
    guard.Restore();
  }
  const bool started = start.get();
  guard.Restore();
  ASSERT_TRUE(started) << env.DaemonLog();
  // Lowered: ten times the queue is plenty. Otherwise: more files than the
  // current limit (each arrives as one IN_MOVED_TO event).
  const long limit = old ? kSmallQueue : ReadLimit();
  ASSERT_GT(limit, 0) << "cannot read " << kMaxQueuedEvents;
  const int files = static_cast<int>(old ? 10 * kSmallQueue : limit + 1000);
  std::cout << "overflow: max_queued_events " << (old ? "lowered" : "unchanged (not permitted)")
            << ", queue " << limit << " events, " << files << " files" << std::endl;

  const std::string staging = env.tmp.Mkdir("staging");
  auto name_of = [](int i) { return "o-" + std::to_string(i) + ".dat"; };
  {
    const pid_t pid = env.daemon()->pid();
    ASSERT_EQ(::kill(pid, SIGSTOP), 0) << std::strerror(errno);
    ContinueOnExit resume{pid};
    for (int i = 0; i < files; ++i) {
      const std::string n = name_of(i);
      WriteAndRename(staging + "/" + n, env.inbox + "/" + n, n);
    }
  }
  ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "inotify.overflow") > 0; }, seconds(20)))
      << "no overflow: the test proved nothing\n"
      << env.DaemonLog();
  const bool all_done =
      WaitFor([&] { return ListDir(env.done).size() >= static_cast<size_t>(files); }, seconds(60),
              milliseconds(50));
  const std::string dlog = env.DaemonLog();
  EXPECT_TRUE(all_done) << ListDir(env.done).size() << " of " << files << " done\n" << dlog;

  // The overflow was followed by a rescan (the first scan.start is the
  // start-up scan, before any file arrived).
  const size_t overflow_at = dlog.find("inotify.overflow");
  ASSERT_NE(overflow_at, std::string::npos);
  EXPECT_NE(dlog.find("scan.start", overflow_at), std::string::npos) << dlog;

  int lost = 0;
  const auto by_name = JobIdsByName(env.redis, "q");
  for (int i = 0; i < files; ++i) {
    const std::string n = name_of(i);
    if (ReadFile(env.done + "/" + n) != n) {
      ++lost;
      ADD_FAILURE() << n << " is not in done/ with its content";
    }
    ASSERT_EQ(by_name.count(n), 1u) << n << " has no job";
    EXPECT_EQ(by_name.at(n).size(), 1u) << n << " has several jobs";
  }
  EXPECT_TRUE(WaitFor([&] {
    return env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "active")}) == 0;
  }));
  EXPECT_EQ(env.redis.CmdInt({"LLEN", DropqEnv::Key("q", "pending")}), 0);
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), files);
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), files);
  EXPECT_EQ(ListDir(env.done).size(), static_cast<size_t>(files));
  const size_t overflows = Count(dlog, "inotify.overflow");
  std::cout << "overflow: files=" << files << " overflow_lines=" << overflows << " lost=" << lost
            << std::endl;
  RecordProperty("files", files);
  RecordProperty("overflows", static_cast<int>(overflows));
  RecordProperty("lost", lost);
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
