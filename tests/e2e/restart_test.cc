// Files present before dropqd starts are found by the start-up scan, and a
// restart never processes an acknowledged file again, also when the files
// stay in the watched directory (on_success: keep): only a file whose
// content changed since is processed again, after a restart as well as live.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

std::string Name(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "k-%02d.txt", i);
  return buf;
}

// A handler that logs each file name it was run on.
QueueSpec LoggingQueue(DropqEnv& env, const std::string& log) {
  const std::string script =
      WriteScript(env.tmp.Sub("handler.sh"), "printf '%s\\n' \"$2\" >> \"$1\"\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\"]";
  return q;
}

TEST(RestartTest, StartUpScanTakesFilesThatWereThereBefore) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  env.WriteConfig(LoggingQueue(env, log));

  std::set<std::string> names;
  for (int i = 0; i < 20; ++i) {
    WriteFile(env.inbox + "/" + Name(i), "before the start " + std::to_string(i) + "\n");
    ASSERT_TRUE(SetAge(env.inbox + "/" + Name(i), seconds(60)));
    names.insert(Name(i));
  }
  // One written just now: it may still be open for writing as far as a scan
  // can tell, so it waits until it is old enough, then is taken all the same.
  WriteFile(env.inbox + "/young.txt", "just written\n");
  names.insert("young.txt");

  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return ListDir(env.done).size() == names.size(); }, seconds(30)))
      << env.DaemonLog();
  const std::vector<std::string> done = ListDir(env.done);
  EXPECT_EQ(std::set<std::string>(done.begin(), done.end()), names);
  EXPECT_TRUE(ListDir(env.inbox).empty());
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 21; }));
  const auto runs = Tally(ReadLines(log));
  EXPECT_EQ(runs.size(), names.size());
  for (const std::string& n : names) EXPECT_EQ(runs.count(n) ? runs.at(n) : 0, 1) << n;
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), 21);
  EXPECT_EQ(env.Stop(), 0);
}

TEST(RestartTest, KeptFilesAreNotProcessedAgainUnlessTheyChange) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  QueueSpec q = LoggingQueue(env, log);
  q.on_success = "keep";
  q.on_failure = "keep";
  env.WriteConfig(q);

  constexpr int kN = 20;
  for (int i = 0; i < kN; ++i) {
    WriteFile(env.inbox + "/" + Name(i), "kept " + std::to_string(i) + "\n");
    ASSERT_TRUE(SetAge(env.inbox + "/" + Name(i), seconds(60)));
  }
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == kN; }, seconds(30)))
      << env.DaemonLog();
  ASSERT_EQ(ReadLines(log).size(), static_cast<size_t>(kN));
  // Handled and kept: each name is marked with the identity it had.
  for (int i = 0; i < kN; ++i) {
    const std::string v = env.redis.Cmd({"HGET", DropqEnv::Key("q", "files"), Name(i)});
    EXPECT_EQ(v.substr(0, 1), "~") << Name(i) << ": " << v;
  }
  ASSERT_EQ(env.Stop(), 0) << env.DaemonLog();

  // Restart: the scan sees all twenty again and takes none. A file dropped
  // after the start-up scan is enqueued after whatever that scan enqueued
  // (same connection, in order), so once it is done the scan's verdict is in.
  auto restart_and_probe = [&](const std::string& probe) {
    ASSERT_TRUE(env.Start()) << env.DaemonLog();
    WriteFile(env.inbox + "/" + probe, "probe\n");
    ASSERT_TRUE(WaitFor(
        [&] {
          const auto by_name = JobIdsByName(env.redis, "q");
          auto it = by_name.find(probe);
          return it != by_name.end() && JobRecord(env.redis, "q", it->second[0])["state"] == "done";
        },
        seconds(30)))
        << env.DaemonLog();
  };
  restart_and_probe("probe-1.txt");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == kN + 1; }));
  EXPECT_EQ(ReadLines(log).size(), static_cast<size_t>(kN + 1));
  EXPECT_EQ(ReadLines(log).back(), "probe-1.txt");
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), kN + 1);
  EXPECT_EQ(JobIds(env.redis, "q").size(), static_cast<size_t>(kN + 1));
  ASSERT_EQ(env.Stop(), 0) << env.DaemonLog();

  // Changed while dropqd was down (new content, another mtime, same inode):
  // after the restart that one file, and only it, is processed again.
  WriteFile(env.inbox + "/" + Name(5), "kept 5, edited while dropqd was down\n");
  ASSERT_TRUE(SetAge(env.inbox + "/" + Name(5), seconds(30)));
  restart_and_probe("probe-2.txt");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == kN + 3; }, seconds(20)))
      << env.DaemonLog();
  std::vector<std::string> lines = ReadLines(log);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kN + 3));
  EXPECT_EQ(std::multiset<std::string>(lines.begin() + kN + 1, lines.end()),
            (std::multiset<std::string>{Name(5), "probe-2.txt"}));

  // Changed live: processed again right away, and only it.
  WriteFile(env.inbox + "/" + Name(7), "kept 7, edited live\n");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == kN + 4; }, seconds(20)))
      << env.DaemonLog();
  lines = ReadLines(log);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kN + 4));
  EXPECT_EQ(lines.back(), Name(7));
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), kN + 4);

  // One more restart: nothing at all is processed again.
  ASSERT_EQ(env.Stop(), 0) << env.DaemonLog();
  restart_and_probe("probe-3.txt");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == kN + 5; }));
  lines = ReadLines(log);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kN + 5));
  EXPECT_EQ(lines.back(), "probe-3.txt");
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), kN + 5);
  // Every file is still where it was.
  EXPECT_EQ(ListDir(env.inbox).size(), static_cast<size_t>(kN + 3));
  EXPECT_EQ(env.Stop(), 0);
}

