// After a kill -9, the restarted dropqd finds the handlers its predecessor
// left running (by DROPQ_INSTANCE and DROPQ_NAMESPACE in /proc/*/environ),
// kills them before their jobs run again, so two runs never overlap; and a
// second live dropqd of the same instance and namespace is refused.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <string>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

TEST(OrphanTest, RestartKillsOrphanedHandlersBeforeRunningTheirJobsAgain) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log"), go = env.tmp.Sub("go");
  const std::string pids = env.tmp.Mkdir("pids");
  // Logs "start", records its pid, waits for `go`, logs "end".
  const std::string script = WriteScript(env.tmp.Sub("gate.sh"),
                                         "printf 'start %s\\n' \"$3\" >> \"$2\"\n"
                                         "echo $$ > \"$4/$3.$$\"\n"
                                         "while [ ! -e \"$1\" ]; do sleep 0.05; done\n"
                                         "printf 'end %s\\n' \"$3\" >> \"$2\"\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + go + "\", \"" + log +
              "\", \"{name}\", \"" + pids + "\"]";
  q.workers = 2;
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  // A second dropqd of the same instance and namespace is refused.
  const CommandResult second = RunCommand({DROPQD_BIN, "--config", env.config}, seconds(10));
  EXPECT_EQ(second.status, 1);
  // Log values are escaped: a space is \x20.
  EXPECT_NE(second.err.find("dropqd.start_failed err=another\\x20dropqd\\x20runs\\x20as"
                            "\\x20instance\\x20test-1"),
            std::string::npos)
      << second.err;

  WriteFile(env.inbox + "/a.txt", "a");
  WriteFile(env.inbox + "/b.txt", "b");
  ASSERT_TRUE(WaitFor([&] { return ListDir(pids).size() == 2; }, seconds(20))) << env.DaemonLog();
  std::vector<pid_t> orphans;
  for (const std::string& f : ListDir(pids)) {
    pid_t pid = -1;
    ASSERT_TRUE(WaitFor([&] { return (pid = ReadPid(pids + "/" + f)) > 0; })) << f;
    orphans.push_back(pid);
  }
  // Both runs have gone on past the 20 ms after which their start is
  // recorded (docs/guarantees.md): the kill cuts short runs that counted.
  ASSERT_TRUE(WaitFor([&] {
    const auto ids = JobIdsByName(env.redis, "q");
    if (ids.size() != 2) return false;
    for (const auto& [name, id] : ids) {
      if (JobRecord(env.redis, "q", id.at(0))["attempt"] != "1") return false;
    }
    return true;
  })) << env.DaemonLog();
  ASSERT_EQ(env.Stop(SIGKILL, seconds(10)), 128 + SIGKILL);
  for (pid_t pid : orphans) EXPECT_FALSE(ProcessGone(pid)) << "the handler outlives dropqd";

  // The restart kills the orphans first; only then do their jobs run again.
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  for (pid_t pid : orphans) {
    EXPECT_TRUE(WaitFor([&] { return ProcessGone(pid); }, seconds(10))) << pid;
  }
  // The two handlers, and whatever child each had at that moment.
  EXPECT_NE(env.DaemonLog().find("orphans.found instance=test-1 count="), std::string::npos)
      << env.DaemonLog();
  WriteFile(go, "");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 2; }, seconds(30)))
      << env.DaemonLog();
  // Each file: two starts (the orphan's and the re-run's), one end: the
  // orphan never finished, so the runs did not overlap to completion.
  std::map<std::string, int> starts, ends;
  for (const std::string& line : ReadLines(log)) {
    if (line.rfind("start ", 0) == 0) ++starts[line.substr(6)];
    if (line.rfind("end ", 0) == 0) ++ends[line.substr(4)];
  }
  EXPECT_EQ(starts, (std::map<std::string, int>{{"a.txt", 2}, {"b.txt", 2}}));
  EXPECT_EQ(ends, (std::map<std::string, int>{{"a.txt", 1}, {"b.txt", 1}}));
  for (const auto& [name, ids] : JobIdsByName(env.redis, "q")) {
    auto rec = JobRecord(env.redis, "q", ids.at(0));
    EXPECT_EQ(rec["state"], "done") << name;
    EXPECT_EQ(rec["attempt"], "2") << name;
    EXPECT_EQ(rec["interrupted"], "1") << name;
  }
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
