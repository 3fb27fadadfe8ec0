// Hostile Redis: what dropqd does when someone edits its keys by hand. A job
// record with fields deleted or holding garbage (attempt="abc", a number past
// 64 bits, a negative one, a 1 MB value), and keys of dropq's namespace that
// hold the wrong type (pending a string or a hash, a job record a list, the
// counts hash a list, files a string). Every case must be logged, must not
// crash dropqd or make it spin, and once the key is fixed (deleted) files are
// processed again. Each test ends with dropqd alive, `dropqctl status`
// answering, and its peak memory (VmHWM) small.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "common/escape.h"
#include "common/job.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/proc_stats.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// dropqd waiting for events uses next to no CPU; this much over kQuietWindow
// (10%) is generous even under ASan, and far below a loop that spins.
constexpr milliseconds kQuietWindow{2000};
constexpr long long kMaxCpuMsInWindow = 200;
// dropqd's peak resident set: a few MiB normally, more under ASan.
constexpr long kMaxHwmKiB = 128 * 1024;

class HostileRedisTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(env_.redis.ok()); }

  // A noop queue that rescans its directory every second, so a file whose
  // event could not become a job is found again once Redis is sound.
  void WriteConfig(int workers = 2) {
    QueueSpec q;
    q.workers = workers;
    q.extra = "rescan_interval: 1s";
    env_.WriteConfig(q);
  }

  std::string Key(const std::string& suffix) const { return DropqEnv::Key("q", suffix); }

  // Writes `name` into the inbox and makes a pending job `id` for it in Redis
  // the way ENQUEUE does (record, :files entry, :pending), before dropqd runs.
  void SeedPendingJob(const std::string& id, const std::string& name) {
    const std::string path = env_.inbox + "/" + name;
    WriteFile(path, "content of " + name + "\n");
    struct stat st;
    ASSERT_EQ(::lstat(path.c_str(), &st), 0) << std::strerror(errno);
    const FileIdentity ident = FileIdentity::FromStat(st);
    env_.redis.Cmd({"HSET", Key("job:" + id), "name", name, "size", std::to_string(st.st_size),
                    "ident", ident.ToString(), "state", "pending", "enq", "1700000000000"});
    env_.redis.Cmd({"HSET", Key("files"), name, id});
    env_.redis.Cmd({"LPUSH", Key("pending"), id});
  }

  bool Logged(const std::string& needle) {
    return env_.DaemonLog().find(needle) != std::string::npos;
  }
  bool WaitLogged(const std::string& needle, milliseconds timeout = seconds(10)) {
    return WaitFor([&] { return Logged(needle); }, timeout);
  }

  // dropqd does not spin while the key is wrong.
  void ExpectQuiet(const std::string& what) {
    const long long cpu_ms = CpuMsOver(env_.daemon()->pid(), kQuietWindow);
    std::cout << "[ measure  ] " << what << ": dropqd used " << cpu_ms << " ms CPU in "
              << kQuietWindow.count() << " ms\n";
    EXPECT_GE(cpu_ms, 0) << "dropqd is gone";
    EXPECT_LT(cpu_ms, kMaxCpuMsInWindow) << what << ": dropqd is busy\n" << env_.DaemonLog();
  }

  // Drops `name` and waits until it reached done/.
  bool Processes(const std::string& name, milliseconds timeout = seconds(15)) {
    WriteFile(env_.inbox + "/" + name, name + "\n");
    return WaitFor([&] { return Exists(env_.done + "/" + name); }, timeout);
  }

  // The checks every test ends with.
  void ExpectHealthy() { ExpectDaemonHealthy(env_, kMaxHwmKiB); }

  DropqEnv env_;
};

// ---------------------------------------------------------------- job records

struct Edit {
  std::string id, name;
  std::vector<std::string> hdel;            // fields deleted
  std::map<std::string, std::string> hset;  // fields overwritten
  std::string want_attempt;                 // attempt recorded after the run
};

