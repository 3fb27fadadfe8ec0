// Handlers that fail: a non-zero exit, a signal, a chatty stderr and a
// timeout leave the job `failed` with what happened recorded and the file in
// failed/; `dropqctl retry` brings a failed job back under the same id (one
// job, one enqueue) and `retry --all-failed --queue` does it for every one; a
// handler past its timeout is killed together with its children.
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// Fails while `marker` exists, in a way that depends on the file name;
// succeeds (logging the name) once it is gone.
constexpr char kFlakyHandler[] = R"sh(log=$1; marker=$2; name=$3
if [ -e "$marker" ]; then
  case "$name" in
    chatty*)
      i=0
      while [ $i -lt 200 ]; do
        echo "noise $i .................................................." >&2
        i=$((i+1))
      done
      echo "the last words" >&2
      exit 7;;
    sig*) kill -9 $$;;
    *) echo "first line" >&2; echo "boom: cannot handle $name" >&2; exit 3;;
  esac
fi
printf '%s\n' "$name" >> "$log"
)sh";

class FailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.redis.ok());
    log_ = env_.tmp.Sub("handler.log");
    marker_ = env_.tmp.Sub("fail-while-this-exists");
    WriteFile(marker_, "");
    const std::string script = WriteScript(env_.tmp.Sub("flaky.sh"), kFlakyHandler);
    QueueSpec q;
    q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log_ + "\", \"" + marker_ +
                "\", \"{name}\"]";
    env_.WriteConfig(q);
    ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  }

  // The id of the only job for `name`, "" if there is none or several.
  std::string IdOf(const std::string& name) { return OnlyJobId(env_.redis, "q", name); }

  bool StateIs(const std::string& id, const std::string& state) {
    return JobRecord(env_.redis, "q", id)["state"] == state;
  }

  nlohmann::json ShowJson(const std::string& id) {
    const CommandResult r = env_.Ctl({"show", "--json", id});
    EXPECT_EQ(r.status, 0) << r.err;
    return ParseJson(r.out);
  }

  DropqEnv env_;
  std::string log_, marker_;
};

TEST_F(FailureTest, NonZeroExitIsRecordedAndRetryBringsTheSameJobBack) {
  WriteFile(env_.inbox + "/bad.txt", "content\n");
  ASSERT_TRUE(WaitFor([&] { return Exists(env_.failed + "/bad.txt"); }, seconds(20)))
      << env_.DaemonLog();
  const std::string id = IdOf("bad.txt");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitFor([&] { return StateIs(id, "failed"); }));

  const nlohmann::json j = ShowJson(id);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["state"], "failed");
  EXPECT_EQ(j["result"], "exit");
  EXPECT_EQ(j["exit"], 3);
  EXPECT_EQ(j["attempt"], 1);
  EXPECT_EQ(j["stderr"], "first line\nboom: cannot handle bad.txt\n");
  EXPECT_EQ(j["disposed_to"], env_.failed + "/bad.txt");
  EXPECT_EQ(j["name"], "bad.txt");
  EXPECT_EQ(env_.redis.CmdList({"ZRANGE", DropqEnv::Key("q", "failed"), "0", "-1"}),
            std::vector<std::string>{id});
  EXPECT_EQ(StatCounter(env_.redis, "q", "failed"), 1);
  EXPECT_FALSE(Exists(env_.inbox + "/bad.txt"));
  EXPECT_TRUE(ReadLines(log_).empty());

  // The human form shows the stderr tail too.
  const CommandResult human = env_.Ctl({"show", id});
  EXPECT_EQ(human.status, 0);
  EXPECT_NE(human.out.find("  | boom: cannot handle bad.txt\n"), std::string::npos) << human.out;

  // Fixed: retry under the same id.
  ASSERT_EQ(::unlink(marker_.c_str()), 0);
  const CommandResult r = env_.Ctl({"retry", id});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, id + ": requeued\n");
  ASSERT_TRUE(WaitFor([&] { return StateIs(id, "done"); }, seconds(20))) << env_.DaemonLog();

  auto rec = JobRecord(env_.redis, "q", id);
  EXPECT_EQ(rec["result"], "ok");
  EXPECT_EQ(rec["attempt"], "1");  // attempts start over with a retry
  EXPECT_EQ(rec["retried"], "1");
  EXPECT_EQ(rec["last_result"], "exit");
  EXPECT_EQ(rec.count("exit"), 0u);
  EXPECT_EQ(rec.count("stderr"), 0u);
  EXPECT_EQ(rec["disposed_to"], env_.done + "/bad.txt");
  EXPECT_EQ(JobIds(env_.redis, "q"), std::vector<std::string>{id});  // no second job
  EXPECT_EQ(StatCounter(env_.redis, "q", "enqueued"), 1);
  EXPECT_EQ(StatCounter(env_.redis, "q", "retried"), 1);
  EXPECT_EQ(env_.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "failed")}), 0);
  EXPECT_EQ(env_.redis.CmdInt({"ZSCORE", DropqEnv::Key("q", "done"), id}) > 0, true);
  EXPECT_TRUE(Exists(env_.done + "/bad.txt"));
  EXPECT_TRUE(ListDir(env_.failed).empty());
  EXPECT_TRUE(ListDir(env_.inbox).empty());
  EXPECT_EQ(ReadLines(log_), std::vector<std::string>{"bad.txt"});

  // A done job cannot be retried; an unknown one is not found.
  const CommandResult again = env_.Ctl({"retry", id});
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("not failed"), std::string::npos) << again.err;
  EXPECT_EQ(env_.Ctl({"retry", "no-such-job"}).status, 1);
  EXPECT_EQ(StateIs(id, "done"), true);
  EXPECT_EQ(env_.Stop(), 0);
}

