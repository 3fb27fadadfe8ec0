#include "daemon/loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace dropq {
namespace {

// Functions posted from many threads all run, on the loop thread, and the
// loop closes cleanly afterwards (uv_loop_close returns 0).
TEST(LoopTest, PostFromThreadsRunsEverythingOnLoopThread) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  auto loop = std::make_unique<Loop>();
  int ran = 0;  // touched only on the loop thread
  bool all_on_loop = true;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        loop->Post([&] {
          all_on_loop = all_on_loop && loop->OnLoopThread();
          if (++ran == kThreads * kPerThread) loop->CloseWakeup();
        });
      }
    });
  }
  loop->Run();
  for (auto& t : threads) t.join();
  EXPECT_EQ(ran, kThreads * kPerThread);
  EXPECT_TRUE(all_on_loop);
  EXPECT_EQ(loop->Close(), 0);
}

TEST(LoopTest, HandlesAreFreedBeforeClose) {
  Loop loop;
  {
    auto t =
        UvHandle<uv_timer_t>::Make([&](uv_timer_t* h) { return uv_timer_init(loop.get(), h); });
    ASSERT_TRUE(t.ok());
    uv_timer_start(
        t->get(), [](uv_timer_t*) {}, 1, 0);
  }  // closed here; freed in its close callback
  loop.CloseWakeup();
  loop.Run();
  EXPECT_EQ(loop.Close(), 0);
}

}  // namespace
}  // namespace dropq