TEST_F(HostileRedisTest, JobRecordsEditedByHandAreRunOrCountedNeverACrash) {
  WriteConfig();
  const std::string mb(1 << 20, 'x');
  const std::vector<Edit> edits = {
      {"01JH0STILE0000000000000001", "no-ident.txt", {"ident"}, {}, "1"},
      {"01JH0STILE0000000000000002", "no-attempt.txt", {"attempt"}, {}, "1"},
      {"01JH0STILE0000000000000003", "attempt-abc.txt", {}, {{"attempt", "abc"}}, "1"},
      {"01JH0STILE0000000000000004",
       "attempt-huge.txt",
       {},
       {{"attempt", "99999999999999999999999"}},
       "1"},
      // A garbled count is read as 0 (not a number) or wraps as a uint32:
      // either way the run happens and is recorded.
      {"01JH0STILE0000000000000005", "attempt-neg.txt", {}, {{"attempt", "-5"}}, ""},
      {"01JH0STILE0000000000000006", "failures-neg.txt", {}, {{"failures", "-1"}}, "1"},
      {"01JH0STILE0000000000000007", "big-ident.txt", {}, {{"ident", mb}}, "1"},
      {"01JH0STILE0000000000000008", "big-field.txt", {}, {{"note", mb}}, "1"},
  };
  for (const Edit& e : edits) {
    SeedPendingJob(e.id, e.name);
    for (const auto& f : e.hdel) env_.redis.Cmd({"HDEL", Key("job:" + e.id), f});
    for (const auto& [f, v] : e.hset) env_.redis.Cmd({"HSET", Key("job:" + e.id), f, v});
  }
  // A record without its name cannot be run: dropqd does not know the file.
  const std::string no_name = "01JH0STILE0000000000000009";
  SeedPendingJob(no_name, "no-name.txt");
  env_.redis.Cmd({"HDEL", Key("job:" + no_name), "name"});

  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  for (const Edit& e : edits) {
    SCOPED_TRACE(e.name);
    EXPECT_TRUE(
        WaitFor([&] { return JobRecord(env_.redis, "q", e.id)["state"] == "done"; }, seconds(15)))
        << env_.DaemonLog();
    auto rec = JobRecord(env_.redis, "q", e.id);
    EXPECT_EQ(rec["result"], "ok");
    if (!e.want_attempt.empty()) {
      EXPECT_EQ(rec["attempt"], e.want_attempt);
    }
    std::cout << "[ measure  ] " << e.name << ": attempt recorded as " << rec["attempt"] << "\n";
    EXPECT_EQ(rec["disposed_to"], env_.done + "/" + e.name);
    EXPECT_TRUE(Logged("job.done queue=q job=" + e.id + " ")) << e.name;
  }
  // The nameless record is set aside as failed and counted as corrupt...
  EXPECT_TRUE(WaitFor([&] { return StatCounter(env_.redis, "q", "corrupt") == 1; }))
      << env_.DaemonLog();
  EXPECT_EQ(JobRecord(env_.redis, "q", no_name)["state"], "failed");
  EXPECT_TRUE(Logged("job.corrupt queue=q job=" + no_name)) << env_.DaemonLog();
  // ...and its file, still in the inbox, must not be stranded: some job has
  // to take it (at-least-once), and the dropped record must be logged.
  EXPECT_TRUE(WaitFor([&] { return !Exists(env_.inbox + "/no-name.txt"); }, seconds(10)))
      << "no-name.txt is stranded: :files still names " +
             env_.redis.Cmd({"HGET", Key("files"), "no-name.txt"}) + "\n"
      << env_.DaemonLog();
  EXPECT_TRUE(Logged(no_name)) << "the dropped record is not logged\n" << env_.DaemonLog();

  ExpectQuiet("after the edited records");
  EXPECT_TRUE(Processes("after.txt")) << env_.DaemonLog();
  EXPECT_TRUE(WaitFor([&] {
    // every edited record, no-name.txt under a new job, and after.txt
    return StatCounter(env_.redis, "q", "done") == static_cast<long long>(edits.size()) + 2;
  })) << env_.DaemonLog();
  ExpectHealthy();
  EXPECT_EQ(env_.Stop(), 0);
}

