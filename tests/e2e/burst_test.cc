// A burst of 1,000 files, half renamed in from elsewhere and half written in
// place, each processed exactly once by a real exec handler: the handler's
// own log, the job records, the directories and dropqctl status all agree.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

constexpr int kFiles = 1000;

TEST(BurstTest, ThousandFilesEachProcessedExactlyOnce) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  // One short line per run, one write(2) to an O_APPEND descriptor.
  const std::string script = WriteScript(env.tmp.Sub("handler.sh"),
                                         "printf '%s %s\\n' \"$DROPQ_JOB_ID\" \"$2\" >> \"$1\"\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\"]";
  q.workers = 2;
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  const std::string staging = env.tmp.Mkdir("staging");
  std::set<std::string> names;
  for (int i = 0; i < kFiles; ++i) {
    char name[32];
    const bool renamed = i % 2 == 0;
    std::snprintf(name, sizeof name, "%s-%04d.dat", renamed ? "mv" : "wr", i);
    names.insert(name);
    const std::string content = "file " + std::string(name) + "\n";
    if (renamed) {
      WriteAndRename(staging + "/" + name, env.inbox + "/" + name, content);
    } else {
      WriteFile(env.inbox + "/" + name, content);
    }
  }

  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") >= kFiles; }, seconds(150),
                      std::chrono::milliseconds(100)))
      << "done=" << StatCounter(env.redis, "q", "done") << "\n"
      << env.DaemonLog().substr(0, 4000);

  // The handler's own account: exactly one line per file, none twice.
  const std::vector<std::string> lines = ReadLines(log);
  EXPECT_EQ(lines.size(), static_cast<size_t>(kFiles));
  std::map<std::string, std::string> id_of;  // name -> the job id the handler saw
  std::map<std::string, int> runs;
  for (const std::string& line : lines) {
    const size_t sp = line.find(' ');
    ASSERT_NE(sp, std::string::npos) << line;
    const std::string id = line.substr(0, sp), name = line.substr(sp + 1);
    ++runs[name];
    id_of[name] = id;
  }
  for (const auto& [name, n] : runs) {
    EXPECT_EQ(n, 1) << name << " ran " << n << " times";
    EXPECT_EQ(names.count(name), 1u) << "unexpected name " << name;
  }
  EXPECT_EQ(runs.size(), names.size());

  // Redis: one job per file, every one done, under the id the handler got.
  const auto by_name = JobIdsByName(env.redis, "q");
  EXPECT_EQ(by_name.size(), names.size());
  for (const std::string& name : names) {
    auto it = by_name.find(name);
    ASSERT_NE(it, by_name.end()) << "no job for " << name;
    ASSERT_EQ(it->second.size(), 1u) << name << " has " << it->second.size() << " jobs";
    auto rec = JobRecord(env.redis, "q", it->second[0]);
    EXPECT_EQ(rec["state"], "done") << name;
    EXPECT_EQ(rec["result"], "ok") << name;
    EXPECT_EQ(rec["attempt"], "1") << name;
    EXPECT_EQ(rec["disposed_to"], env.done + "/" + name);
    EXPECT_EQ(id_of[name], it->second[0]) << name;
  }
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), kFiles);
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), kFiles);
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "done")}), kFiles);
  EXPECT_EQ(env.redis.CmdInt({"HLEN", DropqEnv::Key("q", "files")}), 0);

  // The files: all in done/, none left behind, none in failed/.
  const std::vector<std::string> done = ListDir(env.done);
  EXPECT_EQ(std::set<std::string>(done.begin(), done.end()), names);
  EXPECT_TRUE(ListDir(env.inbox).empty());
  EXPECT_TRUE(ListDir(env.failed).empty());

  const nlohmann::json st = CtlStatus(env, "q");
  ASSERT_FALSE(st.is_null());
  EXPECT_EQ(st["done"], kFiles);
  EXPECT_EQ(st["pending"], 0);
  EXPECT_EQ(st["active"], 0);
  EXPECT_EQ(st["failed"], 0);

  EXPECT_TRUE(env.daemon()->running());
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
