// A reload that removes a queue right after its scan ended finds the queue's
// clean-up sweeps running (the HSCAN of its kept markers, lstat on the
// threadpool; the look at its processing area). The queue must wait for
// them before it goes: under AddressSanitizer a sweep finishing into a freed
// queue is a use after free. Repeated, with thousands of markers so that the
// sweeps take a while; every file is processed once all the same.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

TEST(ReloadSweepTest, RemovingAQueueDuringItsSweepsIsSafeAndRunsNothingTwice) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string inbox = env.tmp.Mkdir("in-q"), other = env.tmp.Mkdir("in-other");
  const auto queue = [](const std::string& name, const std::string& dir) {
    return "  - name: " + name + "\n    watch: " + dir +
           "\n    workers: 2\n    handler: { builtin: noop }\n    on_success: keep\n";
  };
  const auto write = [&](bool with_q) {
    WriteFile(env.config, "redis:\n  url: " + env.redis.url() +
                              "\ninstance: test-1\nlog_level: info\ndrain_timeout: 10s\n"
                              "queues:\n" +
                              (with_q ? queue("q", inbox) : "") + queue("other", other));
  };
  env.config = env.tmp.Sub("dropq.yaml");
  constexpr int kFiles = 3000;
  for (int i = 0; i < kFiles; ++i) {
    const std::string path = inbox + "/f-" + std::to_string(i) + ".dat";
    WriteFile(path, "x");
    SetAge(path, seconds(60));  // old enough for the start-up scan to take at once
  }
  write(true);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == kFiles; }, seconds(120)))
      << env.DaemonLog();

  constexpr int kRounds = 6;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // Each round: the queue comes back, scans (every file is handled and
    // kept: no new job), starts its sweeps, and is removed at once.
    const size_t scans = Count(env.DaemonLog(), "scan.done queue=q");
    const size_t stops = Count(env.DaemonLog(), "queue.stopped queue=q");
    if (round > 0) {  // round 0: the start-up scan's sweeps may still run
      write(true);
      env.daemon()->Signal(SIGHUP);
      ASSERT_TRUE(
          WaitFor([&] { return Count(env.DaemonLog(), "scan.done queue=q") > scans; }, seconds(60)))
          << env.DaemonLog();
    }
    write(false);
    env.daemon()->Signal(SIGHUP);
    ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "queue.stopped queue=q") > stops; },
                        seconds(60)))
        << env.DaemonLog();
  }
  // Back once more and left alone: a new file is processed, the old ones not again.
  write(true);
  env.daemon()->Signal(SIGHUP);
  WriteFile(inbox + "/new.dat", "n");
  ASSERT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "done") == kFiles + 1; }, seconds(60)))
      << env.DaemonLog();
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), kFiles + 1);
  EXPECT_EQ(Count(env.DaemonLog(), "AddressSanitizer"), 0u);
  EXPECT_EQ(Count(env.DaemonLog(), "check.failed"), 0u);
  EXPECT_EQ(env.Stop(), 0) << env.DaemonLog();
}

}  // namespace
}  // namespace dropq::test