// A record whose name was edited into a path ("../x", "a/b") would send the
// handler and the disposition outside the watched directory: the job ends
// failed as corrupt, and no file anywhere is touched.
TEST_F(HostileRedisTest, AJobNameThatIsAPathEndsFailedAndTouchesNoFile) {
  WriteConfig();
  const std::string outside = env_.tmp.Sub("outside.txt");
  WriteFile(outside, "not dropq's\n");
  const std::string id = "01JH0STILE0000000000000010";
  SeedPendingJob(id, "traversal.txt");
  env_.redis.Cmd({"HSET", Key("job:" + id), "name", "../outside.txt"});
  env_.redis.Cmd({"HSET", Key("files"), "../outside.txt", id});
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  ASSERT_TRUE(
      WaitFor([&] { return JobRecord(env_.redis, "q", id)["state"] == "failed"; }, seconds(15)))
      << env_.DaemonLog();
  auto rec = JobRecord(env_.redis, "q", id);
  EXPECT_EQ(rec["error"].rfind("corrupt job record: name", 0), 0u) << rec["error"];
  EXPECT_TRUE(Logged("job.corrupt queue=q job=" + id)) << env_.DaemonLog();
  EXPECT_EQ(ReadFile(outside), "not dropq's\n");
  EXPECT_FALSE(Exists(env_.done + "/outside.txt"));
  EXPECT_FALSE(Exists(env_.failed + "/outside.txt"));
  EXPECT_TRUE(Processes("after.txt")) << env_.DaemonLog();
  ExpectHealthy();
  EXPECT_EQ(env_.Stop(), 0);
}

// ---------------------------------------------------------------- wrong types

struct WrongType {
  std::string label;
  std::string key;                // suffix after dropq:{q}:
  std::vector<std::string> make;  // the command that breaks it (after a DEL)
  std::string event;              // the log line dropqd must write
};

void PrintTo(const WrongType& w, std::ostream* os) { *os << w.label; }

class WrongTypeTest : public HostileRedisTest, public ::testing::WithParamInterface<WrongType> {};

// The key is broken while dropqd runs, a file arrives, the key is deleted:
// the file that arrived meanwhile and one that arrives after are processed.
TEST_P(WrongTypeTest, LoggedQuietAndRecoversOnceDeleted) {
  const WrongType& w = GetParam();
  WriteConfig();
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  ASSERT_TRUE(Processes("before.txt")) << env_.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env_.redis, "q", "done") == 1; }));

  env_.redis.Cmd({"DEL", Key(w.key)});
  std::vector<std::string> make = w.make;
  make.insert(make.begin() + 1, Key(w.key));
  env_.redis.Cmd(make);
  WriteFile(env_.inbox + "/during.txt", "during\n");
  EXPECT_TRUE(WaitLogged(w.event)) << env_.DaemonLog();
  ExpectQuiet(w.label);
  EXPECT_TRUE(env_.daemon()->running());
  const CommandResult st = env_.Ctl({"status"});
  std::cout << "[ measure  ] status while " << w.label << ": exit " << st.status << "\n"
            << st.out << st.err;

  env_.redis.Cmd({"DEL", Key(w.key)});
  EXPECT_TRUE(Processes("after.txt")) << env_.DaemonLog();
  EXPECT_TRUE(WaitFor([&] { return Exists(env_.done + "/during.txt"); }, seconds(10)))
      << "during.txt was not processed after the fix; :files says "
      << env_.redis.Cmd({"HGET", Key("files"), "during.txt"}) << "\n"
      << env_.DaemonLog();
  // Counted: the job record of the file after the fix, and the counts hash
  // (started afresh when it was the key deleted).
  const auto ids = JobIdsByName(env_.redis, "q");
  ASSERT_EQ(ids.count("after.txt"), 1u);
  EXPECT_TRUE(WaitFor([&] {
    return JobRecord(env_.redis, "q", ids.at("after.txt").at(0))["state"] == "done";
  })) << env_.DaemonLog();
  EXPECT_TRUE(WaitFor([&] { return StatCounter(env_.redis, "q", "done") >= 1; }))
      << env_.DaemonLog();
  ExpectHealthy();
  const auto stopped = env_.Stop(15, seconds(30));
  EXPECT_EQ(stopped, 0) << env_.DaemonLog();
}

