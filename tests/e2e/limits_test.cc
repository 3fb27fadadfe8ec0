// rate_limit and max_active hold across instances: three real dropqd on one
// Redis send files to a real HTTP server (tests/support/http_sink.py), which
// records when each request arrived and ended. The limits count starts
// against Redis' clock; the server's clock sees them with a little jitter.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/http_sink.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// Starts instances test-2 and test-3 of env's queue (role consume).
std::vector<std::unique_ptr<Process>> StartConsumers(DropqEnv& env) {
  std::vector<std::unique_ptr<Process>> out;
  for (const char* inst : {"test-2", "test-3"}) {
    const std::string cfg = WriteInstanceConfig(env, inst, "consume");
    // /metrics is test-1's alone: one port.
    std::string text;
    for (const std::string& line : ReadLines(cfg)) {
      if (line.rfind("metrics:", 0) != 0) text += line + "\n";
    }
    WriteFile(cfg, text);
    out.push_back(std::make_unique<Process>(std::vector<std::string>{DROPQD_BIN, "--config", cfg},
                                            env.tmp.Sub(std::string(inst) + ".log")));
    Process* p = out.back().get();
    EXPECT_TRUE(WaitFor(
        [&] { return p->Log().find("queue.consuming queue=q") != std::string::npos; }, seconds(30)))
        << p->Log();
  }
  return out;
}

void Drop(DropqEnv& env, int n) {
  for (int i = 0; i < n; ++i) {
    WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/f" + std::to_string(i), "x");
  }
}

// The most of the sorted times `t` in any window of `window_s` seconds.
size_t MostInWindow(const std::vector<double>& t, double window_s) {
  size_t most = 0;
  for (size_t i = 0, j = 0; j < t.size(); ++j) {
    while (t[j] - t[i] >= window_s) ++i;
    most = std::max(most, j - i + 1);
  }
  return most;
}

// The most requests that were in the server at once (arrival to answer).
int MaxOverlap(const std::vector<nlohmann::json>& reqs) {
  std::vector<std::pair<double, int>> ev;
  for (const auto& r : reqs) {
    ev.emplace_back(r["start"].get<double>(), 1);
    ev.emplace_back(r["end"].get<double>(), -1);
  }
  std::sort(ev.begin(), ev.end());  // at a tie an end (-1) comes first
  int cur = 0;
  int most = 0;
  for (const auto& [t, d] : ev) {
    cur += d;
    most = std::max(most, cur);
  }
  return most;
}

TEST(LimitsTest, RateLimitHoldsAcrossThreeInstances) {
  HttpSink sink;
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.workers = 8;
  q.handler = "http:\n  url: \"" + sink.base() + "/r/{name}\"";
  q.extra = "rate_limit: { max: 20, per: 1s }";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start());
  auto others = StartConsumers(env);
  constexpr int kFiles = 600;
  Drop(env, kFiles);
  ASSERT_TRUE(WaitForOutcomes(env.redis, kFiles, 0, seconds(90))) << env.DaemonLog();
  auto reqs = sink.Requests();
  ASSERT_EQ(reqs.size(), static_cast<size_t>(kFiles));
  std::vector<double> starts;
  for (const auto& r : reqs) starts.push_back(r["start"].get<double>());
  std::sort(starts.begin(), starts.end());
  // The limiter itself: the claims, as each job's record has them (the
  // claiming instance's clock, on this host), at most 20 in any 950 ms.
  std::vector<double> claims;
  for (const std::string& id : JobIds(env.redis, "q")) {
    claims.push_back(std::stod(JobRecord(env.redis, "q", id).at("claimed")) / 1000.0);
  }
  std::sort(claims.begin(), claims.end());
  ASSERT_EQ(claims.size(), static_cast<size_t>(kFiles));
  const double span = starts.back() - starts.front();
  const size_t most_claims = MostInWindow(claims, 0.95);
  const size_t most = MostInWindow(starts, 0.95);
  std::printf(
      "[ measure  ] %d starts over %.2f s, at most %zu claims and %zu requests arriving "
      "in any 950 ms\n",
      kFiles, span, most_claims, most);
  EXPECT_LE(most_claims, 20u);
