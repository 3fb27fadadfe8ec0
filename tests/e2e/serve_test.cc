// Serve handlers (daemon/serve_executor.h): real long-lived Python processes
// (tests/support/serve_handler.py) fed jobs over fd 3 and answering on fd 4,
// with every way such a process can go wrong, recycling, kill -9, SIGTERM
// and names that are not UTF-8.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/escape.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/proc_stats.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// A dropqd on a bare machine starts at about 10 MiB, an ASan one at over 60:
// the bound is on what its peak grows by.
constexpr long kMaxGrowthKiB = 24 * 1024;

// One run of one job, as the handler logged it.
struct HandlerRun {
  std::string name_hex;
  long pid = 0;
  double start = 0, end = -1;  // end -1: it never ended (killed)
  std::string path_hex;
};

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.redis.ok());
    log_ = env_.tmp.Sub("serve.log");
    setenv("SERVE_LOG", log_.c_str(), 1);
  }
  void TearDown() override { unsetenv("SERVE_LOG"); }

  // The queue's handler: serve_handler.py with `args`, and more handler keys.
  void Configure(int workers, const std::string& args, const std::string& keys = "",
                 const std::string& top = "") {
    QueueSpec q;
    q.workers = workers;
    q.handler = "serve: [\"/usr/bin/python3\", \"" + std::string(DROPQ_SOURCE_DIR) +
                "/tests/support/serve_handler.py\"" + args + "]\n" + keys;
    env_.WriteConfig(q, top);
  }

  void Drop(const std::string& name, const std::string& content) {
    WriteAndRename(env_.tmp.Sub("staging"), env_.inbox + "/" + name, content);
  }

  std::vector<HandlerRun> Runs() {
    std::map<std::pair<std::string, long>, HandlerRun> open;  // by name and pid
    std::vector<HandlerRun> out;
    for (const std::string& line : ReadLines(log_)) {
      char kind[8], hex[1024], path[4096];
      long pid;
      double t;
      const int n =
          std::sscanf(line.c_str(), "%7s %1023s %ld %lf %4095s", kind, hex, &pid, &t, path);
      if (n < 4) continue;
      if (std::string(kind) == "start") {
        open[{hex, pid}] = HandlerRun{hex, pid, t, -1, ""};
      } else if (auto it = open.find({hex, pid}); it != open.end()) {
        it->second.end = t;
        it->second.path_hex = n == 5 ? path : "";
        out.push_back(it->second);
        open.erase(it);
      }
    }
    for (auto& [k, r] : open) out.push_back(r);
    return out;
  }

  // How many runs of each name (hex) ended.
  std::map<std::string, int> Ended() {
    std::map<std::string, int> n;
    for (const HandlerRun& r : Runs()) {
      if (r.end >= 0) ++n[r.name_hex];
    }
    return n;
  }

  // Exactly `files` names have runs that ended, one each.
  void ExpectEachRanOnce(int files) {
    const std::map<std::string, int> ended = Ended();
    EXPECT_EQ(ended.size(), static_cast<size_t>(files));
    for (const auto& [name, n] : ended) EXPECT_EQ(n, 1) << name;
  }

  std::map<std::string, std::string> Record(const std::string& name) {
    return JobRecord(env_.redis, "q", OnlyJobId(env_.redis, "q", name));
  }

  // The config's top-level key that serves /metrics on `port`.
  static std::string MetricsAt(int port) {
    return "metrics: { listen: \"127.0.0.1:" + std::to_string(port) + "\" }\n";
  }

  double Metric(int port, const std::string& series) {
    const std::string page = GetMetrics(port).second;
    const size_t at = page.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stod(page.substr(at + series.size() + 2));
  }

  DropqEnv env_;
  std::string log_;
};

// 1. 5,000 files, each hashed once by a long-lived Python process, the
// digests in the records.
TEST_F(ServeTest, FiveThousandFilesHashedOnceWithTheirResults) {
  Configure(4, "");
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  constexpr int kFiles = 5000;
  for (int i = 0; i < kFiles; ++i) Drop("f" + std::to_string(i), "content " + std::to_string(i));
  ASSERT_TRUE(WaitForOutcomes(env_.redis, kFiles, 0, seconds(240))) << env_.DaemonLog();
  ExpectEachRanOnce(kFiles);
  int checked = 0;
  for (const auto& [name, ids] : JobIdsByName(env_.redis, "q")) {
    ASSERT_EQ(ids.size(), 1u) << name;
    const auto rec = JobRecord(env_.redis, "q", ids[0]);
    const std::string want = Sha256Hex("content " + name.substr(1));
    EXPECT_NE(rec.at("response").find("\"sha256\":\"" + want + "\""), std::string::npos)
        << rec.at("response");
    EXPECT_EQ(rec.at("result"), "ok");
    ++checked;
  }
  EXPECT_EQ(checked, kFiles);
  // Four processes did it all: started once each.
  EXPECT_EQ(Count(env_.DaemonLog(), "serve.started"), 4u);
  EXPECT_EQ(env_.Stop(), 0);
}

