// One dropqd serving two queues with their own directories, handlers,
// dispositions and Redis keys (under a non-default prefix): a name used in
// both is two independent jobs, and dropqctl sees both queues.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// "dq2:{<queue>}:<suffix>": this test's prefix, not DropqEnv's.
std::string Key(const std::string& queue, const std::string& suffix) {
  return "dq2:{" + queue + "}:" + suffix;
}

std::map<std::string, std::string> Record(const RedisServer& r, const std::string& queue,
                                          const std::string& id) {
  const std::vector<std::string> flat = r.CmdList({"HGETALL", Key(queue, "job:" + id)});
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < flat.size(); i += 2) out[flat[i]] = flat[i + 1];
  return out;
}

// name -> id of every job of `queue`.
std::map<std::string, std::string> Jobs(const RedisServer& r, const std::string& queue) {
  std::map<std::string, std::string> out;
  const std::string prefix = Key(queue, "job:");
  for (const std::string& k : r.CmdList({"KEYS", prefix + "*"})) {
    const std::string id = k.substr(prefix.size());
    out[r.Cmd({"HGET", k, "name"})] = id;
  }
  return out;
}

TEST(TwoQueuesTest, QueuesAreIndependent) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string images = env.tmp.Mkdir("images"), images_done = env.tmp.Mkdir("images-done");
  const std::string docs = env.tmp.Mkdir("docs"), log = env.tmp.Sub("docs.log");
  const std::string script =
      WriteScript(env.tmp.Sub("docs.sh"), "printf '%s %s\\n' \"$2\" \"$3\" >> \"$1\"\n");
  env.config = env.tmp.Sub("two.yaml");
  WriteFile(env.config,
            "redis:\n"
            "  url: " +
                env.redis.url() +
                "\n"
                "  prefix: dq2\n"
                "instance: test-1\n"
                "log_level: debug\n"
                "queues:\n"
                "  - name: images\n"
                "    watch: " +
                images +
                "\n"
                "    handler: { builtin: sha256 }\n"
                "    on_success: { move_to: " +
                images_done +
                " }\n"
                "  - name: docs\n"
                "    watch: " +
                docs +
                "\n"
                "    workers: 1\n"
                "    handler:\n"
                "      exec: [/bin/sh, " +
                script + ", " + log +
                ", \"{queue}\", \"{name}\"]\n"
                "    on_success: delete\n");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "scan.done") == 2; }));

  WriteFile(images + "/same.txt", "an image\n");
  WriteFile(images + "/pic.png", "png\n");
  WriteFile(docs + "/same.txt", "a doc\n");
  WriteFile(docs + "/letter.odt", "odt\n");
  ASSERT_TRUE(WaitFor(
      [&] {
        return env.redis.CmdInt({"HGET", Key("images", "counts"), "done"}) == 2 &&
               env.redis.CmdInt({"HGET", Key("docs", "counts"), "done"}) == 2;
      },
      seconds(20)))
      << env.DaemonLog();

  const auto img_jobs = Jobs(env.redis, "images"), doc_jobs = Jobs(env.redis, "docs");
  ASSERT_EQ(img_jobs.size(), 2u);
  ASSERT_EQ(doc_jobs.size(), 2u);
  ASSERT_TRUE(img_jobs.count("same.txt") && doc_jobs.count("same.txt"));
  EXPECT_NE(img_jobs.at("same.txt"), doc_jobs.at("same.txt"));
  EXPECT_EQ(Record(env.redis, "images", img_jobs.at("same.txt"))["sha256"],
            Sha256Hex("an image\n"));
  EXPECT_EQ(Record(env.redis, "docs", doc_jobs.at("same.txt"))["disposed_to"], "(deleted)");
  EXPECT_EQ(ListDir(images_done), (std::vector<std::string>{"pic.png", "same.txt"}));
  EXPECT_TRUE(ListDir(images).empty());
  EXPECT_TRUE(ListDir(docs).empty());
  EXPECT_EQ(Tally(ReadLines(log)),
            (std::map<std::string, int>{{"docs letter.odt", 1}, {"docs same.txt", 1}}));
  // Everything under the configured prefix, nothing under the default one.
  EXPECT_TRUE(env.redis.CmdList({"KEYS", "dropq:*"}).empty());

  const CommandResult st = env.Ctl({"status", "--json"});
  ASSERT_EQ(st.status, 0) << st.err;
  const nlohmann::json j = ParseJson(st.out);
  EXPECT_EQ(j["queues"]["images"]["done"], 2);
  EXPECT_EQ(j["queues"]["docs"]["done"], 2);
  const CommandResult show = env.Ctl({"show", "--json", doc_jobs.at("letter.odt")});
  ASSERT_EQ(show.status, 0) << show.err;
  EXPECT_EQ(ParseJson(show.out)["queue"], "docs");
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
