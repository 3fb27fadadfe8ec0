// /metrics (metrics.listen) on a real dropqd: the page parses as Prometheus
// text exposition under a strict parser (names, labels, escapes, values,
// TYPE before samples, histogram buckets cumulative and ending in +Inf ==
// _count), and its counters match the jobs that ran: done, failed, skipped
// by reason, the duration histogram's count, and Redis' view of the queue.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "common/unique_fd.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// The text format, version 0.0.4, strictly: any line that does not parse is
// an error, as is a sample without a TYPE before it.
bool ParseExposition(const std::string& text, std::vector<Sample>* out,
                     std::map<std::string, std::string>* types, std::string* err) {
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex kHelp("# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*");
  static const std::regex kType(
      "# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)");
  static const std::regex kSample("([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{(.*)\\})? ([^ ]+)( -?[0-9]+)?");
  static const std::regex kLabel("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\\\n]|\\\\[\\\\\"n])*)\"");
  if (text.empty() || text.back() != '\n') return *err = "does not end with a newline", false;
  for (const std::string& line : SplitLines(text)) {
    std::smatch m;
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (std::regex_match(line, m, kType)) {
        if (types->count(m[1]) != 0) return *err = "second TYPE for " + line, false;
        (*types)[m[1]] = m[2];
      } else if (!std::regex_match(line, kHelp) && line.rfind("# ", 0) != 0) {
        return *err = "bad comment: " + line, false;
      }
      continue;
    }
    if (!std::regex_match(line, m, kSample)) return *err = "bad sample: " + line, false;
    Sample s;
    s.name = m[1];
    std::string labels = m[3];
    while (!labels.empty()) {
      std::smatch l;
      if (!std::regex_search(labels, l, kLabel) || l.position(0) != 0) {
        return *err = "bad labels: " + line, false;
      }
      if (!s.labels.emplace(l[1], l[2]).second) return *err = "label twice: " + line, false;
      labels = labels.substr(static_cast<size_t>(l.length(0)));
      if (!labels.empty()) {
        if (labels[0] != ',') return *err = "bad label separator: " + line, false;
        labels = labels.substr(1);
      }
    }
    const std::string v = m[4];
    if (v == "+Inf" || v == "-Inf" || v == "NaN") {
      s.value = v == "NaN" ? NAN : (v[0] == '-' ? -INFINITY : INFINITY);
    } else {
      size_t used = 0;
      try {
        s.value = std::stod(v, &used);
      } catch (...) {
        used = 0;
      }
      if (used != v.size()) return *err = "bad value: " + line, false;
    }
    // Its family: the name itself, or a histogram's _bucket/_sum/_count.
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string sfx = suffix;
      if (types->count(family) == 0 && family.size() > sfx.size() &&
          family.compare(family.size() - sfx.size(), sfx.size(), sfx) == 0) {
        family = family.substr(0, family.size() - sfx.size());
      }
    }
    if (types->count(family) == 0) return *err = "sample before its TYPE: " + line, false;
    if ((*types)[family] == "counter" && s.value < 0) return *err = "negative counter", false;
    out->push_back(s);
  }
  return true;
}

double Value(const std::vector<Sample>& all, const std::string& name,
             const std::map<std::string, std::string>& labels) {
  for (const Sample& s : all) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return -1;
}