// 2. Processes that crash, hang, write garbage, flood fd 4 or print freely:
// each failure is its own job's, with a clear error; the process is started
// again; every other file is processed once; dropqd's memory stays bounded.
TEST_F(ServeTest, EachMisbehaviourFailsOnlyItsJob) {
  const int port = FreePort();
  Configure(2, "", "timeout: 2s", MetricsAt(port));
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  const long hwm0 = ProcStatusKiB(env_.daemon()->pid(), "VmHWM");
  std::set<std::string> good;
  for (int i = 0; i < 200; ++i) {
    // Every 50th job crashes its process.
    const std::string name = (i % 50 == 49 ? "crash-" : "ok-") + std::to_string(i);
    Drop(name, "x" + std::to_string(i));
    if (name[0] == 'o') good.insert(name);
  }
  for (const char* name : {"hang-1", "hang-2", "garbage-1", "flood-1", "print-1", "print-2"}) {
    Drop(name, name);
  }
  good.insert("print-1");
  good.insert("print-2");
  const long long want_failed = 4 + 2 + 1 + 1;
  ASSERT_TRUE(
      WaitForOutcomes(env_.redis, static_cast<long long>(good.size()), want_failed, seconds(120)))
      << env_.DaemonLog().substr(0, 20000);
  for (const std::string& name : good) EXPECT_EQ(Record(name)["state"], "done") << name;
  for (int i = 49; i < 200; i += 50) {
    const auto rec = Record("crash-" + std::to_string(i));
    EXPECT_EQ(rec.at("state"), "failed");
    EXPECT_EQ(rec.at("result"), "exit");
    EXPECT_EQ(rec.at("exit"), "3");
    EXPECT_NE(rec.at("error").find("exited (exit status 3) during the job"), std::string::npos)
        << rec.at("error");
  }
  for (const char* name : {"hang-1", "hang-2"}) {
    const auto rec = Record(name);
    EXPECT_EQ(rec.at("result"), "timeout") << name;
    EXPECT_EQ(rec.at("error"), "timeout after 2000ms");
  }
  auto rec = Record("garbage-1");
  EXPECT_EQ(rec.at("result"), "error");
  EXPECT_NE(rec.at("error").find("protocol error: not JSON: \"this is not json\""),
            std::string::npos)
      << rec.at("error");
  rec = Record("flood-1");
  EXPECT_EQ(rec.at("result"), "error");
  EXPECT_NE(rec.at("error").find("an answer line longer than 1024 KiB"), std::string::npos)
      << rec.at("error");
  // Printing is free: logged with the job id, up to a bound, and its stderr
  // tail is in the record.
  const std::string log = env_.DaemonLog();
  const std::string print1 = OnlyJobId(env_.redis, "q", "print-1");
  EXPECT_NE(log.find("serve.stdout queue=q pid="), std::string::npos);
  EXPECT_NE(log.find("job=" + print1 + " line=progress\\x200\\x20of\\x20" + print1),
            std::string::npos);
  EXPECT_NE(log.find("serve.output_dropped queue=q"), std::string::npos);
  EXPECT_NE(Record("print-1").at("stderr").find("warning 2"), std::string::npos);
  // Every other file once.
  const std::map<std::string, int> ended = Ended();
  for (const std::string& name : good) EXPECT_EQ(ended.at(HexBytes(name)), 1) << name;
  // The metric says why processes were replaced.
  EXPECT_EQ(Metric(port, "dropq_serve_replaced_total{queue=\"q\",reason=\"exit\"}"), 4);
  EXPECT_EQ(Metric(port, "dropq_serve_replaced_total{queue=\"q\",reason=\"timeout\"}"), 2);
  EXPECT_EQ(Metric(port, "dropq_serve_replaced_total{queue=\"q\",reason=\"protocol\"}"), 2);
  EXPECT_EQ(Metric(port, "dropq_serve_processes{queue=\"q\"}"), 2);
  ExpectDaemonHealthy(env_, hwm0 + kMaxGrowthKiB);
  EXPECT_EQ(env_.Stop(), 0);
}