INSTANTIATE_TEST_SUITE_P(
    Keys, WrongTypeTest,
    ::testing::Values(
        WrongType{
            "pending_string", "pending", {"SET", "garbage"}, "claim.failed queue=q err=WRONGTYPE"},
        WrongType{
            "pending_hash", "pending", {"HSET", "f", "v"}, "claim.failed queue=q err=WRONGTYPE"},
        WrongType{
            "files_string", "files", {"SET", "garbage"}, "enqueue.failed queue=q err=WRONGTYPE"},
        WrongType{"counts_list", "counts", {"RPUSH", "x"}, "enqueue.failed queue=q err=WRONGTYPE"}),
    [](const auto& info) { return info.param.label; });

// A job record that is a list: its id is in :pending and its name in :files.
// The claim that pops it sets it aside as corrupt; the scan makes a new job
// for its file, whose name it no longer holds.
TEST_F(HostileRedisTest, JobRecordThatIsAListDoesNotBlockOtherFiles) {
  WriteConfig();
  const std::string id = "01JH0STILE00000000000000L1";
  SeedPendingJob(id, "listed.txt");
  env_.redis.Cmd({"DEL", Key("job:" + id)});
  env_.redis.Cmd({"RPUSH", Key("job:" + id), "a", "b"});
  // An innocent file, there at start-up too: the scan enqueues both together.
  WriteFile(env_.inbox + "/innocent.txt", "i\n");

  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  EXPECT_TRUE(WaitLogged("job.corrupt queue=q job=" + id)) << env_.DaemonLog();
  EXPECT_EQ(StatCounter(env_.redis, "q", "corrupt"), 1);
  ExpectQuiet("job record a list");
  EXPECT_TRUE(WaitFor([&] { return Exists(env_.done + "/innocent.txt"); }, seconds(10)))
      << "a file next to the broken record was not processed\n"
      << env_.DaemonLog();

  env_.redis.Cmd({"DEL", Key("job:" + id)});
  EXPECT_TRUE(WaitFor([&] { return Exists(env_.done + "/listed.txt"); }, seconds(10)))
      << env_.DaemonLog();
  EXPECT_TRUE(Processes("after.txt")) << env_.DaemonLog();
  EXPECT_GE(StatCounter(env_.redis, "q", "done"), 2);
  ExpectHealthy();
  EXPECT_EQ(env_.Stop(), 0);
}

// A queue key of the wrong type (here the counts hash made a list) makes every
// script refuse before it writes anything: no file is claimed or moved while
// it is broken, nothing piles up in dropqd, and once the key is fixed every
// file is processed (the refused ENQUEUEs are made good by a rescan) and
// dropqd stops cleanly.
TEST_F(HostileRedisTest, RefusedAcksDoNotStallTheQueueAfterTheFix) {
  WriteConfig(/*workers=*/1);  // capacity 4: at most 6 jobs held
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  env_.redis.Cmd({"RPUSH", Key("counts"), "x"});
  for (int i = 0; i < 7; ++i) {
    WriteFile(env_.inbox + "/refused-" + std::to_string(i) + ".txt", "r\n");
  }
  EXPECT_TRUE(WaitLogged("failed queue=q err=WRONGTYPE")) << env_.DaemonLog();
  ExpectQuiet("counts a list");
  EXPECT_TRUE(ListDir(env_.done).empty()) << env_.DaemonLog();
  EXPECT_EQ(ListDir(env_.inbox).size(), 7u);  // safe where they were dropped
  env_.redis.Cmd({"DEL", Key("counts")});
  EXPECT_TRUE(Processes("after.txt", seconds(30))) << env_.DaemonLog();
  EXPECT_TRUE(WaitFor([&] { return ListDir(env_.done).size() == 8; }, seconds(30)))
      << env_.DaemonLog();
  ExpectHealthy();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(env_.Stop(15, seconds(40)), 0) << env_.DaemonLog();
  const auto stop_ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[ measure  ] SIGTERM to exit: " << stop_ms << " ms\n";
  EXPECT_LT(stop_ms, 5000) << env_.DaemonLog();
}

}  // namespace
}  // namespace dropq::test