TEST(MetricsTest, ParsesStrictlyAndCountsWhatRan) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const int port = FreePort();
  ASSERT_GT(port, 0);
  QueueSpec q;
  // Names starting with "bad" fail at once (exit 65), the rest succeed.
  q.handler = FailingForPrefixHandler("bad");
  q.extra = "exclude: [\"*.log\"]";
  env.WriteConfig(q, "metrics:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  for (int i = 0; i < 12; ++i) WriteFile(env.inbox + "/ok-" + std::to_string(i), "x");
  for (int i = 0; i < 3; ++i) WriteFile(env.inbox + "/bad-" + std::to_string(i), "x");
  ASSERT_EQ(::mkfifo((env.inbox + "/a-fifo").c_str(), 0644), 0);
  WriteFile(env.inbox + "/debug.log", "excluded");
  ASSERT_TRUE(WaitForOutcomes(env.redis, 12, 3)) << env.DaemonLog();

  const std::map<std::string, std::string> lq = {{"queue", "q"}};
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;
  std::string body;
  // The page catches up within a second or two.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto [status, text] = GetMetrics(port);
        if (status.find(" 200") == std::string::npos) return false;
        samples.clear();
        types.clear();
        std::string err;
        EXPECT_TRUE(ParseExposition(text, &samples, &types, &err)) << err << "\n" << text;
        body = text;
        return Value(samples, "dropq_jobs_done_total", lq) == 12 &&
               Value(samples, "dropq_jobs_pending", lq) == 0 &&
               Value(samples, "dropq_jobs_active", lq) == 0;
      },
      seconds(15)))
      << body;

  EXPECT_EQ(types["dropq_jobs_done_total"], "counter");
  EXPECT_EQ(types["dropq_jobs_pending"], "gauge");
  EXPECT_EQ(types["dropq_job_duration_seconds"], "histogram");
  EXPECT_EQ(Value(samples, "dropq_jobs_failed_total", lq), 3) << body;
  EXPECT_EQ(Value(samples, "dropq_jobs_enqueued_total", lq), 15) << body;
  EXPECT_EQ(Value(samples, "dropq_files_seen_total", lq), 15) << body;
  EXPECT_EQ(Value(samples, "dropq_files_skipped_total", {{"queue", "q"}, {"reason", "fifo"}}), 1)
      << body;
  EXPECT_EQ(Value(samples, "dropq_files_skipped_total", {{"queue", "q"}, {"reason", "excluded"}}),
            1)
      << body;
  EXPECT_EQ(Value(samples, "dropq_jobs_scheduled", lq), 0) << body;
  EXPECT_EQ(Value(samples, "dropq_queue_depth", lq), 0) << body;
  EXPECT_EQ(Value(samples, "dropq_redis_connected", {}), 1) << body;
  // The histogram: one observation per run, buckets cumulative, +Inf = count.
  EXPECT_EQ(Value(samples, "dropq_job_duration_seconds_count", lq), 15) << body;
  double last = 0;
  int buckets = 0;
  for (const Sample& s : samples) {
    if (s.name != "dropq_job_duration_seconds_bucket") continue;
    ++buckets;
    EXPECT_GE(s.value, last) << "buckets must be cumulative";
    last = s.value;
  }
  EXPECT_GT(buckets, 5);
  EXPECT_EQ(Value(samples, "dropq_job_duration_seconds_bucket", {{"queue", "q"}, {"le", "+Inf"}}),
            15)
      << body;
  // The same counts, for the whole queue, in Redis' counts hash; the
  // watcher's are added every tick (5 s here).
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), 15);
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), 12);
  EXPECT_EQ(StatCounter(env.redis, "q", "failed"), 3);
  EXPECT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "seen") == 15; }, seconds(15)))
      << StatCounter(env.redis, "q", "seen");
  EXPECT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "skipped_fifo") == 1; }, seconds(15)));
  EXPECT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "skipped_excluded") == 1; }, seconds(15)));

  // A taken port is an error dropqd names, and it exits (1: not a config error).
  DropqEnv other;
  ASSERT_TRUE(other.redis.ok());
  other.WriteConfig(q, "metrics:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n");
  CommandResult clash = RunCommand({DROPQD_BIN, "--config", other.config}, seconds(20));
  EXPECT_EQ(clash.status, 1) << clash.out << clash.err;
  EXPECT_NE((clash.out + clash.err).find("metrics.listen"), std::string::npos) << clash.err;

  EXPECT_EQ(env.Stop(SIGTERM, seconds(30)), 0);
  // Pushed once: the shutdown's push added nothing new.
  EXPECT_EQ(StatCounter(env.redis, "q", "seen"), 15);
  EXPECT_EQ(StatCounter(env.redis, "q", "skipped_fifo"), 1);
}

TEST(MetricsTest, ABadListenAddressIsAConfigError) {
  DropqEnv env;
  QueueSpec q;
  q.handler = "builtin: noop";
  env.WriteConfig(q, "metrics:\n  listen: localhost\n");
  CommandResult r = RunCommand({DROPQD_BIN, "--check-config", "--config", env.config});
  EXPECT_EQ(r.status, 78);
  EXPECT_NE(r.err.find("metrics.listen"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is not host:port"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace dropq::test
