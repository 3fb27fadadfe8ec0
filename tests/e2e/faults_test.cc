// Real faults: dropqd killed with SIGKILL while handlers run (the next start
// takes back the jobs it left active and runs them again), and Redis going
// away while files arrive (they are processed once it is back). No file is
// lost and none is processed twice to completion.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

TEST(FaultsTest, KilledDaemonsActiveJobsRunAgainAfterRestart) {
  constexpr int kFiles = 10;
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log"), go = env.tmp.Sub("go");
  const std::string pids = env.tmp.Mkdir("pids");
  // Logs "start", records its pid, waits for `go`, logs "end".
  const std::string script = WriteScript(env.tmp.Sub("gate.sh"),
                                         "printf 'start %s\\n' \"$3\" >> \"$2\"\n"
                                         "echo $$ > \"$4/$3\"\n"
                                         "while [ ! -e \"$1\" ]; do sleep 0.05; done\n"
                                         "printf 'end %s\\n' \"$3\" >> \"$2\"\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + go + "\", \"" + log +
              "\", \"{name}\", \"" + pids + "\"]";
  q.workers = 2;
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  std::set<std::string> names;
  for (int i = 0; i < kFiles; ++i) {
    const std::string n = "f-" + std::to_string(i) + ".txt";
    names.insert(n);
    WriteFile(env.inbox + "/" + n, n);
  }
  ASSERT_TRUE(WaitFor([&] { return ListDir(pids).size() == 2; }, seconds(20))) << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "enqueued") == kFiles; }));
  const std::vector<std::string> running = ListDir(pids);
  for (const std::string& n : running) {
    ASSERT_TRUE(WaitFor([&] { return ReadPid(pids + "/" + n) > 0; })) << n;
  }
  std::map<std::string, std::string> id_of;
  for (const auto& [name, ids] : JobIdsByName(env.redis, "q")) id_of[name] = ids.at(0);
  for (const std::string& n : running) {
    ASSERT_TRUE(WaitFor([&] { return JobRecord(env.redis, "q", id_of[n])["attempt"] == "1"; }));
  }

  ASSERT_EQ(env.Stop(SIGKILL, seconds(10)), 128 + SIGKILL);
  // Its handlers outlive it (each leads its own process group); the operator
  // (here: the test) stops them before starting again.
  for (const std::string& n : running) {
    const pid_t pid = ReadPid(pids + "/" + n);
    ASSERT_GT(pid, 0);
    ::kill(-pid, SIGKILL);
    EXPECT_TRUE(WaitFor([&] { return ProcessGone(pid); }, seconds(10)));
  }
  // Redis still says what the dead daemon held: those, and only those, come
  // back marked interrupted (running, or claimed and waiting in its memory).
  const std::vector<std::string> held =
      env.redis.CmdList({"ZRANGE", DropqEnv::Key("q", "active"), "0", "-1"});
  EXPECT_GT(held.size(), 0u);
  for (const std::string& n : running)
    EXPECT_EQ(JobRecord(env.redis, "q", id_of[n])["state"], "active");

  WriteFile(go, "");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == kFiles; }, seconds(30)))
      << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("job.requeued queue=q count="), std::string::npos)
      << env.DaemonLog();

  std::map<std::string, int> ends;
  for (const std::string& line : ReadLines(log)) {
    if (line.rfind("end ", 0) == 0) ++ends[line.substr(4)];
  }
  EXPECT_EQ(ends.size(), names.size());
  for (const auto& [n, c] : ends) EXPECT_EQ(c, 1) << n;
  for (const std::string& n : names) {
    auto rec = JobRecord(env.redis, "q", id_of[n]);
    EXPECT_EQ(rec["state"], "done") << n;
    const bool was_running = std::count(running.begin(), running.end(), n) > 0;
    EXPECT_EQ(rec["attempt"], was_running ? "2" : "1") << n;
    const bool was_held = std::count(held.begin(), held.end(), id_of[n]) > 0;
    EXPECT_TRUE(!was_running || was_held) << n;
    EXPECT_EQ(rec["interrupted"], was_held ? "1" : "") << n;
  }
  EXPECT_EQ(JobIds(env.redis, "q").size(), names.size());
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), kFiles);
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "active")}), 0);
  EXPECT_EQ(ListDir(env.done).size(), names.size());
  EXPECT_EQ(env.Stop(), 0);
}

TEST(FaultsTest, FilesArrivingWhileRedisIsDownAreProcessedWhenItIsBack) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  const std::string script =
      WriteScript(env.tmp.Sub("handler.sh"), "printf '%s\\n' \"$2\" >> \"$1\"\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\"]";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/before.txt", "x");
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/before.txt"); }, seconds(20)));

  env.redis.Stop(/*hard=*/true);
  std::set<std::string> names = {"before.txt"};
  for (int i = 0; i < 20; ++i) {
    const std::string n = "during-" + std::to_string(i) + ".txt";
    names.insert(n);
    WriteFile(env.inbox + "/" + n, n);
  }
  // dropqd keeps running without Redis, and takes nothing it cannot record:
  // the files wait on disk for the scan after Redis is back. A file seen
  // before dropqd noticed the connection gone fails its ENQUEUE; one seen
  // after is not sent (logged once per outage).
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string log = env.DaemonLog();
        return log.find("enqueue.deferred queue=q") != std::string::npos ||
               log.find("enqueue.failed queue=q") != std::string::npos;
      },
      seconds(10)))
      << env.DaemonLog();
  EXPECT_TRUE(env.daemon()->running());
  EXPECT_EQ(ListDir(env.done), std::vector<std::string>{"before.txt"});

  // Redis is back (empty: the test server keeps nothing on disk).
  ASSERT_TRUE(env.redis.Restart());
  ASSERT_TRUE(WaitFor([&] { return ListDir(env.done).size() == names.size(); }, seconds(30)))
      << env.DaemonLog();
  EXPECT_TRUE(ListDir(env.inbox).empty());
  const auto runs = Tally(ReadLines(log));
  EXPECT_EQ(runs.size(), names.size());
  for (const std::string& n : names) EXPECT_EQ(runs.count(n) ? runs.at(n) : 0, 1) << n;
  EXPECT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 20; }));
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