TEST(RestartTest, KeptFileThatLeftIsTakenAgainWhenItComesBack) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  QueueSpec q = LoggingQueue(env, log);
  q.on_success = "keep";
  q.on_failure = "keep";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  const std::string files = DropqEnv::Key("q", "files");

  WriteFile(env.inbox + "/live.txt", "same content\n");
  WriteFile(env.inbox + "/offline.txt", "same content\n");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 2; }, seconds(20)))
      << env.DaemonLog();
  ASSERT_EQ(env.redis.CmdInt({"HEXISTS", files, "live.txt"}), 1);
  ASSERT_EQ(env.redis.CmdInt({"HEXISTS", files, "offline.txt"}), 1);

  // Removed while dropqd watches: its marker goes at once.
  ASSERT_EQ(::unlink((env.inbox + "/live.txt").c_str()), 0);
  EXPECT_TRUE(WaitFor([&] {
    return env.redis.CmdInt({"HEXISTS", files, "live.txt"}) == 0;
  })) << env.DaemonLog();
  // Dropped again: a new job, processed again.
  WriteFile(env.inbox + "/live.txt", "same content\n");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 3; }, seconds(20)))
      << env.DaemonLog();

  // Removed while dropqd is down: the start-up scan's sweep drops the marker.
  ASSERT_EQ(env.Stop(), 0);
  ASSERT_EQ(::unlink((env.inbox + "/offline.txt").c_str()), 0);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  EXPECT_TRUE(WaitFor([&] {
    return env.redis.CmdInt({"HEXISTS", files, "offline.txt"}) == 0;
  })) << env.DaemonLog();
  EXPECT_EQ(env.redis.CmdInt({"HEXISTS", files, "live.txt"}), 1);  // still there: kept
  WriteFile(env.inbox + "/offline.txt", "same content\n");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 4; }, seconds(20)))
      << env.DaemonLog();
  EXPECT_EQ(Tally(ReadLines(log)),
            (std::map<std::string, int>{{"live.txt", 2}, {"offline.txt", 2}}));
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
