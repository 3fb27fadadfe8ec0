#include "workers/job_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

namespace dropq {
namespace {

Job MakeJob(int i) {
  Job j;
  j.id = "job" + std::to_string(i);
  j.name = "f" + std::to_string(i);
  return j;
}

TEST(JobQueueTest, NeverHoldsMoreThanCapacity) {
  JobQueue q(3);
  for (int i = 0; i < 3; ++i) {
    Job j = MakeJob(i);
    EXPECT_TRUE(q.TryPush(j));
  }
  Job extra = MakeJob(99);
  EXPECT_FALSE(q.TryPush(extra));
  EXPECT_EQ(extra.id, "job99");  // untouched when refused
  EXPECT_EQ(q.size(), 3u);
}

TEST(JobQueueTest, PopsInOrderThenSentinel) {
  JobQueue q(4);
  for (int i = 0; i < 2; ++i) {
    Job j = MakeJob(i);
    ASSERT_TRUE(q.TryPush(j));
  }
  q.PushStops(1);
  EXPECT_EQ(q.Pop()->id, "job0");
  EXPECT_EQ(q.Pop()->id, "job1");
  EXPECT_FALSE(q.Pop().has_value());  // jobs before sentinels
}

TEST(JobQueueTest, DrainReturnsJobsNotTaken) {
  JobQueue q(4);
  for (int i = 0; i < 3; ++i) {
    Job j = MakeJob(i);
    ASSERT_TRUE(q.TryPush(j));
  }
  auto left = q.DrainJobs();
  ASSERT_EQ(left.size(), 3u);
  EXPECT_EQ(left[2].id, "job2");
  EXPECT_EQ(q.size(), 0u);
}

// Threaded: every job pushed by the producer is popped exactly once by the
// consumers, and each consumer exits on its own sentinel. Run under TSan.
TEST(JobQueueTest, ManyConsumersEachJobOnce) {
  constexpr int kJobs = 20000;
  constexpr int kWorkers = 4;
  JobQueue q(16);
  std::mutex mu;
  std::multiset<std::string> seen;
  std::atomic<int> exited{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (auto job = q.Pop()) {
        std::lock_guard lock(mu);
        seen.insert(job->id);
      }
      exited.fetch_add(1);
    });
  }
  for (int i = 0; i < kJobs;) {
    Job j = MakeJob(i);
    if (q.TryPush(j)) {
      ++i;
    } else {
      std::this_thread::yield();
    }
  }
  q.PushStops(kWorkers);
  for (auto& t : workers) t.join();
  EXPECT_EQ(exited.load(), kWorkers);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kJobs));
  for (int i = 0; i < kJobs; ++i) EXPECT_EQ(seen.count("job" + std::to_string(i)), 1u);
}

}  // namespace
}  // namespace dropq