// 3. max_jobs: 100 over 1,000 files with 2 processes: about 10 recycles,
// nothing lost or run twice across them.
TEST_F(ServeTest, MaxJobsRecyclesAndLosesNothing) {
  const int port = FreePort();
  Configure(2, "", "max_jobs: 100", MetricsAt(port));
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  constexpr int kFiles = 1000;
  for (int i = 0; i < kFiles; ++i) Drop("f" + std::to_string(i), std::to_string(i));
  ASSERT_TRUE(WaitForOutcomes(env_.redis, kFiles, 0, seconds(120))) << env_.DaemonLog();
  ExpectEachRanOnce(kFiles);
  // A tenth recycle may still be under way when the last outcome lands: wait
  // until the metric and the log agree, then check both.
  double recycled = -1;
  size_t logged = 0;
  EXPECT_TRUE(WaitFor(
      [&] {
        recycled = Metric(port, "dropq_serve_replaced_total{queue=\"q\",reason=\"max_jobs\"}");
        logged = Count(env_.DaemonLog(), "reason=max_jobs jobs=100");
        return recycled >= 9 && logged == static_cast<size_t>(recycled);
      },
      seconds(5)))
      << "metric " << recycled << ", log " << logged;
  std::printf("[ measure  ] %.0f recycles for 1,000 jobs at max_jobs 100\n", recycled);
  EXPECT_LE(recycled, 10);
  EXPECT_EQ(env_.Stop(), 0);
}

// 3b. max_rss: a process that keeps 20 MiB per job is replaced once past 60M.
TEST_F(ServeTest, MaxRssRecyclesALeakingProcess) {
  const int port = FreePort();
  Configure(1, ", \"--leak\", \"20\"", "max_rss: 60M", MetricsAt(port));
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  for (int i = 0; i < 12; ++i) Drop("f" + std::to_string(i), "x");
  ASSERT_TRUE(WaitForOutcomes(env_.redis, 12, 0, seconds(60))) << env_.DaemonLog();
  double recycled = -1;
  EXPECT_TRUE(WaitFor(
      [&] {
        recycled = Metric(port, "dropq_serve_replaced_total{queue=\"q\",reason=\"max_rss\"}");
        return recycled >= 3;
      },
      seconds(5)))
      << recycled;
  EXPECT_NE(env_.DaemonLog().find("serve.recycle queue=q"), std::string::npos);
  EXPECT_EQ(env_.Stop(), 0);
}

// 4. kill -9 of dropqd with every process busy: its processes see EOF or
// are killed by the next start's orphan sweep before their jobs run again;
// no two runs of a file overlap, and the re-runs are marked interrupted.
TEST_F(ServeTest, KillNineWhileBusyNeverOverlapsARun) {
  Configure(2, ", \"--sleep\", \"3\"");
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  for (int i = 0; i < 4; ++i) Drop("f" + std::to_string(i), "x");
  ASSERT_TRUE(WaitFor([&] { return Runs().size() >= 2; }, seconds(20)));
  ::kill(env_.daemon()->pid(), SIGKILL);
  env_.daemon()->Wait(seconds(10));
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  ASSERT_TRUE(WaitForOutcomes(env_.redis, 4, 0, seconds(60))) << env_.DaemonLog();
  std::map<std::string, std::vector<HandlerRun>> by_name;
  for (const HandlerRun& r : Runs()) by_name[r.name_hex].push_back(r);
  const std::string log = env_.DaemonLog();
  int rerun = 0;
  for (auto& [name, runs] : by_name) {
    std::sort(runs.begin(), runs.end(),
              [](const HandlerRun& a, const HandlerRun& b) { return a.start < b.start; });
    for (size_t i = 1; i < runs.size(); ++i) {
      const HandlerRun& before = runs[i - 1];
      if (before.end >= 0) {
        EXPECT_LE(before.end, runs[i].start) << name;
      } else {
        // Never ended: the next start's orphan sweep killed it first.
        EXPECT_NE(log.find("orphan.killed pid=" + std::to_string(before.pid)), std::string::npos)
            << name << log;
      }
    }
    if (runs.size() > 1) {
      ++rerun;
      std::string plain;
      for (size_t i = 0; i + 1 < name.size(); i += 2) {
        plain += static_cast<char>(std::stoi(name.substr(i, 2), nullptr, 16));
      }
      EXPECT_EQ(Record(plain)["interrupted"], "1") << plain;
    }
  }
  EXPECT_GE(rerun, 1);
  EXPECT_EQ(env_.Stop(), 0);
}

