// dropqctl's filters (`--match`, `--id`, `--error`, `--since`, `--until`) on
// `list`, `retry` and `purge`, over jobs a real dropqd failed: each selects
// exactly the jobs it names, and a bulk retry or purge acts on those only.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>
#include <string>

#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

std::set<std::string> Names(const nlohmann::json& list) {
  std::set<std::string> names;
  for (const auto& j : list["jobs"]) names.insert(j["name"].get<std::string>());
  return names;
}

class CtlFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.redis.ok());
    QueueSpec q;
    // PDFs fail with one complaint, JPEGs with another, the rest succeed.
    q.handler =
        "exec: [\"/bin/sh\", \"-c\", \"case \\\"$1\\\" in "
        "*.pdf) echo 'convert: bad header' >&2; exit 65;; "
        "*.jpg) echo 'resize: out of memory' >&2; exit 65;; esac\", \"sh\", \"{name}\"]";
    env_.WriteConfig(q);
    ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
    for (int i = 0; i < 10; ++i) WriteFile(env_.inbox + "/scan-" + std::to_string(i) + ".pdf", "x");
    for (int i = 0; i < 20; ++i) {
      WriteFile(env_.inbox + "/photo-" + std::to_string(i) + ".jpg", "x");
    }
    for (int i = 0; i < 5; ++i) WriteFile(env_.inbox + "/ok-" + std::to_string(i), "x");
    ASSERT_TRUE(WaitForOutcomes(env_.redis, 5, 30)) << env_.DaemonLog();
  }

  nlohmann::json List(std::vector<std::string> filter) {
    std::vector<std::string> args = {"list", "q", "--state", "failed", "--json"};
    args.insert(args.end(), filter.begin(), filter.end());
    const CommandResult r = env_.Ctl(args);
    EXPECT_EQ(r.status, 0) << r.err;
    return ParseJson(r.out);
  }

  DropqEnv env_;
};

TEST_F(CtlFilterTest, ListSelectsByNameIdErrorAndTime) {
  nlohmann::json all = List({});
  EXPECT_EQ(all["total"], 30);
  // A glob over the name, a substring of it.
  nlohmann::json pdf = List({"--match", "*.pdf"});
  EXPECT_EQ(pdf["total"], 10);
  EXPECT_EQ(pdf["jobs"].size(), 10U);
  for (const std::string& n : Names(pdf)) EXPECT_EQ(n.substr(0, 5), "scan-") << n;
  nlohmann::json photo1 = List({"--match", "photo-1"});
  EXPECT_EQ(photo1["total"], 11);  // photo-1 and photo-10 .. photo-19
  EXPECT_EQ(List({"--match", "photo-1?.jpg"})["total"], 10);
  // Error text: the stderr tail and the exit status, any case.
  EXPECT_EQ(List({"--error", "OUT OF MEMORY"})["total"], 20);
  EXPECT_EQ(List({"--error", "exit 65"})["total"], 30);
  EXPECT_EQ(List({"--error", "bad header", "--match", "scan-3"})["total"], 1);
  EXPECT_EQ(List({"--error", "no such words"})["total"], 0);
  // An id prefix: the full id of one job finds it alone.
  const std::string id = pdf["jobs"][0]["id"];
  nlohmann::json one = List({"--id", id});
  ASSERT_EQ(one["jobs"].size(), 1U);
  EXPECT_EQ(one["jobs"][0]["id"], id);
  // Time: all failed within the hour, none over an hour ago.
  EXPECT_EQ(List({"--since", "1h"})["total"], 30);
  EXPECT_EQ(List({"--until", "1h"})["total"], 0);
  // --limit bounds the jobs shown, not the total.
  nlohmann::json two = List({"--match", "*.jpg", "--limit", "2"});
  EXPECT_EQ(two["total"], 20);
  EXPECT_EQ(two["jobs"].size(), 2U);
  // The human form says how many there are beyond those shown.
  const CommandResult human = env_.Ctl({"list", "q", "--state", "failed", "--limit", "3"});
  EXPECT_NE(human.out.find("(3 of 30 shown; --limit for more)"), std::string::npos) << human.out;
  EXPECT_EQ(env_.Ctl({"list", "q", "--state", "failed", "--since", "soon"}).status, 64);
  EXPECT_EQ(env_.Stop(SIGTERM, seconds(30)), 0);
}

