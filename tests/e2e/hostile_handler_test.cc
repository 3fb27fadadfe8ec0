// Hostile handlers and files: a handler that writes 1 GiB to stderr, one that
// closes its stdout and stderr and keeps running, one that leaves a daemon
// behind (setsid) holding its pipes and the file, a file removed or made
// unreadable while its handler runs, and a path of 4,095 bytes (PATH_MAX is
// 4,096 with its NUL). Each job must end recorded and counted; dropqd must
// stay alive, keep answering `dropqctl status`, and keep its memory small.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "common/escape.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/proc_stats.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Fast enough under ASan too (about 1 s: dropqd reads 16 KiB per read(2)).
// The bound is on what dropqd's peak grows by after its start: an ASan
// build starts at over 60 MiB (its binary's instrumented data alone is
// 18 MiB), the optimized one at about 10 MiB.
constexpr long kStderrMiB = 1024;
constexpr long kMaxGrowthKiB = 24 * 1024;

class HostileHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.redis.ok());
    sync_ = env_.tmp.Mkdir("sync");
  }

  void Start(const std::string& handler) {
    QueueSpec q;
    q.handler = handler;
    env_.WriteConfig(q);
    ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
    started_hwm_kib_ = ProcStatusKiB(env_.daemon()->pid(), "VmHWM");
  }

  // The id of the only job named `name`, "" if none (yet).
  std::string IdOf(const std::string& name) { return OnlyJobId(env_.redis, "q", name); }

  // Waits until the job of `name` is done or failed and returns its record.
  std::map<std::string, std::string> WaitFinished(const std::string& name,
                                                  milliseconds timeout = seconds(20)) {
    std::map<std::string, std::string> rec;
    WaitFor(
        [&] {
          const std::string id = IdOf(name);
          if (id.empty()) return false;
          rec = JobRecord(env_.redis, "q", id);
          rec["id"] = id;
          return rec["state"] == "done" || rec["state"] == "failed";
        },
        timeout);
    return rec;
  }

  // The checks every test ends with.
  void ExpectHealthy() { ExpectDaemonHealthy(env_, started_hwm_kib_ + kMaxGrowthKiB); }

  bool Logged(const std::string& needle) {
    return env_.DaemonLog().find(needle) != std::string::npos;
  }

  DropqEnv env_;
  std::string sync_;          // where handlers and the test meet
  long started_hwm_kib_ = 0;  // dropqd's VmHWM once started: the baseline of ExpectHealthy()
};

TEST_F(HostileHandlerTest, HugeStderrKeepsOnlyTheTail) {
  const std::string script =
      WriteScript(env_.tmp.Sub("loud.sh"), "head -c " + std::to_string(kStderrMiB) +
                                               "M /dev/zero >&2\n"
                                               "printf 'the last words\\n' >&2\n"
                                               "exit 3\n");
  Start("exec: [\"" + script + "\", \"{path}\"]\ntimeout: 2m");
  const long hwm_before = ProcStatusKiB(env_.daemon()->pid(), "VmHWM");
  const auto t0 = std::chrono::steady_clock::now();
  WriteFile(env_.inbox + "/loud.txt", "x\n");
  auto rec = WaitFinished("loud.txt", seconds(50));
  const auto ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[ measure  ] " << kStderrMiB << " MiB of stderr: job finished after " << ms
            << " ms (handler ms=" << rec["ms"] << "), VmHWM before " << hwm_before << " KiB\n";
  ASSERT_EQ(rec["state"], "failed") << env_.DaemonLog();
  EXPECT_EQ(rec["result"], "exit");
  EXPECT_EQ(rec["exit"], "3");
  const std::string tail = rec["stderr"];
  EXPECT_EQ(tail.size(), 4096u);
  EXPECT_EQ(tail.substr(tail.size() - 15), "the last words\n");
  EXPECT_EQ(tail.substr(0, 16), std::string(16, '\0'));
  EXPECT_TRUE(Logged("job.failed queue=q job=" + rec["id"])) << env_.DaemonLog();
  EXPECT_EQ(StatCounter(env_.redis, "q", "failed"), 1);
  EXPECT_TRUE(Exists(env_.failed + "/loud.txt"));
  ExpectHealthy();
  EXPECT_EQ(env_.Stop(), 0);
}

