// Retries with backoff and dead letters, with the real dropqd: a handler that
// fails twice then succeeds ends done at attempt 3 with growing delays; one
// that always fails is failed after max_attempts with every attempt's error
// kept; a permanent exit code is failed after one attempt; a tempfail exit
// does not use up an attempt; dropqctl retry revives a dead letter.
#include <gtest/gtest.h>

#include <string>

#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// Logs "<name> <unix ms>" per run, then exits with the code found in
// <codes>/<name> (first line, consumed: one code per run), 0 when none left.
constexpr const char* kScripted =
    "printf '%s %s\\n' \"$3\" \"$(date +%s%3N)\" >> \"$1\"\n"
    "f=\"$2/$3\"\n"
    "[ -s \"$f\" ] || exit 0\n"
    "code=$(head -n 1 \"$f\"); tail -n +2 \"$f\" > \"$f.next\"; mv \"$f.next\" \"$f\"\n"
    "echo \"run failed with $code\" >&2\n"
    "exit \"$code\"\n";

class RetryTest : public ::testing::Test {
 protected:
  void Start(const std::string& retry) {
    ASSERT_TRUE(env_.redis.ok());
    log_ = env_.tmp.Sub("runs.log");
    codes_ = env_.tmp.Mkdir("codes");
    const std::string script = WriteScript(env_.tmp.Sub("handler.sh"), kScripted);
    QueueSpec q;
    q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log_ + "\", \"" + codes_ +
                "\", \"{name}\"]\ntimeout: 10s";
    q.retry = retry;
    env_.WriteConfig(q);
    ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  }
  // The exit codes `name`'s runs will return, in order.
  void Codes(const std::string& name, const std::string& codes) {
    WriteFile(codes_ + "/" + name, codes);
  }
  std::string IdOf(const std::string& name) {
    std::string id;
    WaitFor([&] {
      auto ids = JobIdsByName(env_.redis, "q");
      if (ids.count(name) == 0) return false;
      id = ids[name].at(0);
      return true;
    });
    return id;
  }
  std::vector<long long> RunTimes(const std::string& name) {
    std::vector<long long> out;
    for (const auto& line : ReadLines(log_)) {
      if (line.rfind(name + " ", 0) == 0) out.push_back(std::stoll(line.substr(name.size() + 1)));
    }
    return out;
  }
  bool StateIs(const std::string& id, const std::string& state) {
    return JobRecord(env_.redis, "q", id)["state"] == state;
  }

  DropqEnv env_;
  std::string log_, codes_;
};

TEST_F(RetryTest, FailsTwiceThenSucceedsWithGrowingDelays) {
  Start("{ max_attempts: 5, initial_delay: 300ms, max_delay: 10s }");
  Codes("a.txt", "3\n4\n");
  WriteFile(env_.inbox + "/a.txt", "x");
  const std::string id = IdOf("a.txt");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitFor([&] { return StateIs(id, "done"); }, seconds(30))) << env_.DaemonLog();
  auto rec = JobRecord(env_.redis, "q", id);
  EXPECT_EQ(rec["attempt"], "3");
  EXPECT_EQ(rec["failures"], "2");
  EXPECT_EQ(rec["result"], "ok");
  EXPECT_EQ(rec["attempt.1"].rfind("result=exit exit=3", 0), 0u) << rec["attempt.1"];
  EXPECT_EQ(rec["attempt.2"].rfind("result=exit exit=4", 0), 0u) << rec["attempt.2"];
  EXPECT_NE(rec["stderr.2"].find("run failed with 4"), std::string::npos);
  const auto t = RunTimes("a.txt");
  ASSERT_EQ(t.size(), 3u);
  // Retry 1 waits 150..300 ms, retry 2 waits 300..600 ms (plus scheduling slack).
  EXPECT_GE(t[1] - t[0], 150);
  EXPECT_GE(t[2] - t[1], 300);
  EXPECT_TRUE(Exists(env_.done + "/a.txt"));
  EXPECT_EQ(StatCounter(env_.redis, "q", "retries"), 2);
  EXPECT_EQ(env_.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "scheduled")}), 0);
  EXPECT_EQ(env_.Stop(), 0);
}

TEST_F(RetryTest, AlwaysFailingEndsFailedWithEveryAttemptKept) {
  Start("{ max_attempts: 3, initial_delay: 100ms, max_delay: 200ms }");
  Codes("b.txt", "7\n7\n7\n7\n");
  WriteFile(env_.inbox + "/b.txt", "x");
  const std::string id = IdOf("b.txt");
  ASSERT_TRUE(WaitFor([&] { return StateIs(id, "failed"); }, seconds(30))) << env_.DaemonLog();
  auto rec = JobRecord(env_.redis, "q", id);
  EXPECT_EQ(rec["attempt"], "3");
  EXPECT_EQ(rec["failures"], "3");
  for (const char* n : {"1", "2", "3"}) {
    EXPECT_EQ(rec[std::string("attempt.") + n].rfind("result=exit exit=7", 0), 0u) << n;
    EXPECT_NE(rec[std::string("stderr.") + n].find("run failed with 7"), std::string::npos) << n;
  }
  EXPECT_EQ(RunTimes("b.txt").size(), 3u);
  EXPECT_TRUE(Exists(env_.failed + "/b.txt"));

  // dropqctl retry revives the dead letter: same id, attempts reset; it succeeds now.
  Codes("b.txt", "");
  const CommandResult r = env_.Ctl({"retry", id});
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(WaitFor([&] { return StateIs(id, "done"); }, seconds(30))) << env_.DaemonLog();
  rec = JobRecord(env_.redis, "q", id);
  EXPECT_EQ(rec["attempt"], "1");
  EXPECT_EQ(rec["failures"], "0");
  EXPECT_TRUE(Exists(env_.done + "/b.txt"));
  EXPECT_EQ(env_.Stop(), 0);
}

TEST_F(RetryTest, PermanentCodeFailsAtOnceAndTempfailUsesNoAttempt) {
  Start("{ max_attempts: 2, initial_delay: 100ms, max_delay: 100ms }");
  Codes("perm.txt", "65\n");
  Codes("temp.txt", "75\n75\n75\n1\n");  // three tempfails, one real failure, then success
  WriteFile(env_.inbox + "/perm.txt", "x");
  WriteFile(env_.inbox + "/temp.txt", "y");
  const std::string perm = IdOf("perm.txt"), temp = IdOf("temp.txt");
  ASSERT_TRUE(
      WaitFor([&] { return StateIs(perm, "failed") && StateIs(temp, "done"); }, seconds(30)))
      << env_.DaemonLog();
  EXPECT_EQ(RunTimes("perm.txt").size(), 1u);
  EXPECT_EQ(JobRecord(env_.redis, "q", perm)["exit"], "65");
  auto rec = JobRecord(env_.redis, "q", temp);
  EXPECT_EQ(RunTimes("temp.txt").size(), 5u);
  EXPECT_EQ(rec["attempt"], "5");
  EXPECT_EQ(rec["tempfails"], "3");
  EXPECT_EQ(rec["failures"], "1");  // below max_attempts 2: tempfails did not count
  const nlohmann::json st = CtlStatus(env_, "q");
  EXPECT_EQ(st["scheduled"], 0);
  EXPECT_EQ(st["failed"], 1);
  EXPECT_EQ(env_.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
