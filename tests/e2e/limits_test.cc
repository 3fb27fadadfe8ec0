// rate_limit and max_active hold across instances: three real dropqd on one
// Redis send files to a real HTTP server (tests/support/http_sink.py), which
// records when each request arrived and ended. The limits count starts
// against Redis' clock; the server's clock sees them with a little jitter.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/ctl_json.h"
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

// The wall clock, as the server (time.time()) and the job records read it.
double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
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
#if !DROPQ_TEST_ASAN
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

// A slot another instance frees is taken at once: its `freed` notice ends
// this instance's max_active hold, where without it the hold would last
// its full 1 s look. The other instance is played by the test: a job
// "ghost" active under "ghost-inst" holds the only slot; the test frees it
// as RECORD would (ZREM :running, PUBLISH :freed) and measures how soon the
// waiting job is claimed. The hold begins as active_limited rises, and the
// slot is freed about 100 ms later: a hold ended only by its look claims
// some 900 ms after the notice.
TEST(LimitsTest, ASlotFreedElsewhereIsTakenAtOnce) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.workers = 4;
  q.extra = "max_active: 1";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start());
  const std::string running = DropqEnv::Key("q", "running");
  env.redis.Cmd({"HSET", DropqEnv::Key("q", "job:ghost"), "state", "active", "owner", "ghost-inst",
                 "name", "elsewhere"});
  env.redis.Cmd({"ZADD", DropqEnv::Key("q", "active"), "1", "ghost"});
  for (int round = 0; round < 3; ++round) {
    env.redis.Cmd({"ZADD", running, "1", "ghost"});
    const long held = StatCounter(env.redis, "q", "active_limited");
    const std::string name = "w" + std::to_string(round);
    WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/" + name, "x");
    // Held back by the ghost's slot.
    ASSERT_TRUE(
        WaitFor([&] { return StatCounter(env.redis, "q", "active_limited") > held; }, seconds(10)))
        << env.DaemonLog();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const double freed_at = NowSeconds();
    env.redis.Cmd({"ZREM", running, "ghost"});
    EXPECT_EQ(env.redis.CmdInt({"PUBLISH", DropqEnv::Key("q", "freed"), "1"}), 1);  // dropqd
    ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/" + name); }, seconds(10)))
        << env.DaemonLog();
    const std::string id = OnlyJobId(env.redis, "q", name);
    const double claimed = std::stod(JobRecord(env.redis, "q", id).at("claimed")) / 1000.0;
    std::printf("[ measure  ] round %d: claimed %.0f ms after the notice\n", round,
                (claimed - freed_at) * 1000);
    EXPECT_LT(claimed - freed_at, 0.5);
  }
  EXPECT_EQ(env.Stop(), 0);
}

// A reload changes the limits where the queue runs: no drain, no restart,
// the requests in flight go on, and the next claims count with the new
// values: max_active raised from 2 to 6, then replaced by a rate limit.
TEST(LimitsTest, AReloadChangesTheLimitsWithoutStoppingTheQueue) {
  HttpSink::Options o;
  o.delay_ms = 300;
  HttpSink sink(o);
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.workers = 8;
  q.handler = "http:\n  url: \"" + sink.base() + "/a/{name}\"";
  q.extra = "max_active: 2";
  const int metrics_port = FreePort();
  const std::string top =
      "metrics: { listen: \"127.0.0.1:" + std::to_string(metrics_port) + "\" }\n";
  env.WriteConfig(q, top);
  ASSERT_TRUE(env.Start());
  // Returns the time the signal was sent.
  const auto reload = [&](const std::string& extra) {
    q.extra = extra;
    env.WriteConfig(q, top);
    const size_t before = Count(env.DaemonLog(), "reload.done");
    const double sent_at = NowSeconds();
    env.daemon()->Signal(SIGHUP);
    EXPECT_TRUE(
        WaitFor([&] { return Count(env.DaemonLog(), "reload.done") > before; }, seconds(20)))
        << env.DaemonLog();
    return sent_at;
  };
  constexpr int kFiles = 40;
  Drop(env, kFiles);
  ASSERT_TRUE(WaitFor([&] { return sink.Requests().size() >= 6; }, seconds(30)));
  const double hup_at = reload("max_active: 6");
  const double raised_at = NowSeconds();
  ASSERT_TRUE(WaitForOutcomes(env.redis, kFiles, 0, seconds(60))) << env.DaemonLog();
  std::vector<nlohmann::json> before, after;
  for (const auto& r : sink.Requests()) {
    const double start = r["start"].get<double>();
    if (start < hup_at) before.push_back(r);
    if (start > raised_at) after.push_back(r);
  }
  EXPECT_LE(MaxOverlap(before), 2);
  EXPECT_EQ(MaxOverlap(after), 6);
  std::string log = env.DaemonLog();
  EXPECT_NE(log.find("queue.limits queue=q rate_limit=0 rate_per_ms=0 max_active=6"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("queue.stopping"), std::string::npos) << log;  // never drained
  // /metrics follows within a sync interval.
  EXPECT_TRUE(WaitFor(
      [&] {
        return GetMetrics(metrics_port)
                   .second.find("dropq_queue_limit{limit=\"max_active\",queue=\"q\"} 6") !=
               std::string::npos;
      },
      seconds(10)));

  // max_active gone, a rate limit instead: 5 starts a second.
  (void)reload("rate_limit: { max: 5, per: 1s }");
  const size_t sent = sink.Requests().size();
  for (int i = 0; i < 20; ++i) {
    WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/g" + std::to_string(i), "x");
  }
  ASSERT_TRUE(WaitForOutcomes(env.redis, kFiles + 20, 0, seconds(60))) << env.DaemonLog();
  const auto reqs = sink.Requests();
  std::vector<double> claims;
  for (const std::string& id : JobIds(env.redis, "q")) {
    const auto rec = JobRecord(env.redis, "q", id);
    if (rec.at("name")[0] == 'g') claims.push_back(std::stod(rec.at("claimed")) / 1000.0);
  }
  std::sort(claims.begin(), claims.end());
  ASSERT_EQ(claims.size(), 20u);
  EXPECT_LE(MostInWindow(claims, 0.95), 5u);
  EXPECT_GE(claims.back() - claims.front(), 2.8);  // 20 starts at 5 a second
  EXPECT_EQ(reqs.size(), sent + 20);
  log = env.DaemonLog();
  EXPECT_EQ(log.find("queue.stopping"), std::string::npos) << log;
  std::string page;
  EXPECT_TRUE(WaitFor(
      [&] {
        page = GetMetrics(metrics_port).second;
        return page.find("dropq_queue_limit{limit=\"rate_limit\"") != std::string::npos;
      },
      seconds(10)));
  EXPECT_EQ(page.find("dropq_queue_limit{limit=\"max_active\""), std::string::npos) << page;
  EXPECT_NE(page.find("dropq_queue_limit{limit=\"rate_limit\",queue=\"q\"} 5"), std::string::npos)
      << page;
  EXPECT_NE(page.find("dropq_queue_limit{limit=\"rate_window_seconds\",queue=\"q\"} 1"),
            std::string::npos)
      << page;
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