TEST_F(HostileHandlerTest, HandlerThatClosesStdoutAndStderrAndKeepsRunning) {
  const std::string marker = sync_ + "/still-ran";
  const std::string script = WriteScript(env_.tmp.Sub("mute.sh"),
                                         "echo 'going quiet' >&2\n"
                                         "exec >&- 2>&-\n"
                                         "sleep 1\n"
                                         "cat \"$1\" > \"$2\"\n"
                                         "exit 0\n");
  Start("exec: [\"" + script + "\", \"{path}\", \"" + marker + "\"]\ntimeout: 20s");
  WriteFile(env_.inbox + "/mute.txt", "muted\n");
  auto rec = WaitFinished("mute.txt");
  ASSERT_EQ(rec["state"], "done") << env_.DaemonLog();
  EXPECT_EQ(rec["result"], "ok");
  // The job waited for the process, not for the end of its stderr.
  EXPECT_GE(std::stoll(rec["ms"]), 1000);
  EXPECT_EQ(ReadFile(marker), "muted\n");
  EXPECT_TRUE(Exists(env_.done + "/mute.txt"));
  EXPECT_TRUE(Logged("job.done queue=q job=" + rec["id"])) << env_.DaemonLog();
  EXPECT_EQ(StatCounter(env_.redis, "q", "done"), 1);
  ExpectHealthy();
  EXPECT_EQ(env_.Stop(), 0);
}

// The handler leaves a daemon behind: in a new session (so outside the
// handler's process group), holding the handler's stderr pipe and the file
// open. The daemon writes to stderr before it publishes its pid: once the
// handler has exited, dropqd closes its end of the pipe and a later write
// would end the daemon with SIGPIPE. The handler exits 0 at once. The job
// must complete without waiting for the daemon's end of the pipe. dropqd does
// not kill the daemon: it left the process group, and kills happen only on a
// timeout or a cancel. The test kills it.
TEST_F(HostileHandlerTest, EscapedDaemonDoesNotHoldTheJob) {
  const std::string pidfile = sync_ + "/daemon.pid";
  const std::string script = WriteScript(
      env_.tmp.Sub("fork.sh"),
      "setsid sh -c 'exec 3<\"$1\"; echo \"daemon started\" >&2\n"
      "  echo $$ > \"$2.tmp\"; mv \"$2.tmp\" \"$2\"; exec sleep 30' sh \"$1\" \"$2\" &\n"
      "while [ ! -e \"$2\" ]; do sleep 0.02; done\n"
      "echo 'handler exits' >&2\n"
      "exit 0\n");
  Start("exec: [\"" + script + "\", \"{path}\", \"" + pidfile + "\"]\ntimeout: 30s");
  WriteFile(env_.inbox + "/forks.txt", "f\n");
  auto rec = WaitFinished("forks.txt", seconds(15));
  const pid_t daemon = ReadPid(pidfile);
  struct Killer {
    pid_t pid;
    ~Killer() {
      if (pid > 0) ::kill(pid, SIGKILL);
    }
  } killer{daemon};
  ASSERT_EQ(rec["state"], "done") << env_.DaemonLog();
  EXPECT_EQ(rec["result"], "ok");
  std::cout << "[ measure  ] job with an escaped daemon: ms=" << rec["ms"] << "\n";
  EXPECT_LT(std::stoll(rec["ms"]), 5000);
  EXPECT_TRUE(Exists(env_.done + "/forks.txt"));
  EXPECT_TRUE(Logged("job.done queue=q job=" + rec["id"])) << env_.DaemonLog();
  EXPECT_EQ(StatCounter(env_.redis, "q", "done"), 1);
  ASSERT_GT(daemon, 0);
  EXPECT_FALSE(ProcessGone(daemon)) << "dropqd (or someone) killed the escaped daemon";
  // dropqd keeps working while the daemon lives on.
  WriteFile(env_.inbox + "/next.txt", "n\n");
  EXPECT_EQ(WaitFinished("next.txt")["state"], "done") << env_.DaemonLog();
  ExpectHealthy();
  EXPECT_EQ(env_.Stop(), 0);
  std::cout << "[ measure  ] escaped daemon " << (ProcessGone(daemon) ? "gone" : "still running")
            << " after dropqd stopped\n";
}

