// JobTable: every legal move of a job's state, the counts per state, and an
// illegal move (a bug of dropqd's) aborting.
#include "daemon/job_table.h"

#include <gtest/gtest.h>

#include <vector>

namespace dropq {
namespace {

Job MakeJob(const std::string& id) {
  Job j;
  j.id = id;
  j.name = id + ".txt";
  return j;
}

using S = JobState;

// Every path through the diagram in job_table.h, from a claim to the end.
TEST(JobTableTest, EveryLegalPathEnds) {
  const std::vector<std::vector<S>> paths = {
      {S::kQueued, S::kRunning, S::kRecording, S::kDisposing, S::kAcking},
      {S::kQueued, S::kRunning, S::kRecording, S::kDisposing, S::kDisposeWait, S::kDisposing,
       S::kAcking},
      {S::kQueued, S::kRunning, S::kAcking},
      {S::kQueued, S::kRunning, S::kReleasing},
      {S::kQueued, S::kRecording, S::kDisposing, S::kAcking},  // failed before its run
      {S::kQueued, S::kAcking},                                // vanished before its run
      {S::kQueued, S::kReleasing},                             // drain, fence, pause
      {S::kDisposing, S::kAcking},                             // a redisposal
      {S::kDisposing, S::kDisposeWait},                        // ... fenced while waiting
      {S::kAcking},                                            // an unusable record
      {S::kQueued, S::kRunning, S::kRecording},                // a late outcome, refused
  };
  JobTable t;
  int n = 0;
  for (const auto& path : paths) {
    const std::string id = "J" + std::to_string(++n);
    HeldJob& h = t.Add(MakeJob(id), path.front());
    EXPECT_EQ(t.count(path.front()), 1u);
    for (size_t i = 1; i < path.size(); ++i) {
      t.Move(h, path[i]);
      EXPECT_EQ(h.state, path[i]);
      EXPECT_EQ(t.count(path[i]), 1u) << JobStateName(path[i]);
      EXPECT_EQ(t.count(path[i - 1]), 0u) << JobStateName(path[i - 1]);
    }
    t.Erase(id);
    EXPECT_TRUE(t.empty()) << id;
  }
}

TEST(JobTableTest, CallsFollowTheStatesThatWaitOnRedis) {
  JobTable t;
  HeldJob& h = t.Add(MakeJob("J1"), S::kQueued);
  EXPECT_EQ(h.call, Call::kNone);
  t.Move(h, S::kRunning);
  t.Move(h, S::kRecording);
  EXPECT_EQ(h.call, Call::kBatched);
  t.SetCall(h, Call::kSent);
  t.SetCall(h, Call::kRefused);
  EXPECT_EQ(h.call, Call::kRefused);
  t.Move(h, S::kDisposing);
  EXPECT_EQ(h.call, Call::kNone);
  EXPECT_EQ(t.Find("J2"), nullptr);
  EXPECT_EQ(&t.Get("J1"), &h);
  EXPECT_EQ(AckAsOf(Ending::kSkipped), AckAs::kDone);
  EXPECT_EQ(AckAsOf(Ending::kScheduled), AckAs::kScheduled);
}

TEST(JobTableDeathTest, IllegalMovesAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto at = [](S s) {
    auto t = std::make_unique<JobTable>();
    t->Add(MakeJob("J1"), S::kQueued);
    HeldJob& h = t->Get("J1");
    if (s == S::kRunning || s == S::kAcking) t->Move(h, s);
    return t;
  };
  EXPECT_DEATH(
      {
        auto t = at(S::kAcking);
        t->Move(t->Get("J1"), S::kRunning);  // an acknowledged job does not run again
      },
      "job.illegal_move job=J1 from=acking to=running");
  EXPECT_DEATH(
      {
        auto t = at(S::kRunning);
        t->Move(t->Get("J1"), S::kQueued);
      },
      "illegal_move");
  EXPECT_DEATH(
      {
        auto t = at(S::kRunning);
        t->Erase("J1");  // a running job is never dropped
      },
      "check.failed");
  EXPECT_DEATH(
      {
        auto t = at(S::kQueued);
        t->Add(MakeJob("J1"), S::kQueued);  // twice: the caller drops duplicates first
      },
      "check.failed");
  EXPECT_DEATH(
      {
        JobTable t;
        t.Add(MakeJob("J1"), S::kRunning);  // a claim starts no job running
      },
      "check.failed");
  EXPECT_DEATH(
      {
        auto t = at(S::kQueued);
        t->SetCall(t->Get("J1"), Call::kSent);  // a queued job waits on no call
      },
      "check.failed");
}

}  // namespace
}  // namespace dropq
