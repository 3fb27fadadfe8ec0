#include "workers/worker_pool.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <mutex>

#include "tests/support/temp_dir.h"
#include "tests/support/wait_for.h"

namespace dropq {
namespace {

using test::TempDir;
using test::WaitFor;

// A handler that counts its runs; with `block` set it waits for the cancel token.
class CountingHandler : public Handler {
 public:
  Outcome Run(const Job& job, const std::string& path, int /*fd*/,
              const CancelToken& cancel) override {
    runs.fetch_add(1);
    Outcome o;
    if (block.load()) {
      while (!cancel.cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      o.result = RunResult::kInterrupted;
      return o;
    }
    o.result = path.size() > job.name.size() ? RunResult::kOk : RunResult::kError;
    return o;
  }
  std::atomic<int> runs{0};
  std::atomic<bool> block{false};
};

struct Recorder {
  std::mutex mu;
  std::map<std::string, int> started;                    // job id -> times
  std::map<std::string, std::vector<Outcome>> finished;  // job id -> outcomes
  std::atomic<int> exited{0};

  WorkerPool::Hooks Hooks() {
    WorkerPool::Hooks h;
    h.started = [this](const Job& j) {
      std::lock_guard lock(mu);
      started[j.id]++;
    };
    h.finished = [this](Outcome&& o) {
      std::lock_guard lock(mu);
      finished[o.job.id].push_back(std::move(o));
    };
    h.exited = [this] { exited.fetch_add(1); };
    return h;
  }
  size_t finished_count() {
    std::lock_guard lock(mu);
    return finished.size();
  }
};

TEST(WorkerPoolTest, EveryJobRunsOnceWithAttemptCounted) {
  TempDir dir;
  constexpr int kJobs = 300;
  for (int i = 0; i < kJobs; ++i) test::WriteFile(dir.Sub("f" + std::to_string(i)), "x");
  JobQueue queue(8);
  CountingHandler handler;
  Recorder rec;
  {
    WorkerPool pool(dir.path(), AreaLayout::kInPlace, "", 3, &queue, &handler, rec.Hooks());
    pool.Start();
    for (int i = 0; i < kJobs;) {
      Job j;
      j.id = "id" + std::to_string(i);
      j.name = "f" + std::to_string(i);
      j.attempt = 2;  // two runs started before this one
      if (queue.TryPush(j)) {
        ++i;
      } else {
        std::this_thread::yield();
      }
    }
    queue.PushStops(3);
    ASSERT_TRUE(WaitFor([&] { return rec.exited.load() == 3; }));
    pool.Join();
  }
  EXPECT_EQ(handler.runs.load(), kJobs);
  ASSERT_EQ(rec.finished.size(), static_cast<size_t>(kJobs));
  for (auto& [id, outs] : rec.finished) {
    ASSERT_EQ(outs.size(), 1u) << id;
    EXPECT_EQ(outs[0].result, RunResult::kOk);
    EXPECT_EQ(outs[0].job.attempt, 3u);
    EXPECT_EQ(outs[0].ident.size, 1u);
    EXPECT_EQ(rec.started[id], 1);
  }
}

TEST(WorkerPoolTest, VanishedAndNonRegularFilesAreNotRun) {
  TempDir dir;
  ASSERT_EQ(mkdir(dir.Sub("adir").c_str(), 0755), 0);
  JobQueue queue(4);
  CountingHandler handler;
  Recorder rec;
  WorkerPool pool(dir.path(), AreaLayout::kInPlace, "", 1, &queue, &handler, rec.Hooks());
  pool.Start();
  Job gone{"g", "q", "missing", {}, 0};
  Job d{"d", "q", "adir", {}, 0};
  ASSERT_TRUE(queue.TryPush(gone));
  ASSERT_TRUE(queue.TryPush(d));
  queue.PushStops(1);
  ASSERT_TRUE(WaitFor([&] { return rec.exited.load() == 1; }));
  pool.Join();
  EXPECT_EQ(handler.runs.load(), 0);
  EXPECT_EQ(rec.finished["g"].at(0).result, RunResult::kVanished);
  EXPECT_EQ(rec.finished["d"].at(0).result, RunResult::kReplaced);
  EXPECT_NE(rec.finished["d"].at(0).error.find("directory"), std::string::npos);
  EXPECT_TRUE(rec.started.empty());  // no attempt was counted
  EXPECT_EQ(rec.finished["g"].at(0).job.attempt, 0u);
}

TEST(WorkerPoolTest, CancelRunningInterruptsBlockedHandlers) {
  TempDir dir;
  test::WriteFile(dir.Sub("a"), "1");
  test::WriteFile(dir.Sub("b"), "2");
  JobQueue queue(4);
  CountingHandler handler;
  handler.block = true;
  Recorder rec;
  WorkerPool pool(dir.path(), AreaLayout::kInPlace, "", 2, &queue, &handler, rec.Hooks());
  pool.Start();
  Job a{"a", "q", "a", {}, 0};
  Job b{"b", "q", "b", {}, 0};
  ASSERT_TRUE(queue.TryPush(a));
  ASSERT_TRUE(queue.TryPush(b));
  ASSERT_TRUE(WaitFor([&] { return handler.runs.load() == 2; }));
  queue.PushStops(2);
  pool.CancelRunning();
  ASSERT_TRUE(WaitFor([&] { return rec.exited.load() == 2; }));
  pool.Join();
  EXPECT_EQ(rec.finished["a"].at(0).result, RunResult::kInterrupted);
  EXPECT_EQ(rec.finished["b"].at(0).result, RunResult::kInterrupted);
}

// InterruptRunning stops the runs in progress only: the next job runs as usual.
TEST(WorkerPoolTest, InterruptRunningLeavesLaterRunsAlone) {
  TempDir dir;
  test::WriteFile(dir.Sub("a"), "1");
  test::WriteFile(dir.Sub("b"), "2");
  JobQueue queue(4);
  CountingHandler handler;
  handler.block = true;
  Recorder rec;
  WorkerPool pool(dir.path(), AreaLayout::kInPlace, "", 1, &queue, &handler, rec.Hooks());
  pool.Start();
  Job a{"a", "q", "a", {}, 0};
  ASSERT_TRUE(queue.TryPush(a));
  ASSERT_TRUE(WaitFor([&] { return handler.runs.load() == 1; }));
  pool.InterruptRunning();
  ASSERT_TRUE(WaitFor([&] { return rec.finished_count() == 1; }));
  handler.block = false;
  Job b{"b", "q", "b", {}, 0};
  ASSERT_TRUE(queue.TryPush(b));
  ASSERT_TRUE(WaitFor([&] { return rec.finished_count() == 2; }));
  queue.PushStops(1);
  ASSERT_TRUE(WaitFor([&] { return rec.exited.load() == 1; }));
  pool.Join();
  EXPECT_EQ(rec.finished["a"].at(0).result, RunResult::kInterrupted);
  EXPECT_EQ(rec.finished["b"].at(0).result, RunResult::kOk);
}

}  // namespace
}  // namespace dropq
