// Every redis-cli recipe in docs/redis-keys.md runs, as printed, against a
// queue in every state (done and kept, failed, running, pending while
// paused) and answers what the page says: the counts, the job records, and
// the oldest pending job's enqueue time read from its id.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/job_id.h"
#include "store/protocol.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/process.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// The redis-cli commands of the ```sh blocks of `md`: a command starts on a
// line beginning with "redis-cli"; indented lines continue it.
std::vector<std::string> RedisCliRecipes(const std::string& md) {
  std::vector<std::string> out;
  bool in_sh = false;
  for (const std::string& line : SplitLines(md)) {
    if (line.rfind("```", 0) == 0) {
      in_sh = !in_sh && line == "```sh";
      continue;
    }
    if (!in_sh) continue;
    if (line.rfind("redis-cli", 0) == 0) {
      out.push_back(line);
    } else if (!line.empty() && line[0] == ' ' && !out.empty() &&
               out.back().rfind("redis-cli", 0) == 0) {
      out.back() += "\n" + line;
    } else {
      out.push_back(line);  // another command (dropqctl): not run here
    }
  }
  std::erase_if(out, [](const std::string& c) { return c.rfind("redis-cli", 0) != 0; });
  return out;
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) {
    s.replace(at, from.size(), to);
  }
  return s;
}

TEST(DocRecipesTest, EveryRedisCliRecipeRunsAndAnswersWhatThePageSays) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  // "fail*" exits 3, "slow*" runs until stopped, the rest succeed.
  const std::string script =
      WriteScript(env.tmp.Sub("h.sh"), "case \"$1\" in fail*) exit 3;; slow*) sleep 60;; esac\n");
  QueueSpec q;
  q.name = "uploads";
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"{name}\"]\ntimeout: 2m";
  q.workers = 1;
  q.on_success = "keep";
  env.WriteConfig(q);
  SetDrainTimeout(env, "1s");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/ok.txt", "fine");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "uploads", "done") == 1; }))
      << env.DaemonLog();
  WriteFile(env.inbox + "/fail.txt", "bad");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "uploads", "failed") == 1; }))
      << env.DaemonLog();
  WriteFile(env.inbox + "/slow.txt", "slow");
  ASSERT_TRUE(WaitFor([&] {
    const auto ids = JobIdsByName(env.redis, "uploads");
    return ids.count("slow.txt") != 0 &&
           JobRecord(env.redis, "uploads", ids.at("slow.txt")[0])["attempt"] == "1";
  })) << env.DaemonLog();
  ASSERT_EQ(env.Ctl({"pause", "uploads"}).status, 0);
  const int64_t before_ms = NowUnixMs();
  WriteFile(env.inbox + "/p1.txt", "1");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "uploads", "enqueued") == 4; }));
  WriteFile(env.inbox + "/p2.txt", "2");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "uploads", "enqueued") == 5; }));

  const auto ids = JobIdsByName(env.redis, "uploads");
  const std::string failed_id = ids.at("fail.txt").at(0);
  const std::string active_id = ids.at("slow.txt").at(0);
  const std::string oldest_id = ids.at("p1.txt").at(0);

  std::ifstream in(std::string(DROPQ_SOURCE_DIR) + "/docs/redis-keys.md");
  std::stringstream md;
  md << in.rdbuf();
  const std::vector<std::string> recipes = RedisCliRecipes(md.str());
  ASSERT_GE(recipes.size(), 12u) << "the page's recipes were not found";

  std::vector<std::pair<std::string, std::string>> answers;  // recipe, its output
  for (const std::string& recipe : recipes) {
    std::string cmd =
        ReplaceAll(recipe, "redis-cli ", "redis-cli -p " + std::to_string(env.redis.port()) + " ");
    // The page's stand-ins: a job id, and an instance name.
    const bool about_failure = cmd.find("result, exit") != std::string::npos;
    cmd = ReplaceAll(cmd, "<id>", about_failure ? failed_id : active_id);
    cmd = ReplaceAll(cmd, "web-1", "test-1");
    const CommandResult r = RunCommand({"/bin/bash", "-c", cmd});
    ASSERT_EQ(r.status, 0) << cmd << "\n" << r.out << r.err;
    for (const std::string& line : SplitLines(r.out)) {
      EXPECT_TRUE(line.rfind("ERR", 0) != 0 && line.rfind("WRONGTYPE", 0) != 0 &&
                  line.rfind("(error)", 0) != 0)
          << cmd << "\n"
          << r.out;
    }
    EXPECT_TRUE(r.err.empty()) << cmd << "\n" << r.err;
    answers.emplace_back(recipe, r.out);
  }
  const auto answer = [&](const std::string& start) {
    for (const auto& [k, v] : answers) {
      if (k.rfind(start, 0) == 0) return v;
    }
    ADD_FAILURE() << "no recipe starts with " << start;
    return std::string();
  };
  EXPECT_EQ(answer("redis-cli LLEN  'dropq:{uploads}:pending'"), "2\n");
  EXPECT_EQ(answer("redis-cli ZCARD 'dropq:{uploads}:active'"), "1\n");
  EXPECT_EQ(answer("redis-cli ZCARD 'dropq:{uploads}:failed'"), "1\n");
  EXPECT_NE(answer("redis-cli HGETALL 'dropq:{uploads}:counts'").find("enqueued\n5\n"),
            std::string::npos);
  // The oldest pending job's enqueue time, from its id: p1's.
  const std::string oldest = answer("redis-cli EVAL");
  ASSERT_TRUE(JobIdTimeMs(oldest_id).has_value());
  EXPECT_EQ(oldest, std::to_string(*JobIdTimeMs(oldest_id)) + "\n");
  EXPECT_GE(std::stoll(oldest), before_ms - 1000);
  EXPECT_LE(std::stoll(oldest), NowUnixMs());
  // The running job's record, and the failed one's.
  const std::string running = answer("redis-cli HMGET 'dropq:{uploads}:job:");
  EXPECT_EQ(running.substr(0, running.find('\n')), "slow.txt") << running;
  EXPECT_NE(running.find("\ntest-1\n1\n"), std::string::npos) << running;
  const std::string why = answer("redis-cli HGETALL 'dropq:{uploads}:job:");
  EXPECT_NE(why.find("result\nexit\n"), std::string::npos) << why;
  EXPECT_NE(why.find("exit\n3\n"), std::string::npos) << why;
  EXPECT_NE(answer("redis-cli ZREVRANGE 'dropq:{uploads}:done'").find(ids.at("ok.txt").at(0)),
            std::string::npos);
  EXPECT_NE(answer("redis-cli HSCAN 'dropq:{uploads}:files'").find("ok.txt\n~"), std::string::npos);
  EXPECT_NE(answer("redis-cli SMEMBERS").find("test-1"), std::string::npos);
  EXPECT_NE(answer("redis-cli SMEMBERS").find("\"layout\":2"), std::string::npos);
  env.Stop();
}

}  // namespace
}  // namespace dropq::test
