// ThreadExecutor: jobs go in as batches, reports come back as batches (one
// posted hand-over for many events), in order per job, and nothing is
// handed over once the executor is gone. The test thread plays the loop:
// Post() queues functions that the test runs when it chooses.
#include "workers/thread_executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>

#include "tests/support/temp_dir.h"
#include "tests/support/wait_for.h"

namespace dropq {
namespace {

using test::TempDir;
using test::WaitFor;

class GateHandler : public Handler {
 public:
  Outcome Run(const Job&, const std::string&, int, const CancelToken& cancel) override {
    runs.fetch_add(1);
    Outcome o;
    o.result = RunResult::kOk;
    while (block.load()) {
      if (cancel.cancelled()) {
        o.result = RunResult::kInterrupted;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return o;
  }
  std::atomic<int> runs{0};
  std::atomic<bool> block{false};
};

// The loop's side: posted functions wait here until the test runs them.
struct FakeLoop {
  std::mutex mu;
  std::deque<std::function<void()>> posted;  // guarded by mu
  int posts = 0;                             // guarded by mu

  ThreadExecutor::Post Poster() {
    return [this](std::function<void()> fn) {
      std::lock_guard lock(mu);
      posted.push_back(std::move(fn));
      ++posts;
    };
  }
  int post_count() {
    std::lock_guard lock(mu);
    return posts;
  }
  // Runs what was posted so far.
  void RunPosted() {
    std::deque<std::function<void()>> fns;
    {
      std::lock_guard lock(mu);
      fns.swap(posted);
    }
    for (auto& fn : fns) fn();
  }
};

struct Reports {
  std::vector<std::string> order;  // "S:<id>" / "F:<id>"
  std::map<std::string, Outcome> finished;
  int batches = 0;
  int stopped = 0;
  Executor::Sink Sink() {
    return {[this](std::vector<RunReport>&& rs) {
              ++batches;
              for (auto& r : rs) {
                const bool s = r.kind == RunReport::Kind::kStarted;
                order.push_back((s ? "S:" : "F:") + r.outcome.job.id);
                if (!s) finished[r.outcome.job.id] = std::move(r.outcome);
              }
            },
            [this] { ++stopped; }};
  }
};

std::vector<Job> Jobs(TempDir& dir, int from, int n) {
  std::vector<Job> jobs;
  for (int i = from; i < from + n; ++i) {
    const std::string name = "f" + std::to_string(i);
    test::WriteFile(dir.Sub(name), "x");
    jobs.push_back(Job{"id" + std::to_string(i), "q", name, {}, 0});
  }
  return jobs;
}

TEST(ThreadExecutorTest, ReportsComeBackInBatchesAndInOrder) {
  TempDir dir;
  constexpr int kJobs = 200;
  FakeLoop loop;
  Reports rep;
  GateHandler handler;
  ThreadExecutor ex(loop.Poster(), rep.Sink(), dir.path(), AreaLayout::kInPlace, "", 2, kJobs,
                    &handler, nullptr);
  EXPECT_EQ(ex.slots(), 2);
  EXPECT_EQ(ex.room(), static_cast<size_t>(kJobs));
  ex.Start();
  ex.Accept(Jobs(dir, 0, kJobs));
  ASSERT_TRUE(WaitFor([&] { return handler.runs.load() == kJobs; }));
  ex.Stop();
  EXPECT_FALSE(ex.stopped());
  // Every job started and finished, and every worker exited: 402 events.
  // While the first hand-over waits on the loop, the others join its batch
  // instead of posting: one post, and at most one more for each of the last
  // job's outcome and the two exits, which may race the hand-overs below.
  ASSERT_TRUE(WaitFor([&] {
    loop.RunPosted();
    return rep.stopped > 0;
  }));
  EXPECT_LE(loop.post_count(), 4);
  EXPECT_LE(rep.batches, 4);
  EXPECT_EQ(rep.stopped, 1);
  EXPECT_TRUE(ex.stopped());
  ASSERT_EQ(rep.finished.size(), static_cast<size_t>(kJobs));
  ASSERT_EQ(rep.order.size(), static_cast<size_t>(2 * kJobs));
  std::map<std::string, int> seen;  // 1 once started, 2 once finished
  for (const std::string& e : rep.order) {
    const std::string id = e.substr(2);
    if (e[0] == 'S') {
      EXPECT_EQ(seen[id]++, 0) << e;
    } else {
      EXPECT_EQ(seen[id]++, 1) << e;  // its start came first
    }
  }
  for (auto& [id, o] : rep.finished) {
    EXPECT_EQ(o.result, RunResult::kOk) << id;
    EXPECT_EQ(o.job.attempt, 1u) << id;
  }
}

TEST(ThreadExecutorTest, RoomTakeBackAndInterrupt) {
  TempDir dir;
  FakeLoop loop;
  Reports rep;
  GateHandler handler;
  handler.block = true;
  ThreadExecutor ex(loop.Poster(), rep.Sink(), dir.path(), AreaLayout::kInPlace, "", 1, 4, &handler,
                    nullptr);
  ex.Start();
  ex.Accept(Jobs(dir, 0, 4));
  // One runs, three wait: the room is what the waiting ones leave.
  ASSERT_TRUE(WaitFor([&] { return handler.runs.load() == 1; }));
  EXPECT_EQ(ex.waiting(), 3u);
  EXPECT_EQ(ex.room(), 1u);
  std::vector<Job> back = ex.TakeBack();
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].id, "id1");
  EXPECT_EQ(ex.room(), 4u);
  ex.Interrupt(/*also_later=*/false);
  ex.Stop();
  ASSERT_TRUE(WaitFor([&] {
    loop.RunPosted();
    return rep.stopped > 0;
  }));
  ASSERT_EQ(rep.finished.size(), 1u);  // the taken-back ones are never reported
  EXPECT_EQ(rep.finished["id0"].result, RunResult::kInterrupted);
}

TEST(ThreadExecutorTest, NoWorkersStopAtOnceAndLateHandOversFindItGone) {
  TempDir dir;
  FakeLoop loop;
  Reports rep;
  GateHandler handler;
  {
    ThreadExecutor none(loop.Poster(), rep.Sink(), dir.path(), AreaLayout::kInPlace, "", 0, 4,
                        &handler, nullptr);
    none.Start();
    none.Stop();
    EXPECT_TRUE(none.stopped());
    EXPECT_EQ(rep.stopped, 0);  // never from inside Stop()
    loop.RunPosted();
    EXPECT_EQ(rep.stopped, 1);
  }
  Reports late;
  {
    ThreadExecutor ex(loop.Poster(), late.Sink(), dir.path(), AreaLayout::kInPlace, "", 1, 4,
                      &handler, nullptr);
    ex.Start();
    ex.Accept(Jobs(dir, 0, 2));
    ASSERT_TRUE(WaitFor([&] { return handler.runs.load() == 2; }));
    ASSERT_TRUE(WaitFor([&] { return loop.post_count() > 0; }));
  }                  // destroyed (workers stopped and joined) with its hand-over still posted
  loop.RunPosted();  // a no-op: under ASan, a use after free would show here
  EXPECT_EQ(late.batches, 0);
  EXPECT_EQ(late.stopped, 0);
}

}  // namespace
}  // namespace dropq