TEST_F(FailureTest, SignalAndLongStderrAreRecorded) {
  WriteFile(env_.inbox + "/sig.txt", "x\n");
  WriteFile(env_.inbox + "/chatty.txt", "x\n");
  ASSERT_TRUE(WaitFor([&] { return ListDir(env_.failed).size() == 2; }, seconds(20)))
      << env_.DaemonLog();
  const std::string sig = IdOf("sig.txt"), chatty = IdOf("chatty.txt");
  ASSERT_FALSE(sig.empty());
  ASSERT_FALSE(chatty.empty());
  ASSERT_TRUE(WaitFor([&] { return StateIs(sig, "failed") && StateIs(chatty, "failed"); }));

  nlohmann::json j = ShowJson(sig);
  EXPECT_EQ(j["result"], "signal");
  EXPECT_EQ(j["signal"], 9);
  EXPECT_FALSE(j.contains("exit"));

  j = ShowJson(chatty);
  EXPECT_EQ(j["result"], "exit");
  EXPECT_EQ(j["exit"], 7);
  const std::string tail = j["stderr"];
  EXPECT_EQ(tail.size(), 4096u);  // the last 4 KiB of about 12 KiB
  EXPECT_EQ(tail.substr(tail.size() - 15), "the last words\n");
  EXPECT_EQ(tail.find("noise 0 "), std::string::npos);
  EXPECT_EQ(env_.Stop(), 0);
}

TEST_F(FailureTest, RetryAllFailedRequeuesEveryFailedJobOfTheQueue) {
  const std::vector<std::string> names = {"one.txt", "two.txt", "three.txt"};
  for (const auto& n : names) WriteFile(env_.inbox + "/" + n, n);
  ASSERT_TRUE(WaitFor(
      [&] {
        return env_.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "failed")}) == 3;
      },
      seconds(20)))
      << env_.DaemonLog();
  std::set<std::string> ids;
  for (const auto& n : names) ids.insert(IdOf(n));
  ASSERT_EQ(ids.size(), 3u);
  ASSERT_EQ(ListDir(env_.failed).size(), 3u);

  // Usage errors first: --all-failed needs --queue; an unknown queue.
  EXPECT_EQ(env_.Ctl({"retry", "--all-failed"}).status, 64);
  EXPECT_EQ(env_.Ctl({"retry", "--all-failed", "--queue", "nope"}).status, 64);
  EXPECT_EQ(env_.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "failed")}), 3);

  ASSERT_EQ(::unlink(marker_.c_str()), 0);
  const CommandResult r = env_.Ctl({"retry", "--all-failed", "--queue", "q", "--json"});
  EXPECT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = ParseJson(r.out);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  std::set<std::string> retried;
  for (const auto& e : j["retried"]) retried.insert(e.get<std::string>());
  EXPECT_EQ(retried, ids);
  EXPECT_TRUE(j["errors"].empty());

  ASSERT_TRUE(WaitFor([&] { return StatCounter(env_.redis, "q", "done") == 3; }, seconds(20)))
      << env_.DaemonLog();
  for (const auto& id : ids) EXPECT_TRUE(StateIs(id, "done")) << id;
  EXPECT_EQ(JobIds(env_.redis, "q").size(), 3u);
  EXPECT_EQ(StatCounter(env_.redis, "q", "enqueued"), 3);
  EXPECT_EQ(env_.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "failed")}), 0);
  EXPECT_EQ(ListDir(env_.done), (std::vector<std::string>{"one.txt", "three.txt", "two.txt"}));
  EXPECT_TRUE(ListDir(env_.failed).empty());
  const auto runs = Tally(ReadLines(log_));
  EXPECT_EQ(runs, (std::map<std::string, int>{{"one.txt", 1}, {"three.txt", 1}, {"two.txt", 1}}));

  // Nothing left to retry: success with an empty list.
  const CommandResult none = env_.Ctl({"retry", "--all-failed", "--queue", "q", "--json"});
  EXPECT_EQ(none.status, 0);
  EXPECT_TRUE(ParseJson(none.out)["retried"].empty()) << none.out;
  EXPECT_EQ(env_.Stop(), 0);
}

