// A processing area left in the job-directory layout ("<area>/<job id>/<name>",
// which every queue used before builtins worked by descriptor, and exec
// queues still use) is taken over by a builtin queue, whose own layout is
// flat (move_to) or none at all (keep): an upgrade, or a queue whose handler
// was changed. A dropqd killed with jobs in every state leaves
//
//   d.txt  active, outcome recorded, its move failing (phase disposing)
//   s.txt  scheduled for a retry an hour away (the test makes it due)
//   h.txt  active, its handler still running (killed as an orphan)
//   p.txt  pending, never claimed (the queue was paused)
//
// with the first three files in job directories. The new dropqd finishes
// every job once: d.txt's disposition is redone (as the new configuration
// says) without a new run, the others are hashed once, and no file is left
// in the area.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

class AreaUpgradeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(AreaUpgradeTest, JobsLeftInJobDirectoriesFinishOnce) {
  const bool keep = GetParam() == "keep";
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  // h.txt hangs, s.txt fails, the rest succeed.
  const std::string script = WriteScript(env.tmp.Sub("h.sh"),
                                         "name=$(basename \"$1\")\n"
                                         "echo \"$name\" >> '" +
                                             log +
                                             "'\n"
                                             "[ \"$name\" = h.txt ] && exec sleep 600\n"
                                             "[ \"$name\" = s.txt ] && exit 1\n"
                                             "exit 0\n");
  QueueSpec q;
  q.handler = "exec: [\"" + script + "\", \"{path}\"]\ntimeout: 10m";
  q.workers = 3;
  q.on_success = "done";
  q.on_failure = "keep";
  q.retry = "{ max_attempts: 3, initial_delay: 1h, max_delay: 1h }";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  // The success directory is a file: d.txt's move fails and is retried.
  ASSERT_EQ(::rmdir(env.done.c_str()), 0);
  WriteFile(env.done, "not a directory");
  WriteFile(env.inbox + "/d.txt", "d");
  WriteFile(env.inbox + "/s.txt", "s");
  WriteFile(env.inbox + "/h.txt", "h");
  auto state = [&](const std::string& name, const std::string& field) {
    const std::string id = OnlyJobId(env.redis, "q", name);
    return id.empty() ? std::string() : JobRecord(env.redis, "q", id)[field];
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        return state("d.txt", "phase") == "disposing" && !state("d.txt", "dispose_error").empty() &&
               state("s.txt", "state") == "scheduled" && state("h.txt", "attempt") == "1";
      },
      seconds(20)))
      << env.DaemonLog();
  // What `dropqctl pause` does (it refuses the config while the success
  // directory is a file).
  env.redis.Cmd({"SET", DropqEnv::Key("q", "paused"), "0 test"});
  WriteFile(env.inbox + "/p.txt", "p");
  ASSERT_TRUE(WaitFor([&] { return state("p.txt", "state") == "pending"; }, seconds(10)))
      << env.DaemonLog();
  ASSERT_EQ(env.Stop(SIGKILL, seconds(10)), 128 + SIGKILL);
  for (const char* n : {"d.txt", "s.txt", "h.txt"}) {
    const std::string id = OnlyJobId(env.redis, "q", n);
    ASSERT_TRUE(Exists(env.Processing(id, n))) << n << " is in its job directory";
  }
  const std::string d_id = OnlyJobId(env.redis, "q", "d.txt");
  const std::string s_id = OnlyJobId(env.redis, "q", "s.txt");

  // The new configuration: a builtin, and the retry due now.
  std::filesystem::remove(env.done);
  std::filesystem::create_directory(env.done);
  q.handler = "builtin: sha256";
  q.on_success = keep ? "keep" : "done";
  env.WriteConfig(q);
  ASSERT_EQ(env.redis.CmdInt({"ZADD", DropqEnv::Key("q", "scheduled"), "XX", "CH", "0", s_id}), 1);
  ASSERT_EQ(env.Ctl({"resume", "q"}).status, 0);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  ASSERT_TRUE(WaitForOutcomes(env.redis, 4, 0)) << env.DaemonLog();
  for (const char* n : {"d.txt", "s.txt", "h.txt", "p.txt"}) {
    const auto ids = JobIdsByName(env.redis, "q");
    ASSERT_EQ(ids.count(n), 1u) << n;
    ASSERT_EQ(ids.at(n).size(), 1u) << n << ": one job, run once";
    auto rec = JobRecord(env.redis, "q", ids.at(n)[0]);
    EXPECT_EQ(rec["state"], "done") << n;
    EXPECT_EQ(rec["result"], "ok") << n;
    const std::string where = keep ? env.inbox : env.done;
    EXPECT_EQ(ReadFile(where + "/" + n), std::string(1, n[0])) << n << "\n" << env.DaemonLog();
    if (std::string(n) != "d.txt") {
      EXPECT_EQ(rec["sha256"], Sha256Hex(std::string(1, n[0]))) << n;
    }
  }
  // d.txt's handler ran once, under the old configuration; its move alone was redone.
  EXPECT_EQ(Count(ReadFile(log), "d.txt"), 1u);
  EXPECT_EQ(JobRecord(env.redis, "q", d_id)["attempt"], "1");
  EXPECT_NE(env.DaemonLog().find("job.redispose queue=q job=" + d_id), std::string::npos);
  // Nothing is left in the area (ListDir() shows it only while it holds a file).
  std::vector<std::string> left = ListDir(env.inbox);
  if (keep) {
    EXPECT_EQ(left, (std::vector<std::string>{"d.txt", "h.txt", "p.txt", "s.txt"}));
  } else {
    EXPECT_TRUE(left.empty()) << left.size();
  }
  EXPECT_EQ(env.Stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(Dispositions, AreaUpgradeTest, ::testing::Values("keep", "move_to"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace dropq::test