// 5. SIGTERM mid-burst: the jobs running finish, each process gets EOF and
// exits 0, dropqd exits 0; after a restart everything is processed once.
TEST_F(ServeTest, SigtermFinishesTheCurrentJobsAndClosesFd3) {
  Configure(2, ", \"--sleep\", \"0.3\"");
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  constexpr int kFiles = 20;
  for (int i = 0; i < kFiles; ++i) Drop("f" + std::to_string(i), "x");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env_.redis, "q", "done") >= 4; }, seconds(30)));
  EXPECT_EQ(env_.Stop(SIGTERM), 0);
  const std::string log = env_.DaemonLog();
  EXPECT_EQ(Count(log, "how=exit\\x20status\\x200 reason=stop"), 2u) << log;
  EXPECT_EQ(StatCounter(env_.redis, "q", "interrupted"), 0);
  for (const HandlerRun& r : Runs()) EXPECT_GE(r.end, 0) << "a run was cut short";
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  ASSERT_TRUE(WaitForOutcomes(env_.redis, kFiles, 0, seconds(60))) << env_.DaemonLog();
  ExpectEachRanOnce(kFiles);
  EXPECT_EQ(env_.Stop(), 0);
}

// 5b. A stop while processes are replaced and slow to get ready: the job
// made ready for a process that will not come back goes back to pending
// (the drain does not wait for it), a process told to exit while loading
// is not taken for a protocol breaker, and nothing is lost or run twice.
TEST_F(ServeTest, AStopDuringRecyclesLeavesNoJobBehind) {
  Configure(1, ", \"--sleep\", \"0.2\", \"--ready-after\", \"0.5\"", "max_jobs: 1");
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  constexpr int kFiles = 6;
  for (int i = 0; i < kFiles; ++i) Drop("f" + std::to_string(i), "x");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env_.redis, "q", "done") >= 1; }, seconds(30)));
  EXPECT_EQ(env_.Stop(SIGTERM, seconds(20)), 0);  // no drain left waiting
  std::string log = env_.DaemonLog();
  EXPECT_EQ(log.find("protocol_error"), std::string::npos) << log;
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  ASSERT_TRUE(WaitForOutcomes(env_.redis, kFiles, 0, seconds(60))) << env_.DaemonLog();
  ExpectEachRanOnce(kFiles);
  EXPECT_EQ(env_.Stop(), 0);
  log = env_.DaemonLog();
  EXPECT_EQ(log.find("protocol_error"), std::string::npos) << log;
}

// 6. A name that is not UTF-8 reaches the process as its bytes
// (os.fsencode), and answers that echo it are protocol, not errors.
TEST_F(ServeTest, NamesThatAreNotUtf8TravelAsTheirBytes) {
  Configure(1, "");
  ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  const std::string name = "caf\xe9-\xff.bin";
  const std::string echo = "echo-\xfe";
  Drop(name, "latin");
  Drop(echo, "e");
  ASSERT_TRUE(WaitForOutcomes(env_.redis, 1, 1, seconds(30))) << env_.DaemonLog();
  bool seen = false;
  for (const HandlerRun& r : Runs()) {
    if (r.name_hex != HexBytes(name)) continue;
    seen = true;
    // The path it opened ends in the same bytes.
    const std::string tail = HexBytes("/" + name);
    ASSERT_GE(r.path_hex.size(), tail.size());
    EXPECT_EQ(r.path_hex.substr(r.path_hex.size() - tail.size()), tail);
  }
  EXPECT_TRUE(seen);
  auto rec = Record(name);
  EXPECT_EQ(rec.at("state"), "done");
  EXPECT_NE(rec.at("response").find("\"name\":\"caf\\udce9-\\udcff.bin\""), std::string::npos)
      << rec.at("response");
  rec = Record(echo);
  EXPECT_EQ(rec.at("state"), "failed");
  EXPECT_EQ(rec.at("result"), "handler_error");
  EXPECT_EQ(rec.at("error"), "refused " + echo);
  EXPECT_EQ(env_.DaemonLog().find("protocol_error"), std::string::npos);
  EXPECT_EQ(env_.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
