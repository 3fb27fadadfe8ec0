// SIGHUP re-reads the config under a steady stream of files: a queue added
// starts, a queue removed drains and stops (its files stay where they are),
// a changed handler applies to the jobs that start after the reload, and no
// file is lost or run twice. A broken config (or one that changes what only
// a restart can) changes nothing: the old one keeps running, and the log
// says why.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class ReloadTest : public ::testing::Test {
 protected:
  ReloadTest() {
    for (const char* q : {"a", "b", "c"}) {
      inbox_[q] = env_.tmp.Mkdir(std::string("in-") + q);
      done_[q] = env_.tmp.Mkdir(std::string("done-") + q);
    }
    log_ = env_.tmp.Sub("runs.log");
    // "<version> <queue> <name>" per run, written when the run is complete.
    for (const char* v : {"v1", "v2"}) {
      WriteScript(env_.tmp.Sub(std::string(v) + ".sh"),
                  std::string("sleep 0.02\nprintf '") + v + " %s %s\\n' \"$2\" \"$3\" >> \"$1\"\n");
    }
    env_.config = env_.tmp.Sub("dropq.yaml");
  }

  std::string Queue(const std::string& q, const std::string& version, int workers = 2) {
    return "  - name: " + q + "\n    watch: " + inbox_[q] +
           "\n    workers: " + std::to_string(workers) + "\n    handler:\n      exec: [/bin/sh, " +
           env_.tmp.Sub(version + ".sh") + ", " + log_ + ", \"{queue}\", \"{name}\"]\n" +
           "    on_success: { move_to: " + done_[q] + " }\n";
  }
  void Write(const std::string& queues, const std::string& top = "log_level: info\n") {
    WriteFile(env_.config, "redis:\n  url: " + env_.redis.url() + "\ninstance: test-1\n" + top +
                               "drain_timeout: 10s\nqueues:\n" + queues);
  }
  // Reload and wait for its outcome line; returns the log from there on.
  std::string Hup(const std::string& outcome) {
    const size_t before = Count(env_.DaemonLog(), outcome);
    env_.daemon()->Signal(SIGHUP);
    EXPECT_TRUE(WaitFor([&] { return Count(env_.DaemonLog(), outcome) > before; }, seconds(20)))
        << env_.DaemonLog();
    return env_.DaemonLog();
  }

  // What is still in the inboxes of a and c, and what Redis says of it.
  std::string Missing() {
    std::string out = "\nnot done:\n";
    for (const char* q : {"a", "c"}) {
      for (const std::string& n : ListDir(inbox_[q])) {
        const std::string id = OnlyJobId(env_.redis, q, n);
        out += std::string(q) + "/" + n + " job=" + id +
               " state=" + (id.empty() ? "" : JobRecord(env_.redis, q, id)["state"]) +
               " files=" + env_.redis.Cmd({"HGET", DropqEnv::Key(q, "files"), n}) + "\n";
      }
    }
    return out;
  }

  DropqEnv env_;
  std::map<std::string, std::string> inbox_, done_;
  std::string log_;
};

