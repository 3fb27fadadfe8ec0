// What an exec handler gets: every argv placeholder expanded in place
// ({path} {name} {stem} {ext} {dir} {queue} {job_id} {attempt}, and {{ }}
// for literal braces), the DROPQ_* environment, stdin from /dev/null, and a
// program that cannot be started is a failed job saying why.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

TEST(HandlerEnvTest, PlaceholdersAndEnvironment) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string out = env.tmp.Mkdir("out");
  // One NUL-terminated field per argument, then the environment, then stdin.
  const std::string script = WriteScript(
      env.tmp.Sub("dump.sh"),
      "o=$1/$DROPQ_JOB_ID; shift\n"
      "for a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$o.tmp\"\n"
      "printf '%s\\0' \"$DROPQ_PATH\" \"$DROPQ_JOB_ID\" \"$DROPQ_QUEUE\" \"$DROPQ_ATTEMPT\" "
      "\"$DROPQ_INSTANCE\" >> \"$o.tmp\"\n"
      "printf '%s\\0' \"$(cat)\" >> \"$o.tmp\"\n"
      "mv \"$o.tmp\" \"$o\"\n");
  QueueSpec q;
  q.name = "media.in";
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + out +
              "\", \"{path}\", \"{name}\", \"{stem}\", \"{ext}\", \"{dir}\", \"{queue}\", "
              "\"{job_id}\", \"{attempt}\", \"--out={dir}/../{stem}.png\", \"{{literal}}\", "
              "\"plain\"]";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/photo.tar.gz", "x");
  WriteFile(env.inbox + "/README", "x");
  ASSERT_TRUE(WaitFor([&] { return ListDir(out).size() == 2 && ListDir(env.done).size() == 2; },
                      seconds(20)))
      << env.DaemonLog();

  struct Want {
    std::string name, stem, ext;
  };
  for (const Want& w : {Want{"photo.tar.gz", "photo.tar", "gz"}, Want{"README", "README", ""}}) {
    SCOPED_TRACE(w.name);
    const auto by_name = JobIdsByName(env.redis, "media.in");
    ASSERT_EQ(by_name.count(w.name), 1u);
    const std::string id = by_name.at(w.name)[0];
    const std::string path =
        env.Processing(id, w.name, "media.in");  // {path}: where it is processed
    const std::vector<std::string> got = SplitNul(ReadFile(out + "/" + id));
    const std::vector<std::string> want = {path, w.name, w.stem, w.ext, env.inbox, "media.in", id,
                                           "1", "--out=" + env.inbox + "/../" + w.stem + ".png",
                                           "{literal}", "plain",
                                           // the environment
                                           path, id, "media.in", "1", "test-1",
                                           // stdin
                                           ""};
    EXPECT_EQ(got, want);
  }
  EXPECT_EQ(env.Stop(), 0);
}

TEST(HandlerEnvTest, ProgramThatCannotStartFailsTheJob) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "exec: [\"" + env.tmp.Sub("no-such-program") + "\", \"{path}\"]";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/x.txt", "x");
  ASSERT_TRUE(WaitFor([&] { return Exists(env.failed + "/x.txt"); }, seconds(20)))
      << env.DaemonLog();
  const auto by_name = JobIdsByName(env.redis, "q");
  ASSERT_EQ(by_name.count("x.txt"), 1u);
  const std::string id = by_name.at("x.txt")[0];
  ASSERT_TRUE(WaitFor([&] { return JobRecord(env.redis, "q", id)["state"] == "failed"; }));
  auto rec = JobRecord(env.redis, "q", id);
  EXPECT_EQ(rec["result"], "error");
  EXPECT_NE(rec["error"].find("no-such-program"), std::string::npos) << rec["error"];
  EXPECT_NE(rec["error"].find("No such file or directory"), std::string::npos) << rec["error"];
  EXPECT_TRUE(env.daemon()->running());
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
