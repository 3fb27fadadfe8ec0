// Kill -9 storm: a burst of files while dropqd is SIGKILLed at random moments
// and restarted each time. At the end every file was processed at least
// once, every job is done, none is left active, and every file that ran more
// than once has a job record that says its run was interrupted. Orphaned
// handlers are left running: the restarted dropqd must kill them itself.
// DROPQ_STORM_FILES and DROPQ_STORM_ROUNDS make it longer (scripts/test --long).
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
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

int EnvInt(const char* name, int def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : def;
}

TEST(KillStormTest, NothingLostNothingStuck) {
  const int files = EnvInt("DROPQ_STORM_FILES", 5000);
  const int rounds = EnvInt("DROPQ_STORM_ROUNDS", 10);
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  // Short runs, logged at start and end (one write per line).
  const std::string script = WriteScript(env.tmp.Sub("handler.sh"),
                                         "echo \"start $2 $$\" >> \"$1\"\n"
                                         "sleep 0.01\n"
                                         "echo \"end $2 $$\" >> \"$1\"\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\"]";
  q.workers = 2;
  // Every job's record is checked below: none may be trimmed (default 10,000).
  q.extra = "keep_done: " + std::to_string(files);
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  std::mt19937 rng(12345);
  const std::string staging = env.tmp.Mkdir("staging");
  int dropped = 0;
  for (int round = 0; round < rounds; ++round) {
    // Drop a share of the files, let it work for a random moment, kill it.
    const int until = files * (round + 1) / rounds;
    for (; dropped < until; ++dropped) {
      const std::string n = "s-" + std::to_string(dropped) + ".dat";
      WriteAndRename(staging + "/" + n, env.inbox + "/" + n, n);
    }
    std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(50, 600)(rng)));
    ASSERT_EQ(env.Stop(SIGKILL, seconds(10)), 128 + SIGKILL);
    ASSERT_TRUE(env.Start()) << env.DaemonLog();
  }
  // The backlog left after the storm takes its time (20,000 files under
  // --long at ~70 files/s): wait while done/ grows, fail once it stalls.
  const auto all_done = [&] {
    return ListDir(env.inbox).empty() &&
           env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "active")}) == 0 &&
           env.redis.CmdInt({"LLEN", DropqEnv::Key("q", "pending")}) == 0;
  };
  size_t done_before = 0;
  bool finished = false;
  for (;;) {
    finished = WaitFor(all_done, seconds(60), milliseconds(100));
    const size_t done_now = ListDir(env.done).size();
    if (finished || done_now == done_before) break;  // done, or 60 s without progress
    done_before = done_now;
  }
  ASSERT_TRUE(finished) << "stalled at " << done_before << " of " << files << " files done\n"
                        << env.DaemonLog();

  // Every file processed at least once and now in done/; every job done.
  // Overlaps: a run of a file that ends after another run of the same file
  // started. (A run killed with its dropqd never ends: its orphan was
  // killed before the job was handed out again.)
  std::map<std::string, int> starts, ends;
  std::map<std::string, std::set<std::string>> open, open_at_start;  // name -> pids
  int overlaps = 0;
  for (const std::string& line : ReadLines(log)) {
    const size_t a = line.find(' '), b = line.rfind(' ');
    if (a == std::string::npos || b <= a) continue;
    const std::string what = line.substr(0, a), n = line.substr(a + 1, b - a - 1),
                      pid = line.substr(b + 1);
    if (what == "start") {
      ++starts[n];
      open_at_start[n].insert(open[n].begin(), open[n].end());
      open[n].insert(pid);
    } else if (what == "end") {
      ++ends[n];
      open[n].erase(pid);
      if (open_at_start[n].count(pid) != 0) ++overlaps;
    }
  }
  const auto by_name = JobIdsByName(env.redis, "q");
  int reruns = 0, unexplained = 0, lost = 0, not_done = 0;
  for (int i = 0; i < files; ++i) {
    const std::string n = "s-" + std::to_string(i) + ".dat";
    EXPECT_GE(ends[n], 1) << n << " never finished";
    EXPECT_TRUE(Exists(env.done + "/" + n)) << n;
    if (ends[n] == 0 || !Exists(env.done + "/" + n)) ++lost;
    ASSERT_EQ(by_name.count(n), 1u) << n;
    ASSERT_EQ(by_name.at(n).size(), 1u) << n << " has several jobs";
    auto rec = JobRecord(env.redis, "q", by_name.at(n)[0]);
    EXPECT_EQ(rec["state"], "done") << n;
    if (rec["state"] != "done") ++not_done;
    if (starts[n] > 1) {
      ++reruns;
      EXPECT_GE(std::atoi(rec["interrupted"].c_str()), 1) << n << " ran again without a reason";
      if (std::atoi(rec["interrupted"].c_str()) < 1) ++unexplained;
    }
  }
  EXPECT_EQ(overlaps, 0);
  const long long stuck = env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "active")}) +
                          env.redis.CmdInt({"LLEN", DropqEnv::Key("q", "pending")});
  std::cout << "[ measure  ] kill storm: files=" << files << " kills=" << rounds << " lost=" << lost
            << " reruns=" << reruns << " unexplained_reruns=" << unexplained
            << " overlaps=" << overlaps << " not_done=" << not_done << " stuck=" << stuck << "\n";
  EXPECT_EQ(stuck, 0);
  EXPECT_EQ(ListDir(env.done).size(), static_cast<size_t>(files));  // no fallback copies
  RecordProperty("files", files);
  RecordProperty("kills", rounds);
  RecordProperty("reruns", reruns);
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
