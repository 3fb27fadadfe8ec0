// ExecHandler and SpawnAndWait against real child processes: argv passed
// byte for byte, exit codes and signals, the stderr tail, the environment,
// stdin, timeouts and cancels killing the whole process group, and no
// descriptor leaking into the child. Also MakeHandler() and the noop handler.
#include "workers/exec_handler.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait_for.h"
#include "workers/cancel_token.h"
#include "workers/handler.h"
#include "workers/spawn.h"

namespace dropq {
namespace {

using std::chrono::milliseconds;
using test::Exists;
using test::ReadFile;
using test::TempDir;
using test::WaitFor;
using test::WriteFile;

// Splits `s` at every NUL; each piece ends with one.
std::vector<std::string> SplitNul(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    const std::size_t end = s.find('\0', start);
    if (end == std::string::npos) break;
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The number in a file a child wrote ("1234\n"), or -1.
pid_t ReadPid(const std::string& path) {
  const std::string s = ReadFile(path);
  if (s.empty()) return -1;
  return static_cast<pid_t>(std::atol(s.c_str()));
}

// True once `pid` no longer runs: gone, or a zombie waiting for a parent
// that does not reap (PID 1 of a container may never do it).
bool Dead(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;
  const char state = stat[paren + 2];
  return state == 'Z' || state == 'X';
}

class ExecHandlerTest : public ::testing::Test {
 protected:
  ExecHandlerTest() : watch_(tmp_.Mkdir("in")), out_(tmp_.Sub("out")) {
    // Writes each of its arguments but the first, NUL-terminated, to the file
    // named by the first: what the handler program received, byte for byte.
    recorder_ =
        Script("record.sh", "out=$1; shift\nfor a; do printf '%s\\0' \"$a\"; done > \"$out\"\n");
  }

  // Writes an executable /bin/sh script into the temp dir; returns its path.
  std::string Script(const std::string& name, const std::string& body, mode_t mode = 0755) {
    const std::string path = tmp_.Sub(name);
    WriteFile(path, "#!/bin/sh\n" + body);
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  QueueConfig Queue(std::vector<std::string> argv,
                    milliseconds timeout = std::chrono::seconds(60)) {
    QueueConfig q;
    q.name = "q1";
    q.watch = watch_;
    q.handler.kind = HandlerConfig::Kind::kExec;
    q.handler.argv = std::move(argv);
    q.handler.timeout = timeout;
    return q;
  }

  std::unique_ptr<Handler> Make(const QueueConfig& q) {
    auto h = MakeHandler(q, "inst-1");
    EXPECT_TRUE(h.ok()) << (h.ok() ? "" : h.error().what);
    return h.ok() ? std::move(h).value() : nullptr;
  }

  static Job MakeJob(const std::string& name) {
    Job j;
    j.id = "job-7f3a";
    j.queue = "q1";
    j.name = name;
    j.attempt = 2;
    return j;
  }

  // Creates the file `name` in the watched directory and runs `q` on it.
  Outcome RunOn(const QueueConfig& q, const std::string& name = "a.txt") {
    WriteFile(watch_ + "/" + name, "data");
    auto h = Make(q);
    if (!h) return Outcome{};
    return h->Run(MakeJob(name), watch_ + "/" + name, -1, cancel_);
  }

  TempDir tmp_;
  const std::string watch_;
  const std::string out_;
  std::string recorder_;
  CancelToken cancel_;
};

TEST_F(ExecHandlerTest, HostileNamesArriveAsOneArgumentEach) {
  const std::string name =
      "-rf a b'c\"d $(touch PWNED) `touch PWNED2` ;|&*?\nline2 \xff\xfe\x80.tar.txt";
  const Outcome o = RunOn(
      Queue({recorder_, out_, "{path}", "{name}", "{stem}", "{ext}", "{dir}", "{queue}", "{job_id}",
             "{attempt}", "--x={name}=y", "{{literal}}", "plain arg with spaces", ""}),
      name);
  ASSERT_EQ(o.result, RunResult::kOk) << o.error << o.stderr_tail;
  const std::vector<std::string> want = {watch_ + "/" + name,
                                         name,
                                         name.substr(0, name.size() - 4),
                                         "txt",
                                         watch_,
                                         "q1",
                                         "job-7f3a",
                                         "2",
                                         "--x=" + name + "=y",
                                         "{literal}",
                                         "plain arg with spaces",
                                         ""};
  EXPECT_EQ(SplitNul(ReadFile(out_)), want);
  for (const std::string& dir : {tmp_.path(), watch_, std::string(".")}) {
    EXPECT_FALSE(Exists(dir + "/PWNED")) << dir;
    EXPECT_FALSE(Exists(dir + "/PWNED2")) << dir;
  }
}

TEST_F(ExecHandlerTest, ExitZeroIsOkWithTimings) {
  const int64_t before = NowUnixMs();
  const Outcome o = RunOn(Queue({"/bin/sh", "-c", "exit 0"}));
  EXPECT_EQ(o.result, RunResult::kOk);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.signal, 0);
  EXPECT_TRUE(o.error.empty()) << o.error;
  EXPECT_GE(o.started_ms, before);
  EXPECT_LE(o.started_ms, NowUnixMs());
  EXPECT_GE(o.duration_ms, 0);
}

TEST_F(ExecHandlerTest, NonZeroExitIsReported) {
  const Outcome o = RunOn(Queue({"/bin/sh", "-c", "echo oops >&2; exit 3"}));
  EXPECT_EQ(o.result, RunResult::kExit);
  EXPECT_EQ(o.exit_code, 3);
  EXPECT_EQ(o.stderr_tail, "oops\n");
}

TEST_F(ExecHandlerTest, BareProgramNameIsLookedUpInPath) {
  const Outcome o = RunOn(Queue({"sh", "-c", "exit 4"}));
  EXPECT_EQ(o.result, RunResult::kExit);
  EXPECT_EQ(o.exit_code, 4);
}

// The child gets default dispositions and an empty mask whatever dropqd
// ignores or blocks: a shell started with SIGINT ignored could not even be
// killed by it (POSIX), one with SIGTERM blocked would exit 0.
TEST_F(ExecHandlerTest, KilledBySignalWithDefaultDispositionsAndEmptyMask) {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  struct sigaction old_int {};
  ASSERT_EQ(::sigaction(SIGINT, &ign, &old_int), 0);
  sigset_t term, old_mask;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &old_mask), 0);

