// dropqctl's queue views and housekeeping on a real queue: `list` in each
// state (human and --json), `purge` of done and failed records (all, or
// --older-than), and the exit statuses scripts rely on: 64 for an unknown
// queue, state or duration, 0 otherwise.
#include <gtest/gtest.h>
#include <signal.h>

#include <set>
#include <string>

#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

std::set<std::string> Ids(const nlohmann::json& list) {
  std::set<std::string> ids;
  for (const auto& j : list["jobs"]) ids.insert(j["id"].get<std::string>());
  return ids;
}

TEST(CtlQueueTest, ListAndPurgeByState) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  // Names starting with "bad" fail (exit 65: not retried), the rest succeed.
  q.handler = FailingForPrefixHandler("bad");
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  for (const char* n : {"good-1", "good-2", "good-3", "bad-1", "bad-2"}) {
    WriteFile(env.inbox + "/" + n, n);
  }
  ASSERT_TRUE(WaitForOutcomes(env.redis, 3, 2)) << env.DaemonLog();

  CommandResult done = env.Ctl({"list", "q", "--state", "done", "--json"});
  ASSERT_EQ(done.status, 0) << done.err;
  nlohmann::json dj = ParseJson(done.out);
  ASSERT_FALSE(dj.is_discarded()) << done.out;
  EXPECT_EQ(dj["queue"], "q");
  EXPECT_EQ(dj["state"], "done");
  ASSERT_EQ(dj["jobs"].size(), 3U) << done.out;
  std::set<std::string> names;
  for (const auto& j : dj["jobs"]) {
    names.insert(j["name"].get<std::string>());
    EXPECT_EQ(j["state"], "done");
    EXPECT_TRUE(j["finished"].is_number()) << j.dump();
  }
  EXPECT_EQ(names, (std::set<std::string>{"good-1", "good-2", "good-3"}));
  EXPECT_EQ(
      ParseJson(env.Ctl({"list", "q", "--state", "done", "--limit", "2", "--json"}).out)["jobs"]
          .size(),
      2U);

  CommandResult failed = env.Ctl({"list", "q", "--state", "failed"});
  ASSERT_EQ(failed.status, 0) << failed.err;
  EXPECT_NE(failed.out.find("bad-1"), std::string::npos) << failed.out;
  EXPECT_NE(failed.out.find("bad-2"), std::string::npos) << failed.out;
  EXPECT_EQ(failed.out.find("good-1"), std::string::npos) << failed.out;
  EXPECT_EQ(ParseJson(env.Ctl({"list", "q", "--state", "pending", "--json"}).out)["jobs"].size(),
            0U);

  // Jobs finished a moment ago are not older than a day: nothing purged.
  CommandResult none =
      env.Ctl({"purge", "--state", "done", "--queue", "q", "--older-than", "1d", "--json"});
  ASSERT_EQ(none.status, 0) << none.err;
  EXPECT_EQ(ParseJson(none.out)["purged"], 0);
  const std::set<std::string> done_ids = Ids(dj);
  CommandResult all = env.Ctl({"purge", "--state", "done", "--queue", "q", "--json"});
  ASSERT_EQ(all.status, 0) << all.err;
  EXPECT_EQ(ParseJson(all.out)["purged"], 3);
  for (const std::string& id : done_ids) {
    EXPECT_EQ(env.redis.CmdInt({"EXISTS", DropqEnv::Key("q", "job:" + id)}), 0) << id;
  }
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "done")}), 0);
  // Failed records are untouched by a purge of done ones.
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "failed")}), 2);
  EXPECT_EQ(StatCounter(env.redis, "q", "purged_done"), 3);
  CommandResult pf = env.Ctl({"purge", "--state", "failed", "--queue", "q"});
  EXPECT_EQ(pf.status, 0) << pf.err;
  EXPECT_NE(pf.out.find("2 failed job records purged from q"), std::string::npos) << pf.out;

  // Exit statuses.
  EXPECT_EQ(env.Ctl({"list", "nope", "--state", "done"}).status, 64);
  EXPECT_EQ(env.Ctl({"list", "q", "--state", "finished"}).status, 64);
  EXPECT_EQ(env.Ctl({"purge", "--state", "active", "--queue", "q"}).status, 64);
  EXPECT_EQ(env.Ctl({"purge", "--state", "done", "--queue", "q", "--older-than", "soon"}).status,
            64);
  EXPECT_EQ(env.Ctl({"pause", "nope"}).status, 64);
  CommandResult help = env.Ctl({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_LE(SplitLines(help.out).size(), 30U) << help.out;  // fits on a screen
  for (const char* cmd : {"status", "list", "show", "retry", "purge", "pause", "resume"}) {
    EXPECT_NE(help.out.find(cmd), std::string::npos) << cmd;
  }
  EXPECT_EQ(env.Stop(SIGTERM, seconds(30)), 0);
}

}  // namespace
}  // namespace dropq::test
