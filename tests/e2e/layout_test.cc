// The layout of dropq's keys in Redis (docs/redis-keys.md, "Layouts and
// upgrades"): dropqd refuses to start beside an instance of another layout
// or on a queue of a later one (exit 76, nothing written), and brings a
// queue left by a dropq of layout 1 to layout 2 with every job in it, in
// whatever state, finished once.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <thread>

#include "common/clock.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

std::string Ident(const std::string& path) {
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
         std::to_string(static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL +
                        st.st_mtim.tv_nsec);
}

// dropqd started where it must refuse: exits 76 with `why` in its log, and
// nothing of the queue is written.
void ExpectRefused(DropqEnv& env, const std::string& why) {
  env.StartWrapped({});
  const std::optional<int> status = env.daemon()->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(status.has_value()) << env.DaemonLog();
  EXPECT_EQ(*status, 76) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("redis.layout_refused"), std::string::npos) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find(why), std::string::npos) << env.DaemonLog();
  EXPECT_EQ(env.redis.CmdInt({"LLEN", DropqEnv::Key("q", "pending")}), 0);
  EXPECT_EQ(env.redis.CmdInt({"EXISTS", DropqEnv::Key("q", "files")}), 0);
}

TEST(LayoutTest, AnInstanceOfAnotherLayoutKeepsThisOneFromStarting) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  env.WriteConfig(QueueSpec{});
  WriteFile(env.inbox + "/a.txt", "a");
  // A running dropq older than layout 2: its heartbeat names no layout.
  env.redis.Cmd({"SADD", "dropq:instances", "old-1"});
  env.redis.Cmd({"SET", "dropq:instance:old-1", R"({"pid":1,"started_ms":1,"version":"0.9.0"})",
                 "PX", "60000"});
  // (The log escapes the spaces of a value.)
  ExpectRefused(
      env, "instance\\x20old-1\\x20is\\x20running\\x20and\\x20reads\\x20Redis\\x20layout\\x201,");
  EXPECT_EQ(env.redis.CmdInt({"EXISTS", DropqEnv::Key("q", "layout")}), 0);
  EXPECT_TRUE(Exists(env.inbox + "/a.txt"));

  // Once it has stopped, this one starts, upgrades the queue and works.
  env.redis.Cmd({"DEL", "dropq:instance:old-1"});
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  EXPECT_TRUE(WaitForOutcomes(env.redis, 1, 0)) << env.DaemonLog();
  EXPECT_EQ(env.redis.Cmd({"GET", DropqEnv::Key("q", "layout")}), "2");
  EXPECT_NE(env.redis.Cmd({"GET", "dropq:instance:test-1"}).find("\"layout\":2"),
            std::string::npos);
  EXPECT_EQ(env.Stop(), 0);
}

// The checks run again on every new connection, and the queues work only
// after them and after their own reconcile on that connection: a claim sent
// before the reconcile would have its jobs given back while they run here.
// Here a reconnect meets a check that cannot pass (the instances set is a
// string, so SMEMBERS fails and the check is retried every second): files
// dropped meanwhile wait on disk, and run once the check passes.
TEST(LayoutTest, ANewConnectionClaimsNothingBeforeItsChecksPass) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  env.WriteConfig(QueueSpec{});
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  WriteFile(env.inbox + "/first.txt", "1");
  ASSERT_TRUE(WaitForOutcomes(env.redis, 1, 0)) << env.DaemonLog();

  env.redis.Cmd({"DEL", "dropq:instances"});
  env.redis.Cmd({"SET", "dropq:instances", "not a set"});
  env.redis.Cmd({"CLIENT", "KILL", "TYPE", "normal"});  // dropqd's connection, not this one
  ASSERT_TRUE(WaitFor([&] {
    return env.DaemonLog().find("redis.layout_check_failed") != std::string::npos;
  })) << env.DaemonLog();
  for (int i = 0; i < 5; ++i) WriteFile(env.inbox + "/f" + std::to_string(i) + ".txt", "f");
  // They would be done within milliseconds were anything claimed.
  std::this_thread::sleep_for(seconds(3));
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), 1) << env.DaemonLog();
  EXPECT_EQ(env.DaemonLog().find("/f0.txt"), std::string::npos) << env.DaemonLog();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(Exists(env.inbox + "/f" + std::to_string(i) + ".txt"));

  env.redis.Cmd({"DEL", "dropq:instances"});
  EXPECT_TRUE(WaitForOutcomes(env.redis, 6, 0)) << env.DaemonLog();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(Exists(env.done + "/f" + std::to_string(i) + ".txt"));
  EXPECT_EQ(env.DaemonLog().find("job.duplicate_claim"), std::string::npos) << env.DaemonLog();
  EXPECT_EQ(env.DaemonLog().find("instance.fenced"), std::string::npos) << env.DaemonLog();
  EXPECT_EQ(env.Stop(), 0) << env.DaemonLog();
}