  const Outcome by_int = RunOn(Queue({"/bin/sh", "-c", "kill -INT $$; exit 0"}));
  const Outcome by_term = RunOn(Queue({"/bin/sh", "-c", "kill -TERM $$; exit 0"}));

  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);

  EXPECT_EQ(by_int.result, RunResult::kSignal);
  EXPECT_EQ(by_int.signal, SIGINT);
  EXPECT_EQ(by_term.result, RunResult::kSignal);
  EXPECT_EQ(by_term.signal, SIGTERM);
}

TEST_F(ExecHandlerTest, StderrTailKeepsTheLast4096Bytes) {
  std::string big;
  for (int i = 0; i < 10 * 1024; ++i) big.push_back(static_cast<char>('!' + i % 89));
  WriteFile(tmp_.Sub("big"), big);
  const Outcome o = RunOn(Queue({"/bin/sh", "-c", "cat \"$1\" >&2", "sh", tmp_.Sub("big")}));
  ASSERT_EQ(o.result, RunResult::kOk) << o.error;
  ASSERT_EQ(o.stderr_tail.size(), kStderrTailBytes);
  EXPECT_EQ(o.stderr_tail, big.substr(big.size() - 4096));
}

TEST_F(ExecHandlerTest, LargeStderrNeverBlocksTheChild) {
  // 4 MiB, far more than a pipe holds: the handler must read all along.
  const Outcome o =
      RunOn(Queue({"/bin/sh", "-c", "head -c 4194304 /dev/zero >&2; printf END >&2; exit 5"}));
  EXPECT_EQ(o.result, RunResult::kExit);
  EXPECT_EQ(o.exit_code, 5);
  ASSERT_EQ(o.stderr_tail.size(), kStderrTailBytes);
  EXPECT_EQ(o.stderr_tail.substr(4093), "END");
  EXPECT_EQ(o.stderr_tail.substr(0, 4093), std::string(4093, '\0'));
}

TEST_F(ExecHandlerTest, GrandchildHoldingStderrDoesNotBlockTheRun) {
  const std::string pidfile = tmp_.Sub("grandchild.pid");
  const Outcome o = RunOn(Queue(
      {"/bin/sh", "-c", "sleep 1000 & echo $! > \"$1\"; echo done >&2; exit 0", "sh", pidfile}));
  EXPECT_EQ(o.result, RunResult::kOk) << o.error;
  EXPECT_EQ(o.stderr_tail, "done\n");
  const pid_t grandchild = ReadPid(pidfile);
  ASSERT_GT(grandchild, 0);
  EXPECT_FALSE(Dead(grandchild));  // left alone: only a timeout or cancel kills the group
  ::kill(grandchild, SIGKILL);
}