TEST_F(ReloadTest, AddRemoveAndChangeUnderAStreamLoseNothingAndRunNothingTwice) {
  ASSERT_TRUE(env_.redis.ok());
  Write(Queue("a", "v1") + Queue("b", "v1"), "log_level: debug\n");
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return Count(env_.DaemonLog(), "scan.done") == 2; }));

  // A steady stream into a and b (and c, which does not exist yet).
  std::atomic<bool> stop{false};
  std::map<std::string, int> dropped;
  std::thread feeder([&] {
    const std::string staging = env_.tmp.Mkdir("staging");
    for (int i = 0; !stop.load(); ++i) {
      for (const char* q : {"a", "b", "c"}) {
        char name[32];
        std::snprintf(name, sizeof name, "%s-%04d.dat", q, i);
        WriteAndRename(staging + "/" + name, inbox_[q] + "/" + name, name);
        ++dropped[q];
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  ASSERT_TRUE(WaitFor([&] { return ReadLines(log_).size() >= 30; }, seconds(30)));

  // Remove b, add c, change a's handler to v2 (and its worker count).
  Write(Queue("a", "v2", 3) + Queue("c", "v1"), "log_level: debug\n");
  const std::string after = Hup("reload.done");
  EXPECT_NE(after.find("reload.done config=" + env_.config + " added=1 removed=1 changed=1"),
            std::string::npos)
      << after;
  ASSERT_TRUE(
      WaitFor([&] { return env_.DaemonLog().find("queue.restarted queue=a") != std::string::npos; },
              seconds(30)))
      << env_.DaemonLog();
  std::this_thread::sleep_for(seconds(2));
  stop = true;
  feeder.join();

  // Every file of a and c is done, once; a's later ones by v2.
  ASSERT_TRUE(WaitFor(
      [&] {
        return static_cast<int>(ListDir(done_["a"]).size()) == dropped["a"] &&
               static_cast<int>(ListDir(done_["c"]).size()) == dropped["c"];
      },
      seconds(60)))
      << env_.DaemonLog() << Missing();
  std::map<std::string, int> runs;
  std::map<std::string, std::string> version_of;
  for (const std::string& line : ReadLines(log_)) {
    const size_t s1 = line.find(' '), s2 = line.find(' ', s1 + 1);
    const std::string name = line.substr(s2 + 1);
    ++runs[name];
    version_of[name] = line.substr(0, s1);
  }
  for (const auto& [name, n] : runs) EXPECT_EQ(n, 1) << name << " ran " << n << " times";
  int a_v1 = 0, a_v2 = 0, c_runs = 0, b_runs = 0;
  for (const auto& [name, v] : version_of) {
    if (name[0] == 'a') (v == "v1" ? a_v1 : a_v2)++;
    if (name[0] == 'b') ++b_runs;
    if (name[0] == 'c') ++c_runs;
  }
  std::printf("[ measure ] a: %d files, v1=%d v2=%d; b: %d dropped, %d ran; c: %d dropped\n",
              dropped["a"], a_v1, a_v2, dropped["b"], b_runs, dropped["c"]);
  EXPECT_EQ(a_v1 + a_v2, dropped["a"]);
  EXPECT_GT(a_v1, 0);
  EXPECT_GT(a_v2, 0);
  EXPECT_EQ(c_runs, dropped["c"]);
  // b stopped: what it ran is done, the rest waits in its inbox, untouched.
  EXPECT_EQ(static_cast<int>(ListDir(done_["b"]).size()), b_runs);
  EXPECT_EQ(static_cast<int>(ListDir(inbox_["b"]).size()) + b_runs, dropped["b"]);
  EXPECT_NE(env_.DaemonLog().find("queue.stopped queue=b"), std::string::npos);
  // Nothing left active anywhere.
  // (Files move before their acknowledgement: wait for it.)
  for (const char* q : {"a", "b", "c"}) {
    EXPECT_TRUE(WaitFor(
        [&] {
          return env_.redis.CmdInt({"ZCARD", DropqEnv::Key(q, "active")}) == 0;
        },
        seconds(20)))
        << q;
  }
  EXPECT_EQ(env_.Stop(SIGTERM, seconds(30)), 0) << env_.DaemonLog();
}

// A queue removed by one reload and added back by the next while its
// handlers still run comes back only once the old one drained: its running
// jobs are never requeued beside it, and every file runs once.
TEST_F(ReloadTest, AQueueAddedBackWhileItDrainsWaitsForTheDrain) {
  ASSERT_TRUE(env_.redis.ok());
  const std::string starts = env_.tmp.Sub("starts.log");
  WriteScript(env_.tmp.Sub("slow.sh"),
              "printf '%s\\n' \"$3\" >> " + starts +
                  "\nsleep 1\nprintf 'slow %s %s\\n' \"$2\" \"$3\" >> \"$1\"\n");
  Write(Queue("a", "slow"));
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  for (int i = 0; i < 4; ++i) WriteFile(inbox_["a"] + "/f" + std::to_string(i), "x");
  ASSERT_TRUE(WaitFor([&] { return ReadLines(starts).size() >= 2; }, seconds(20)))
      << env_.DaemonLog();

  Write(Queue("c", "v1"));  // a removed while two of its jobs run
  Hup("reload.done");
  Write(Queue("a", "slow") + Queue("c", "v1"));  // and added back at once
  const std::string log = Hup("reload.done");
  EXPECT_NE(log.find("added=1 removed=0 changed=0"), std::string::npos) << log;
  ASSERT_TRUE(WaitFor([&] { return ListDir(done_["a"]).size() == 4; }, seconds(30)))
      << env_.DaemonLog();
  const std::string all = env_.DaemonLog();
  // The drain ended before the queue started again.
  ASSERT_NE(all.find("queue.restarted queue=a"), std::string::npos) << all;
  EXPECT_LT(all.find("queue.stopped queue=a"), all.find("queue.restarted queue=a")) << all;
  EXPECT_EQ(all.find("job.interrupted"), std::string::npos) << all;
  std::map<std::string, int> runs;
  for (const std::string& line : ReadLines(log_)) ++runs[line];
  EXPECT_EQ(runs.size(), 4U);
  for (const auto& [line, n] : runs) EXPECT_EQ(n, 1) << line;
  EXPECT_EQ(env_.Stop(SIGTERM, seconds(30)), 0) << env_.DaemonLog();
}

TEST_F(ReloadTest, ABrokenConfigLeavesTheRunningOneInPlace) {
  ASSERT_TRUE(env_.redis.ok());
  Write(Queue("a", "v1"));
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();

  // Not YAML a queue can be made of; then a change of Redis prefix, which
  // only a restart may make.
  WriteFile(env_.config, "redis: [\nqueues: nope\n");
  std::string log = Hup("reload.failed");
  EXPECT_NE(log.find("reload.failed config=" + env_.config), std::string::npos) << log;
  EXPECT_NE(log.find("kept=running\\x20config"), std::string::npos) << log;
  Write(Queue("a", "v2") + Queue("c", "v1"), "redis_prefix_unused: x\n");
  log = Hup("reload.failed");  // an unknown key is a config error too
  WriteFile(env_.config, "redis:\n  url: " + env_.redis.url() +
                             "\n  prefix: other\ninstance: test-1\nqueues:\n" + Queue("a", "v2"));
  log = Hup("reload.failed");
  EXPECT_NE(log.find("changing\\x20redis.prefix\\x20needs\\x20a\\x20restart"), std::string::npos)
      << log;
  EXPECT_EQ(log.find("reload.done"), std::string::npos) << log;

  // The old config still runs: v1 handles a new file of a; c does not exist.
  WriteFile(inbox_["a"] + "/after.dat", "x");
  WriteFile(inbox_["c"] + "/ignored.dat", "x");
  ASSERT_TRUE(WaitFor([&] { return ListDir(done_["a"]).size() == 1; }, seconds(20)))
      << env_.DaemonLog();
  EXPECT_EQ(ReadLines(log_), std::vector<std::string>{"v1 a after.dat"});
  EXPECT_EQ(ListDir(inbox_["c"]), std::vector<std::string>{"ignored.dat"});
  EXPECT_EQ(env_.Stop(SIGTERM, seconds(30)), 0) << env_.DaemonLog();
}

}  // namespace
}  // namespace dropq::test