TEST_F(FailureTest, RetryMovesBackAFileThatGotAFallbackName) {
  // failed/ already holds a bad.txt from an earlier failure: the new one is
  // moved beside it under a name with its job id, and retry finds it there.
  WriteFile(env_.failed + "/bad.txt", "an older failure\n");
  WriteFile(env_.inbox + "/bad.txt", "the new one\n");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env_.redis, "q", "failed") == 1; }, seconds(20)))
      << env_.DaemonLog();
  const std::string id = IdOf("bad.txt");
  ASSERT_FALSE(id.empty());
  const std::string fallback = env_.failed + "/bad." + id + ".txt";
  EXPECT_EQ(JobRecord(env_.redis, "q", id)["disposed_to"], fallback);
  EXPECT_EQ(ReadFile(fallback), "the new one\n");

  ASSERT_EQ(::unlink(marker_.c_str()), 0);
  const CommandResult r = env_.Ctl({"retry", id});
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(WaitFor([&] { return StateIs(id, "done"); }, seconds(20))) << env_.DaemonLog();
  EXPECT_EQ(ReadFile(env_.done + "/bad.txt"), "the new one\n");
  EXPECT_EQ(ListDir(env_.failed), std::vector<std::string>{"bad.txt"});
  EXPECT_EQ(ReadFile(env_.failed + "/bad.txt"), "an older failure\n");
  EXPECT_EQ(JobIds(env_.redis, "q"), std::vector<std::string>{id});
  EXPECT_EQ(env_.Stop(), 0);
}

TEST_F(FailureTest, RetryAllFailedReportsTheJobsItCouldNotRetry) {
  WriteFile(env_.inbox + "/kept.txt", "k");
  WriteFile(env_.inbox + "/lost.txt", "l");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env_.redis, "q", "failed") == 2; }, seconds(20)))
      << env_.DaemonLog();
  const std::string kept = IdOf("kept.txt"), lost = IdOf("lost.txt");
  ASSERT_FALSE(kept.empty());
  ASSERT_FALSE(lost.empty());
  // An operator removed one of the failed files.
  ASSERT_EQ(::unlink((env_.failed + "/lost.txt").c_str()), 0);
  ASSERT_EQ(::unlink(marker_.c_str()), 0);

  const CommandResult r = env_.Ctl({"retry", "--all-failed", "--queue", "q", "--json"});
  EXPECT_EQ(r.status, 1);
  const nlohmann::json j = ParseJson(r.out);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["retried"], nlohmann::json::array({kept}));
  ASSERT_TRUE(j["errors"].contains(lost)) << r.out;
  EXPECT_NE(j["errors"][lost].get<std::string>().find("file not found"), std::string::npos);
  EXPECT_NE(r.err.find(lost), std::string::npos) << r.err;

  ASSERT_TRUE(WaitFor([&] { return StateIs(kept, "done"); }, seconds(20))) << env_.DaemonLog();
  // The one that could not be retried is failed as before, still listed.
  EXPECT_TRUE(StateIs(lost, "failed"));
  EXPECT_EQ(env_.redis.CmdList({"ZRANGE", DropqEnv::Key("q", "failed"), "0", "-1"}),
            std::vector<std::string>{lost});
  EXPECT_EQ(env_.redis.CmdInt({"HEXISTS", DropqEnv::Key("q", "files"), "lost.txt"}), 0);
  EXPECT_EQ(env_.Stop(), 0);
}