TEST_F(ExecHandlerTest, EnvironmentHasDropqVariables) {
  ASSERT_EQ(::setenv("DROPQ_QUEUE", "inherited-must-be-replaced", 1), 0);
  ASSERT_EQ(::setenv("DROPQ_TEST_INHERITED", "yes", 1), 0);
  const QueueConfig q = Queue({"/bin/sh", "-c", "env > \"$1\"", "sh", out_});
  auto h = Make(q);  // takes its environ snapshot here
  ::unsetenv("DROPQ_QUEUE");
  ::unsetenv("DROPQ_TEST_INHERITED");
  ASSERT_TRUE(h);
  WriteFile(watch_ + "/a b.txt", "x");
  const Outcome o = h->Run(MakeJob("a b.txt"), watch_ + "/a b.txt", -1, cancel_);
  ASSERT_EQ(o.result, RunResult::kOk) << o.error;

  const std::vector<std::string> lines = SplitLines(ReadFile(out_));
  auto count = [&](const std::string& line) {
    return std::count(lines.begin(), lines.end(), line);
  };
  auto count_prefix = [&](const std::string& prefix) {
    return std::count_if(lines.begin(), lines.end(),
                         [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
  };
  EXPECT_EQ(count("DROPQ_PATH=" + watch_ + "/a b.txt"), 1);
  EXPECT_EQ(count("DROPQ_JOB_ID=job-7f3a"), 1);
  EXPECT_EQ(count("DROPQ_QUEUE=q1"), 1);
  EXPECT_EQ(count_prefix("DROPQ_QUEUE="), 1);
  EXPECT_EQ(count("DROPQ_ATTEMPT=2"), 1);
  EXPECT_EQ(count("DROPQ_INSTANCE=inst-1"), 1);
  EXPECT_EQ(count("DROPQ_TEST_INHERITED=yes"), 1);
  EXPECT_GE(count_prefix("PATH="), 1);
}

TEST_F(ExecHandlerTest, StdinIsDevNull) {
  // `head` would wait on an inherited terminal or pipe; on /dev/null it reads
  // end of file at once. Bounded, should stdin ever be an endless device.
  const Outcome o = RunOn(Queue(
      {"/bin/sh", "-c", "readlink /proc/self/fd/0 > \"$1\"; head -c 16 >> \"$1\"", "sh", out_},
      std::chrono::seconds(20)));
  ASSERT_EQ(o.result, RunResult::kOk) << o.error;
  EXPECT_EQ(ReadFile(out_), "/dev/null\n");
}

TEST_F(ExecHandlerTest, NoDescriptorLeaksIntoTheChild) {
  // Descriptors without O_CLOEXEC, as a careless library would leave them.
  const int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 0);
  ASSERT_EQ(::dup2(leaked, 40), 40);
  const Outcome o =
      RunOn(Queue({"/bin/sh", "-c",
                   "ls /proc/self/fd > \"$1\"; readlink /proc/$$/fd/2 > \"$1.err\"", "sh", out_}));
  ::close(leaked);
  ::close(40);
  ASSERT_EQ(o.result, RunResult::kOk) << o.error << o.stderr_tail;
  // 0, 1 and 2, plus the directory ls itself opens to list them.
  const std::vector<std::string> fds = SplitLines(ReadFile(out_));
  EXPECT_EQ(std::set<std::string>(fds.begin(), fds.end()),
            (std::set<std::string>{"0", "1", "2", "3"}));
  EXPECT_EQ(ReadFile(out_ + ".err").rfind("pipe:", 0), 0u) << ReadFile(out_ + ".err");
}

TEST_F(ExecHandlerTest, TimeoutKillsTheHandlerAndItsChildren) {
  const std::string child_pid = tmp_.Sub("child.pid");
  const std::string self_pid = tmp_.Sub("self.pid");
  const Outcome o = RunOn(Queue({"/bin/sh", "-c",
                                 "sleep 1000 & echo $! > \"$1\"; echo $$ > \"$2\"; "
                                 "echo started >&2; sleep 1000",
                                 "sh", child_pid, self_pid},
                                milliseconds(1000)));
  EXPECT_EQ(o.result, RunResult::kTimeout);
  EXPECT_EQ(o.signal, SIGKILL);
  EXPECT_EQ(o.error, "timeout after 1000ms");
  EXPECT_EQ(o.stderr_tail, "started\n");
  EXPECT_GE(o.duration_ms, 1000);
  const pid_t child = ReadPid(child_pid);
  const pid_t self = ReadPid(self_pid);
  ASSERT_GT(child, 0);
  ASSERT_GT(self, 0);
  EXPECT_TRUE(Dead(self));  // reaped by Run()
  EXPECT_TRUE(WaitFor([&] { return Dead(child); }, std::chrono::seconds(10)));
  if (!Dead(child)) ::kill(child, SIGKILL);
}

TEST_F(ExecHandlerTest, CancelInterruptsPromptly) {
  const std::string pids = tmp_.Sub("pids");
  auto h = Make(Queue({"/bin/sh", "-c", "sleep 1000 & echo $! > \"$1\"; sleep 1000", "sh", pids},
                      std::chrono::minutes(10)));
  ASSERT_TRUE(h);
  WriteFile(watch_ + "/a.txt", "x");
  Outcome o;
  std::thread worker([&] { o = h->Run(MakeJob("a.txt"), watch_ + "/a.txt", -1, cancel_); });
  const bool started = WaitFor([&] { return ReadPid(pids) > 0; });
  const int64_t t0 = MonoMs();
  cancel_.Cancel();
  worker.join();
  ASSERT_TRUE(started);
  EXPECT_EQ(o.result, RunResult::kInterrupted);
  EXPECT_EQ(o.signal, SIGKILL);
  // Far below the 10 minute timeout: the cancel, not the deadline, ended it.
  EXPECT_LT(MonoMs() - t0, 10000);
  const pid_t child = ReadPid(pids);
  EXPECT_TRUE(WaitFor([&] { return Dead(child); }, std::chrono::seconds(10)));
  if (!Dead(child)) ::kill(child, SIGKILL);
}

TEST_F(ExecHandlerTest, CancelledBeforeStartSpawnsNothing) {
  cancel_.Cancel();
  const Outcome o = RunOn(Queue({"/bin/sh", "-c", "touch \"$1\"", "sh", out_}));
  EXPECT_EQ(o.result, RunResult::kInterrupted);
  EXPECT_FALSE(Exists(out_));
}

TEST_F(ExecHandlerTest, MissingProgramIsAnError) {
  const Outcome o = RunOn(Queue({"/nonexistent/dropq-prog", "{path}"}));
  EXPECT_EQ(o.result, RunResult::kError);
  EXPECT_NE(o.error.find("/nonexistent/dropq-prog"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("No such file or directory"), std::string::npos) << o.error;

  const Outcome bare = RunOn(Queue({"dropq-no-such-program-here", "{path}"}));
  EXPECT_EQ(bare.result, RunResult::kError);
  EXPECT_NE(bare.error.find("dropq-no-such-program-here"), std::string::npos) << bare.error;
}

TEST_F(ExecHandlerTest, NonExecutableProgramIsAnError) {
  const std::string prog = Script("not-exec.sh", "exit 0\n", 0644);
  const Outcome o = RunOn(Queue({prog}));
  EXPECT_EQ(o.result, RunResult::kError);
  EXPECT_NE(o.error.find(prog), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("Permission denied"), std::string::npos) << o.error;
}

TEST_F(ExecHandlerTest, ConcurrentRunsShareOneHandler) {
  auto h = Make(Queue({recorder_, tmp_.Sub("out-{job_id}"), "{name}", "{job_id}"}));
  ASSERT_TRUE(h);
  constexpr int kThreads = 8;
  constexpr int kRuns = 5;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRuns; ++r) {
        Job j = MakeJob("f" + std::to_string(t) + " " + std::to_string(r));
        j.id = "j" + std::to_string(t) + "-" + std::to_string(r);
        const Outcome o = h->Run(j, watch_ + "/" + j.name, -1, cancel_);
        if (o.result == RunResult::kOk &&
            SplitNul(ReadFile(tmp_.Sub("out-" + j.id))) == std::vector<std::string>{j.name, j.id}) {
          ++ok;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kRuns);
}

TEST_F(ExecHandlerTest, SpawnAndWaitReportsThePid) {
  SpawnRequest req{{"/bin/sh", "-c", "echo $$ > \"$1\"", "sh", out_}, {}, 10000};
  const ChildResult c = SpawnAndWait(req, cancel_);
  EXPECT_EQ(c.result, RunResult::kOk) << c.error;
  EXPECT_GT(c.pid, 0);
  EXPECT_EQ(ReadPid(out_), c.pid);  // the shell itself, leader of its own group
}

TEST(MakeHandlerTest, NoopSucceeds) {
  QueueConfig q;
  q.name = "q";
  q.handler.kind = HandlerConfig::Kind::kNoop;
  auto h = MakeHandler(q, "i");
  ASSERT_TRUE(h.ok());
  CancelToken cancel;
  const int64_t before = NowUnixMs();
  const Outcome o = (*h)->Run(Job{}, "/nonexistent", -1, cancel);
  EXPECT_EQ(o.result, RunResult::kOk);
  EXPECT_GE(o.started_ms, before);
  EXPECT_GE(o.duration_ms, 0);
}

TEST(MakeHandlerTest, ExecWithoutProgramIsRefused) {
  QueueConfig q;
  q.name = "q";
  q.handler.kind = HandlerConfig::Kind::kExec;
  auto h = MakeHandler(q, "i");
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().code, Errc::kConfig);
}

}  // namespace
}  // namespace dropq
