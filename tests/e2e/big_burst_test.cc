// A burst of 100,000 files: every one becomes exactly one job and is done,
// and dropqd's memory stays bounded by its in-memory queue, not by the
// backlog. Events it cannot enqueue yet wait in the kernel's inotify queue
// (and, past max_queued_events, are found again by a rescan); claimed jobs
// are bounded by `capacity`. The peak RSS (VmHWM) after the whole burst is
// compared with the one after the first 10,000 files, with a generous
// margin: the tight figure lives in bench/measure.
// DROPQ_BIG_BURST_FILES sets the file count (default 100,000).
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/proc_stats.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

int FileCount() {
  const char* v = std::getenv("DROPQ_BIG_BURST_FILES");
  const int n = v != nullptr ? std::atoi(v) : 0;
  return n >= 20000 ? n : 100000;
}

TEST(BigBurstTest, MemoryStaysBoundedAndEveryFileIsDoneOnce) {
  const int total = FileCount();
  constexpr int kFirst = 10000;
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: noop";
  q.on_success = "keep";
  // In place: this test is about the queue's memory; the processing area's
  // renames would only make it slower.
  q.extra = "processing_dir: off\nkeep_done: 1000";
  env.WriteConfig(q);
  DisableAsanQuarantine();  // memory is measured below
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  const pid_t pid = env.daemon()->pid();

  // Every file is written first, then renamed in as fast as the test can:
  // the burst outruns dropqd.
  const std::string staging = env.tmp.Mkdir("staging");
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(total));
  for (int i = 0; i < total; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "b-%06d.dat", i);
    names.emplace_back(name);
    WriteFile(staging + "/" + name, name);
  }
  auto rename_range = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      const std::string& n = names[static_cast<size_t>(i)];
      ASSERT_EQ(::rename((staging + "/" + n).c_str(), (env.inbox + "/" + n).c_str()), 0) << n;
    }
  };
  rename_range(0, kFirst);
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == kFirst; }, seconds(120),
                      milliseconds(50)))
      << "done=" << StatCounter(env.redis, "q", "done");
  const long hwm_first = ProcStatusKiB(pid, "VmHWM");

  rename_range(kFirst, total);
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == total; }, seconds(240),
                      milliseconds(100)))
      << "done=" << StatCounter(env.redis, "q", "done")
      << " enqueued=" << StatCounter(env.redis, "q", "enqueued") << "\n"
      << env.DaemonLog().substr(0, 4000);
  const long hwm_all = ProcStatusKiB(pid, "VmHWM");

  // Each file once: as many enqueued as done, nothing left over.
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), total);
  EXPECT_EQ(env.redis.CmdInt({"LLEN", DropqEnv::Key("q", "pending")}), 0);
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "active")}), 0);
  EXPECT_EQ(env.redis.CmdInt({"HLEN", DropqEnv::Key("q", "files")}), total);  // one marker each
  ASSERT_GT(hwm_first, 0);
  RecordProperty("hwm_kib_first", std::to_string(hwm_first));
  RecordProperty("hwm_kib_all", std::to_string(hwm_all));
  std::printf("dropqd VmHWM: %ld KiB after %d files, %ld KiB after %d\n", hwm_first, kFirst,
              hwm_all, total);
  EXPECT_LE(hwm_all, hwm_first + hwm_first / 2 + 8 * 1024)
      << "peak RSS grew from " << hwm_first << " KiB to " << hwm_all << " KiB with the burst";
  EXPECT_EQ(env.Stop(SIGTERM, seconds(60)), 0) << env.DaemonLog().substr(0, 4000);
}

}  // namespace
}  // namespace dropq::test