// dropqd adds what it enqueued, finished and failed to per-minute counters
// (the console's chart), each kept 20 minutes.
TEST_F(CtlFilterTest, PerMinuteCountersAddUpToTheJobs) {
  std::map<std::string, long long> sum;
  EXPECT_TRUE(WaitFor(
      [&] {
        sum.clear();
        for (const std::string& key : env_.redis.CmdList({"KEYS", DropqEnv::Key("q", "rate:*")})) {
          for (const char* f : {"enqueued", "done", "failed"}) {
            const std::string v = env_.redis.Cmd({"HGET", key, f});
            sum[f] += v.empty() ? 0 : std::stoll(v);
          }
          const long long ttl = env_.redis.CmdInt({"TTL", key});
          EXPECT_GT(ttl, 1000) << key;
          EXPECT_LE(ttl, 1200) << key;
        }
        return sum["enqueued"] == 35 && sum["done"] == 5 && sum["failed"] == 30;
      },
      seconds(15)))
      << sum["enqueued"] << " " << sum["done"] << " " << sum["failed"];
  EXPECT_EQ(env_.Stop(SIGTERM, seconds(30)), 0);
}

TEST_F(CtlFilterTest, RetryAndPurgeActOnTheMatchesOnly) {
  const std::set<std::string> pdf_names = Names(List({"--match", "*.pdf"}));
  // Retry needs a queue with a filter.
  EXPECT_EQ(env_.Ctl({"retry", "--match", "*.pdf"}).status, 64);
  const CommandResult retried = env_.Ctl({"retry", "--queue", "q", "--match", "*.pdf", "--json"});
  ASSERT_EQ(retried.status, 0) << retried.err;
  EXPECT_EQ(ParseJson(retried.out)["retried"].size(), 10U) << retried.out;
  // They run again (and fail again): each PDF has been retried once, no JPEG.
  ASSERT_TRUE(WaitFor(
      [&] {
        nlohmann::json again = List({"--match", "*.pdf"});
        if (again["total"] != 10) return false;
        for (const auto& j : again["jobs"]) {
          if (!j.contains("finished")) return false;
        }
        return true;
      },
      seconds(30)))
      << env_.DaemonLog();
  const nlohmann::json after = List({});  // kept: the loop reads into it
  for (const auto& j : after["jobs"]) {
    const std::string name = j["name"];
    const std::string rid = j["id"];
    const long long times =
        env_.redis.CmdInt({"HGET", DropqEnv::Key("q", "job:" + rid), "retried"});
    EXPECT_EQ(times, pdf_names.count(name) ? 1 : 0) << name;
  }
  // Purge by a filter: the JPEGs 10..19 only.
  const CommandResult purged =
      env_.Ctl({"purge", "--state", "failed", "--queue", "q", "--match", "photo-1?.jpg", "--json"});
  ASSERT_EQ(purged.status, 0) << purged.err;
  EXPECT_EQ(ParseJson(purged.out)["purged"], 10);
  EXPECT_EQ(env_.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "failed")}), 20);
  std::set<std::string> left = Names(List({"--limit", "100"}));
  for (int i = 10; i < 20; ++i) EXPECT_EQ(left.count("photo-" + std::to_string(i) + ".jpg"), 0U);
  EXPECT_EQ(left.count("photo-1.jpg"), 1U);
  // A filter that matches nothing purges nothing.
  EXPECT_EQ(ParseJson(env_.Ctl({"purge", "--state", "failed", "--queue", "q", "--error",
                                "no such words", "--json"})
                          .out)["purged"],
            0);
  EXPECT_EQ(env_.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "failed")}), 20);
  EXPECT_EQ(env_.Stop(SIGTERM, seconds(30)), 0);
}

}  // namespace
}  // namespace dropq::test