#if !defined(__SANITIZE_ADDRESS__)
  // And as the server sees the requests arrive: 50 ms for the jitter between
  // a claim and its request. (Under ASan, three instances on two cores
  // delay some requests by more: only the claims are checked there.)
  EXPECT_LE(most, 20u);
#endif
  // 600 starts at 20 a second: the 600th starts 29 s after the first.
  EXPECT_GE(span, 27.0);
  EXPECT_LE(span, 33.0);
  // Every instance took a share: the limit is the queue's, not each one's.
  const long limited = StatCounter(env.redis, "q", "rate_limited");
  EXPECT_GT(limited, 0);
  for (auto& p : others) {
    p->Signal(SIGTERM);
    EXPECT_EQ(p->Wait(seconds(30)), 0) << p->Log();
  }
  EXPECT_EQ(env.Stop(), 0);
}

TEST(LimitsTest, MaxActiveHoldsAndIsUsedAcrossInstancesAndAKill) {
  HttpSink::Options o;
  o.delay_ms = 200;
  HttpSink sink(o);
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.workers = 8;
  q.handler = "http:\n  url: \"" + sink.base() + "/a/{name}\"";
  q.extra = "max_active: 5";
  const int metrics_port = FreePort();
  env.WriteConfig(q, "heartbeat_ttl: 2s\nmetrics: { listen: \"127.0.0.1:" +
                         std::to_string(metrics_port) + "\" }\n");
  ASSERT_TRUE(env.Start());
  auto others = StartConsumers(env);
  constexpr int kFiles = 200;
  Drop(env, kFiles);
  // A third of the way, one instance dies with its requests in flight.
  ASSERT_TRUE(WaitFor([&] { return sink.Requests().size() >= kFiles / 3; }, seconds(30)));
  ::kill(others[0]->pid(), SIGKILL);
  others[0]->Wait(seconds(10));
  ASSERT_TRUE(WaitForOutcomes(env.redis, kFiles, 0, seconds(90))) << env.DaemonLog();
  const auto reqs = sink.Requests();
  std::set<std::string> paths;
  for (const auto& r : reqs) paths.insert(r["path"].get<std::string>());
  EXPECT_EQ(paths.size(), static_cast<size_t>(kFiles));  // nothing lost
  const int most = MaxOverlap(reqs);
  // Throughput while all three ran: the first third, at 5 x 200 ms slots.
  std::vector<double> ends;
  for (const auto& r : reqs) ends.push_back(r["end"].get<double>());
  std::sort(ends.begin(), ends.end());
  double first_start = 1e18;
  for (const auto& r : reqs) first_start = std::min(first_start, r["start"].get<double>());
  const double per_s = (kFiles / 3) / (ends[kFiles / 3 - 1] - first_start);
  std::printf(
      "[ measure  ] at most %d requests at once; %.1f requests/s before the kill (cap 25)\n", most,
      per_s);
  EXPECT_LE(most, 5);
  EXPECT_EQ(most, 5);
  EXPECT_GE(per_s, 0.8 * 25);
  // What an operator sees: the limit, and how often it held a claim back.
  const std::string metrics = GetMetrics(metrics_port).second;
  EXPECT_NE(metrics.find("dropq_queue_limit{limit=\"max_active\",queue=\"q\"} 5"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("dropq_claims_held_total{limit=\"active\",queue=\"q\"}"),
            std::string::npos);
  const nlohmann::json st = CtlStatus(env, "q");
  EXPECT_EQ(st["max_active"]["max"], 5);
  EXPECT_GT(st["max_active"]["held"].get<long>(), 0);
  others[1]->Signal(SIGTERM);
  EXPECT_EQ(others[1]->Wait(seconds(30)), 0) << others[1]->Log();
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