TEST(LayoutTest, AQueueOfALaterLayoutIsRefused) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  env.WriteConfig(QueueSpec{});
  WriteFile(env.inbox + "/a.txt", "a");
  env.redis.Cmd({"SET", DropqEnv::Key("q", "layout"), "3"});
  ExpectRefused(env, "err=LAYOUT\\x20dropq:{q}:layout\\x20is\\x20\"3\"");
  EXPECT_EQ(env.redis.Cmd({"GET", DropqEnv::Key("q", "layout")}), "3");
  EXPECT_TRUE(Exists(env.inbox + "/a.txt"));
}

// Redis as a layout 1 dropqd (records made at enqueue, counters in :stats)
// left it when its instance died: a job pending, a retry due, a job active
// under the dead instance, and one whose outcome was recorded but whose file
// was not moved yet. The new dropqd upgrades the queue and finishes each job
// once; the recorded one is not run again.
TEST(LayoutTest, ALayoutOneQueueIsUpgradedAndEveryJobFinishesOnce) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"-c\", \"echo \\\"$1\\\" >> " + log + "\", \"sh\", \"{name}\"]";
  env.WriteConfig(q);
  const auto key = [](const std::string& s) { return DropqEnv::Key("q", s); };
  const std::string now = std::to_string(NowUnixMs());
  const std::string ids[] = {"01JEXAMP1E00000000000000P1", "01JEXAMP1E00000000000000S1",
                             "01JEXAMP1E00000000000000A1", "01JEXAMP1E00000000000000D1"};
  const std::string names[] = {"p1.txt", "s1.txt", "a1.txt", "d1.txt"};
  // The recorded job's file waits in the processing area, where its run left it.
  const std::string area = env.inbox + "/.dropq-processing";
  for (const std::string& d : {area, area + "/q", area + "/q/" + ids[3]}) {
    ASSERT_EQ(mkdir(d.c_str(), 0700), 0) << d;
  }
  for (int i = 0; i < 4; ++i) {
    const std::string path = i == 3 ? env.Processing(ids[3], names[3]) : env.inbox + "/" + names[i];
    WriteFile(path, names[i]);
    const std::string ident = Ident(path);
    env.redis.Cmd({"HSET", key("job:" + ids[i]), "name", names[i], "size",
                   std::to_string(names[i].size()), "ident", ident, "enq", now});
    env.redis.Cmd({"HSET", key("files"), names[i], ids[i]});
    if (i == 3) {
      env.redis.Cmd({"HSET", key("job:" + ids[i]), "phase", "disposing", "outcome", "done",
                     "result", "ok", "target", env.done + "/d1.txt", "pident", ident, "attempt",
                     "1"});
    }
  }
  env.redis.Cmd({"HSET", key("job:" + ids[0]), "state", "pending"});
  env.redis.Cmd({"LPUSH", key("pending"), ids[0]});
  env.redis.Cmd({"HSET", key("job:" + ids[1]), "state", "scheduled", "attempt", "1", "failures",
                 "1", "due", now});
  env.redis.Cmd({"ZADD", key("scheduled"), now, ids[1]});
  for (int i : {2, 3}) {
    env.redis.Cmd(
        {"HSET", key("job:" + ids[i]), "state", "active", "owner", "old-1", "claimed", now});
    env.redis.Cmd({"ZADD", key("active"), now, ids[i]});
  }
  env.redis.Cmd({"SADD", "dropq:instances", "old-1"});  // its heartbeat expired
  env.redis.Cmd({"HSET", key("stats"), "enqueued", "4", "done", "10"});

  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return ListDir(env.done).size() == 4; }, seconds(60)))
      << env.DaemonLog();
  EXPECT_EQ(Tally(ReadLines(log)),
            (std::map<std::string, int>{{"p1.txt", 1}, {"s1.txt", 1}, {"a1.txt", 1}}));
  for (const std::string& id : ids) {
    EXPECT_EQ(env.redis.Cmd({"HGET", key("job:" + id), "state"}), "done") << id;
  }
  EXPECT_EQ(env.redis.Cmd({"HGET", key("job:" + ids[2]), "interrupted"}), "1");
  EXPECT_EQ(env.redis.Cmd({"GET", key("layout")}), "2");
  EXPECT_EQ(env.redis.Cmd({"TYPE", key("stats")}), "string");
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), 14);
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), 4);
  EXPECT_EQ(env.redis.CmdInt({"LLEN", key("pending")}), 0);
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", key("active")}), 0);
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