// The handler waits for the test, then reads its file: by then the test has
// removed it. The run fails with what cat said; there is nothing to move.
TEST_F(HostileHandlerTest, FileRemovedWhileItsHandlerRuns) {
  const std::string script = WriteScript(env_.tmp.Sub("slow.sh"),
                                         "printf '%s' \"$1\" > \"$2/path.tmp\"\n"
                                         "mv \"$2/path.tmp\" \"$2/path\"\n"
                                         "i=0; while [ ! -e \"$2/go\" ] && [ $i -lt 500 ]; do\n"
                                         "  sleep 0.02; i=$((i+1)); done\n"
                                         "cat \"$1\" > /dev/null || exit 4\n");
  Start("exec: [\"" + script + "\", \"{path}\", \"" + sync_ + "\"]\ntimeout: 30s");
  WriteFile(env_.inbox + "/doomed.txt", "d\n");
  ASSERT_TRUE(WaitFor([&] { return Exists(sync_ + "/path"); })) << env_.DaemonLog();
  const std::string path = ReadFile(sync_ + "/path");
  ASSERT_EQ(::unlink(path.c_str()), 0) << path << ": " << std::strerror(errno);
  WriteFile(sync_ + "/go", "");

  auto rec = WaitFinished("doomed.txt");
  ASSERT_EQ(rec["state"], "failed") << env_.DaemonLog();
  EXPECT_EQ(rec["result"], "exit");
  EXPECT_EQ(rec["exit"], "4");
  EXPECT_NE(rec["stderr"].find("No such file or directory"), std::string::npos) << rec["stderr"];
  std::cout << "[ measure  ] removed file: dispose_error=" << rec["dispose_error"]
            << " disposed_to=" << rec["disposed_to"] << "\n";
  EXPECT_FALSE(rec["dispose_error"].empty()) << "the missing file is not recorded";
  EXPECT_TRUE(ListDir(env_.failed).empty());
  EXPECT_TRUE(Logged("job.failed queue=q job=" + rec["id"])) << env_.DaemonLog();
  EXPECT_EQ(StatCounter(env_.redis, "q", "failed"), 1);
  ExpectHealthy();
  EXPECT_EQ(env_.Stop(), 0);
}

