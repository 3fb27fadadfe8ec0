// Another instance reclaims the jobs of one that was killed mid-handler once
// its heartbeat expired: the orphaned handler (on this host) is killed first,
// then the job runs again, marked interrupted, under the new owner.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// Both tests: instance test-1 (heartbeat_ttl 1s) runs one queue with one
// worker, whose handler logs "start <instance>", leaves its pid in pids/,
// waits for the file `go`, then logs "end <instance>".
class ReclaimTest : public ::testing::Test {
 protected:
  // Starts test-1, drops a.txt and returns once its handler runs: sets
  // first_run (the handler's pid) and id (the job's).
  void StartFirstRun() {
    ASSERT_TRUE(env.redis.ok());
    const std::string script = WriteScript(env.tmp.Sub("gate.sh"),
                                           "printf 'start %s\\n' \"$DROPQ_INSTANCE\" >> \"$2\"\n"
                                           "echo $$ > \"$3/$$\"\n"
                                           "while [ ! -e \"$1\" ]; do sleep 0.05; done\n"
                                           "printf 'end %s\\n' \"$DROPQ_INSTANCE\" >> \"$2\"\n");
    QueueSpec q;
    q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + go + "\", \"" + log + "\", \"" +
                pids + "\"]";
    q.workers = 1;
    env.WriteConfig(q, "heartbeat_ttl: 1s\n");
    ASSERT_TRUE(env.Start()) << env.DaemonLog();
    WriteFile(env.inbox + "/a.txt", "a");
    ASSERT_TRUE(WaitFor([&] { return ListDir(pids).size() == 1; }, seconds(20))) << env.DaemonLog();
    ASSERT_TRUE(WaitFor([&] { return (first_run = ReadPid(pids + "/" + ListDir(pids)[0])) > 0; }));
    id = JobIdsByName(env.redis, "q").at("a.txt").at(0);
    // Its start is recorded once it has gone on 20 ms (docs/guarantees.md).
    ASSERT_TRUE(WaitFor([&] { return JobRecord(env.redis, "q", id)["attempt"] == "1"; }))
        << env.DaemonLog();
  }

  // Instance test-2 (`second`) kills test-1's handler, takes the job over,
  // runs it once `go` exists, and finishes it.
  void ExpectTakenOverAndDone(Process& second) {
    ASSERT_TRUE(WaitFor([&] { return ProcessGone(first_run); }, seconds(20))) << second.Log();
    ASSERT_TRUE(
        WaitFor([&] { return JobRecord(env.redis, "q", id)["owner"] == "test-2"; }, seconds(20)))
        << second.Log();
    WriteFile(go, "");
    ASSERT_TRUE(
        WaitFor([&] { return JobRecord(env.redis, "q", id)["state"] == "done"; }, seconds(20)))
        << second.Log();
  }

  DropqEnv env;
  const std::string log = env.tmp.Sub("handler.log"), go = env.tmp.Sub("go");
  const std::string pids = env.tmp.Mkdir("pids");
  pid_t first_run = -1;
  std::string id;
};

TEST_F(ReclaimTest, ExpiredInstancesJobsAreReclaimedAfterItsOrphanIsKilled) {
  ASSERT_NO_FATAL_FAILURE(StartFirstRun());
  ASSERT_EQ(env.Stop(SIGKILL, seconds(10)), 128 + SIGKILL);
  EXPECT_FALSE(ProcessGone(first_run));  // the orphan lives on
  EXPECT_EQ(JobRecord(env.redis, "q", id)["owner"], "test-1");

  // A second instance with its own name, same Redis and queue.
  const std::string config2 = WriteInstanceConfig(env, "test-2");
  Process second({DROPQD_BIN, "--config", config2}, env.tmp.Sub("dropqd2.log"));

  ASSERT_NO_FATAL_FAILURE(ExpectTakenOverAndDone(second));
  auto rec = JobRecord(env.redis, "q", id);
  EXPECT_EQ(rec["attempt"], "2");
  EXPECT_EQ(rec["interrupted"], "1");
  EXPECT_NE(second.Log().find("jobs.reclaimed queue=q from=test-1 count=1"), std::string::npos)
      << second.Log();
  // The orphan never finished: one end, by the second instance.
  EXPECT_EQ(
      Tally(ReadLines(log)),
      (std::map<std::string, int>{{"start test-1", 1}, {"start test-2", 1}, {"end test-2", 1}}));
  EXPECT_EQ(env.redis.CmdInt({"SISMEMBER", "dropq:instances", "test-1"}), 0);
  second.Signal(SIGTERM);
  EXPECT_EQ(second.Wait(seconds(30)), 0);
}

// An instance frozen (SIGSTOP) past its heartbeat_ttl is cut off from Redis
// as surely as by a network partition. Another instance reclaims its job and
// finishes it; when the first wakes, whatever it says about the job (its
// handler was killed meanwhile) comes too late and is discarded, logged, and
// never overwrites the new owner's outcome. The first instance keeps running.
TEST_F(ReclaimTest, LateOutcomeOfAnInstanceCutOffPastItsTtlIsDiscarded) {
  ASSERT_NO_FATAL_FAILURE(StartFirstRun());
  ASSERT_TRUE(WaitFor([&] { return JobRecord(env.redis, "q", id)["attempt"] == "1"; }));
  env.daemon()->Signal(SIGSTOP);

  const std::string config2 = WriteInstanceConfig(env, "test-2");
  Process second({DROPQD_BIN, "--config", config2}, env.tmp.Sub("dropqd2.log"));

  // The second instance kills the frozen one's handler, takes the job over
  // and finishes it.
  ASSERT_NO_FATAL_FAILURE(ExpectTakenOverAndDone(second));
  const auto done = JobRecord(env.redis, "q", id);

  // The first instance wakes up holding a job that is no longer its own.
  env.daemon()->Signal(SIGCONT);
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string l = env.DaemonLog();
        return l.find("job.fenced queue=q job=" + id) != std::string::npos ||
               l.find("instance.fenced instance=test-1") != std::string::npos;
      },
      seconds(20)))
      << env.DaemonLog();
  // Give whatever it still sends time to reach Redis: its heartbeat back in
  // the registry shows that it is talking to Redis again.
  ASSERT_TRUE(WaitFor(
      [&] { return env.DaemonLog().find("instance.unfenced") != std::string::npos; }, seconds(20)))
      << env.DaemonLog();
  ASSERT_TRUE(WaitFor(
      [&] {
        return env.redis.CmdInt({"SISMEMBER", "dropq:instances", "test-1"}) == 1;
      },
      seconds(20)));
  EXPECT_EQ(JobRecord(env.redis, "q", id), done) << env.DaemonLog();
  EXPECT_EQ(ListDir(env.done).size(), 1u);
  EXPECT_EQ(
      Tally(ReadLines(log)),
      (std::map<std::string, int>{{"start test-1", 1}, {"start test-2", 1}, {"end test-2", 1}}));
  EXPECT_TRUE(env.daemon()->running());
  EXPECT_EQ(env.Stop(), 0) << env.DaemonLog();
  second.Signal(SIGTERM);
  EXPECT_EQ(second.Wait(seconds(30)), 0);
}

}  // namespace
}  // namespace dropq::test