// When the retried file cannot be put back because a file of the same name is
// in the inbox again (a newer upload, processed and kept), the failed retry
// restores that name's `:files` entry (the kept file's "~identity" marker), so
// the kept file is not processed again at the next start.
TEST(RetryConflictTest, FailedRetryKeepsTheMarkerOfAKeptFileWithTheSameName) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log"), marker = env.tmp.Sub("fail");
  const std::string script = WriteScript(env.tmp.Sub("handler.sh"), kFlakyHandler);
  QueueSpec q;
  q.handler =
      "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"" + marker + "\", \"{name}\"]";
  q.on_success = "keep";
  q.on_failure = "failed";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  // A first a.txt fails and goes to failed/.
  WriteFile(marker, "");
  WriteFile(env.inbox + "/a.txt", "first\n");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "failed") == 1; }, seconds(20)))
      << env.DaemonLog();
  const std::string failed_id =
      env.redis.CmdList({"ZRANGE", DropqEnv::Key("q", "failed"), "0", "-1"}).at(0);
  ASSERT_TRUE(Exists(env.failed + "/a.txt"));

  // A second a.txt arrives, succeeds and stays in the inbox (keep).
  ASSERT_EQ(::unlink(marker.c_str()), 0);
  WriteFile(env.inbox + "/a.txt", "second\n");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 1; }, seconds(20)))
      << env.DaemonLog();
  const std::string kept_marker = env.redis.Cmd({"HGET", DropqEnv::Key("q", "files"), "a.txt"});
  ASSERT_EQ(kept_marker.substr(0, 1), "~");
  ASSERT_EQ(ReadLines(log), std::vector<std::string>{"a.txt"});

  // Retrying the first one cannot put its file back: the name is taken.
  const CommandResult r = env.Ctl({"retry", failed_id});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("File exists"), std::string::npos) << r.err;
  EXPECT_EQ(JobRecord(env.redis, "q", failed_id)["state"], "failed");
  EXPECT_TRUE(Exists(env.failed + "/a.txt"));
  EXPECT_EQ(ReadFile(env.inbox + "/a.txt"), "second\n");
  // Nothing changed for the kept file...
  EXPECT_EQ(env.redis.Cmd({"HGET", DropqEnv::Key("q", "files"), "a.txt"}), kept_marker);

  // ...so a restart does not process it again. (Once the file is old enough
  // for the start-up scan to decide at once, so the probe comes after it.)
  ASSERT_EQ(env.Stop(), 0);
  ASSERT_TRUE(WaitFor([&] { return FileAge(env.inbox + "/a.txt") > seconds(3); }, seconds(10)));
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  WriteFile(env.inbox + "/probe.txt", "p\n");
  // Once the probe ran and nothing is pending or running, the scan's
  // verdict on a.txt has played out.
  ASSERT_TRUE(WaitFor(
      [&] {
        return Tally(ReadLines(log)).count("probe.txt") == 1 &&
               env.redis.CmdInt({"LLEN", DropqEnv::Key("q", "pending")}) == 0 &&
               env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "active")}) == 0;
      },
      seconds(20)))
      << env.DaemonLog();
  EXPECT_EQ(Tally(ReadLines(log)), (std::map<std::string, int>{{"a.txt", 1}, {"probe.txt", 1}}));
  EXPECT_EQ(env.Stop(), 0);
}

TEST(TimeoutTest, HandlerPastItsTimeoutIsKilledWithItsChildren) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string pids = env.tmp.Mkdir("pids");
  // The handler starts a background child, writes both pids, and sleeps.
  const std::string script =
      WriteScript(env.tmp.Sub("hang.sh"),
                  "sleep 300 &\n"
                  "echo $! > \"$1/child.tmp\" && mv \"$1/child.tmp\" \"$1/child\"\n"
                  "echo $$ > \"$1/self.tmp\" && mv \"$1/self.tmp\" \"$1/self\"\n"
                  "echo 'about to hang' >&2\n"
                  "sleep 300\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + pids + "\"]\ntimeout: 1s";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/hang.txt", "x\n");
  ASSERT_TRUE(
      WaitFor([&] { return Exists(pids + "/child") && Exists(pids + "/self"); }, seconds(20)))
      << env.DaemonLog();
  const pid_t child = ReadPid(pids + "/child"), self = ReadPid(pids + "/self");
  ASSERT_GT(child, 0);
  ASSERT_GT(self, 0);

  ASSERT_TRUE(WaitFor([&] { return Exists(env.failed + "/hang.txt"); }, seconds(20)))
      << env.DaemonLog();
  const auto by_name = JobIdsByName(env.redis, "q");
  ASSERT_EQ(by_name.count("hang.txt"), 1u);
  const std::string id = by_name.at("hang.txt")[0];
  ASSERT_TRUE(WaitFor([&] { return JobRecord(env.redis, "q", id)["state"] == "failed"; }));
  auto rec = JobRecord(env.redis, "q", id);
  EXPECT_EQ(rec["result"], "timeout");
  EXPECT_EQ(rec["signal"], "9");
  EXPECT_EQ(rec["error"], "timeout after 1000ms");
  EXPECT_EQ(rec["stderr"], "about to hang\n");
  EXPECT_EQ(rec.count("exit"), 0u);

  // The handler and the child it started are both gone.
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(self); }, seconds(10))) << "handler " << self;
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(child); }, seconds(10))) << "child " << child;
  EXPECT_TRUE(env.daemon()->running());
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