// Root reads any file whatever its mode, so the handler runs as nobody
// (setpriv): the test makes the file mode 000 while the handler waits. The
// run fails with "Permission denied"; dropqd (root) still moves the file.
TEST_F(HostileHandlerTest, FileMadeUnreadableWhileItsHandlerRuns) {
  ASSERT_EQ(::access("/usr/bin/setpriv", X_OK), 0) << "util-linux setpriv is needed";
  ASSERT_EQ(::chmod(env_.tmp.path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(sync_.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(env_.inbox.c_str(), 0755), 0);
  const std::string script = WriteScript(env_.tmp.Sub("slow.sh"),
                                         "printf '%s' \"$1\" > \"$2/path.tmp\"\n"
                                         "mv \"$2/path.tmp\" \"$2/path\"\n"
                                         "i=0; while [ ! -e \"$2/go\" ] && [ $i -lt 500 ]; do\n"
                                         "  sleep 0.02; i=$((i+1)); done\n"
                                         "cat \"$1\" > /dev/null || exit 4\n");
  Start(
      "exec: [\"/usr/bin/setpriv\", \"--reuid=65534\", \"--regid=65534\", "
      "\"--clear-groups\", \"/bin/sh\", \"" +
      script + "\", \"{path}\", \"" + sync_ + "\"]\ntimeout: 30s");
  WriteFile(env_.inbox + "/locked.txt", "secret\n");
  ASSERT_TRUE(WaitFor([&] { return Exists(sync_ + "/path"); })) << env_.DaemonLog();
  const std::string path = ReadFile(sync_ + "/path");
  ASSERT_EQ(::chmod(path.c_str(), 0), 0) << path << ": " << std::strerror(errno);
  WriteFile(sync_ + "/go", "");

  auto rec = WaitFinished("locked.txt");
  ASSERT_EQ(rec["state"], "failed") << env_.DaemonLog();
  EXPECT_EQ(rec["result"], "exit");
  EXPECT_EQ(rec["exit"], "4");
  EXPECT_NE(rec["stderr"].find("Permission denied"), std::string::npos) << rec["stderr"];
  EXPECT_EQ(rec["disposed_to"], env_.failed + "/locked.txt");
  struct stat st;
  ASSERT_EQ(::stat((env_.failed + "/locked.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0u);
  EXPECT_TRUE(Logged("job.failed queue=q job=" + rec["id"])) << env_.DaemonLog();
  EXPECT_EQ(StatCounter(env_.redis, "q", "failed"), 1);
  ExpectHealthy();
  EXPECT_EQ(env_.Stop(), 0);
}

// Removes `dir`, with paths that may be longer than PATH_MAX, one
// component at a time (std::filesystem::remove_all uses whole paths).
void RemoveTree(int parent_fd, const std::string& name) {
  const int fd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    ::unlinkat(parent_fd, name.c_str(), 0);
    return;
  }
  DIR* d = ::fdopendir(fd);
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  for (const std::string& n : names) RemoveTree(::dirfd(d), n);
  ::closedir(d);
  ::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR);
}

// `root` plus components of at most 201 bytes, `bytes` long in all.
std::string DeepDir(std::string root, size_t bytes) {
  while (bytes - root.size() > 256) root += "/" + std::string(200, 'd');
  return root + "/" + std::string(bytes - root.size() - 1, 'e');
}

// Removes a tree that std::filesystem::remove_all cannot (paths past PATH_MAX).
struct TreeRemover {
  std::string root;
  ~TreeRemover() { RemoveTree(AT_FDCWD, root); }
};

// A watched directory nested deep enough that the file's path is 4,095
// bytes: the longest a path can be (PATH_MAX counts the NUL).
TEST_F(HostileHandlerTest, PathOf4095Bytes) {
  constexpr size_t kPathBytes = 4095;
  const std::string name = std::string(190, 'n') + ".txt";  // 194 bytes
  const std::string dir = DeepDir(env_.tmp.Sub("deep"), kPathBytes - 1 - name.size());
  ASSERT_EQ(dir.size() + 1 + name.size(), kPathBytes);
  TreeRemover cleanup{env_.tmp.Sub("deep")};
  ASSERT_TRUE(std::filesystem::create_directories(dir));
  env_.inbox = dir;

  const std::string out = sync_ + "/out";
  const std::string script = WriteScript(
      env_.tmp.Sub("copy.sh"), "printf '%s' \"${#1}\" > \"$2.len\"\ncat \"$1\" > \"$2\"\n");
  Start("exec: [\"" + script + "\", \"{path}\", \"" + out + "\"]\ntimeout: 20s");

  WriteFile(dir + "/" + name, "deep content\n");
  auto rec = WaitFinished(name);
  std::cout << "[ measure  ] 4095-byte path: state=" << rec["state"] << " result=" << rec["result"]
            << " error=" << rec["error"] << " dispose_error=" << rec["dispose_error"] << "\n";
  ASSERT_EQ(rec["state"], "done") << env_.DaemonLog();
  EXPECT_EQ(rec["result"], "ok");
  EXPECT_EQ(ReadFile(out + ".len"), std::to_string(kPathBytes));
  EXPECT_EQ(ReadFile(out), "deep content\n");
  EXPECT_EQ(rec["disposed_to"], env_.done + "/" + name);
  EXPECT_TRUE(Exists(env_.done + "/" + name));
  EXPECT_TRUE(Logged("job.done queue=q job=" + rec["id"])) << env_.DaemonLog();
  EXPECT_EQ(StatCounter(env_.redis, "q", "done"), 1);

  // Still at work.
  WriteFile(dir + "/short.txt", "s\n");
  EXPECT_EQ(WaitFinished("short.txt")["state"], "done") << env_.DaemonLog();
  ExpectHealthy();
  EXPECT_EQ(env_.Stop(), 0);
}

// A name whose path is longer than PATH_MAX (made with openat) cannot even be
// named by dropqd: it must be a logged skip or a recorded error (the
// guarantees: bad input is a logged, counted skip), never a crash.
TEST_F(HostileHandlerTest, PathPastPathMax) {
  const std::string dir = DeepDir(env_.tmp.Sub("deep"), 3900);
  TreeRemover cleanup{env_.tmp.Sub("deep")};
  ASSERT_TRUE(std::filesystem::create_directories(dir));
  env_.inbox = dir;
  Start("builtin: noop");
  // Past PATH_MAX: 255 bytes of name in that directory (4,156 bytes in all).
  const std::string too_long = std::string(251, 'z') + ".txt";
  {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dfd, 0) << std::strerror(errno);
    const int fd = ::openat(dfd, too_long.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(::write(fd, "z\n", 2), 2);
    ::close(fd);
    ::close(dfd);
  }
  const std::string prefix = std::string(60, 'z');
  EXPECT_TRUE(WaitFor([&] { return Logged(prefix); }, seconds(10)))
      << "nothing logged about the name past PATH_MAX\n"
      << env_.DaemonLog();
  const std::string id = IdOf(too_long);
  if (!id.empty()) {
    auto r = WaitFinished(too_long);
    std::cout << "[ measure  ] path past PATH_MAX: state=" << r["state"]
              << " result=" << r["result"] << " error=" << r["error"] << "\n";
    EXPECT_TRUE(r["state"] == "done" || r["state"] == "failed") << r["state"];
  } else {
    std::cout << "[ measure  ] path past PATH_MAX: no job; log lines:\n";
    for (const std::string& l : SplitLines(env_.DaemonLog())) {
      if (l.find(prefix) != std::string::npos) std::cout << "  " << l.substr(0, 160) << "...\n";
    }
  }
  // Still at work.
  WriteFile(dir + "/short.txt", "s\n");
  EXPECT_EQ(WaitFinished("short.txt")["state"], "done") << env_.DaemonLog();
  ExpectHealthy();
  EXPECT_EQ(env_.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
