// dropqctl's exit statuses, which scripts rely on: 0 ok, 1 not found or
// failed, 64 usage, 69 Redis unreachable (78 bad config: config_errors_test).
#include <gtest/gtest.h>

#include <string>

#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"

namespace dropq::test {
namespace {

class CtlExitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.redis.ok());
    env_.WriteConfig(QueueSpec{});
  }
  DropqEnv env_;
};

TEST_F(CtlExitTest, StatusOfAnEmptyQueue) {
  const CommandResult r = env_.Ctl({"status", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = ParseJson(r.out);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["queues"]["q"]["pending"], 0);
  EXPECT_EQ(j["queues"]["q"]["active"], 0);
  EXPECT_EQ(j["queues"]["q"]["done"], 0);
  EXPECT_EQ(j["queues"]["q"]["failed"], 0);

  const CommandResult human = env_.Ctl({"status"});
  EXPECT_EQ(human.status, 0);
  EXPECT_EQ(human.out.rfind("QUEUE", 0), 0u) << human.out;
  EXPECT_NE(human.out.find("\nq "), std::string::npos) << human.out;
}

TEST_F(CtlExitTest, UnknownJobIsNotFound) {
  CommandResult r = env_.Ctl({"show", "NOPE"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "dropqctl: no job NOPE in any configured queue\n");
  EXPECT_EQ(r.out, "");
  r = env_.Ctl({"show", "--json", "NOPE"});
  EXPECT_EQ(r.status, 1);
  r = env_.Ctl({"retry", "NOPE"});
  EXPECT_EQ(r.status, 1);
}

TEST_F(CtlExitTest, UsageErrors) {
  EXPECT_EQ(env_.Ctl({"retry"}).status, 64);
  EXPECT_EQ(env_.Ctl({"show"}).status, 64);
  EXPECT_EQ(env_.Ctl({}).status, 64);
  EXPECT_EQ(env_.Ctl({"frobnicate"}).status, 64);
  EXPECT_EQ(env_.Ctl({"retry", "ID", "--all-failed", "--queue", "q"}).status, 64);
  EXPECT_EQ(env_.Ctl({"status", "--no-such-flag"}).status, 64);
}

TEST_F(CtlExitTest, RedisUnreachable) {
  env_.redis.Stop();
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"status"},
                                             {"status", "--json"},
                                             {"show", "X"},
                                             {"retry", "X"},
                                             {"retry", "--all-failed", "--queue", "q"}}) {
    const CommandResult r = env_.Ctl(args);
    EXPECT_EQ(r.status, 69) << args[0] << ": " << r.err;
    EXPECT_EQ(r.err.rfind("dropqctl: ", 0), 0u) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

}  // namespace
}  // namespace dropq::test
