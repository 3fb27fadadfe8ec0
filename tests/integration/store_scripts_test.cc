// The Lua state machine (store/scripts.h) against a real redis-server.
#include <gtest/gtest.h>

#include "config/redis_url.h"
#include "store/keys.h"
#include "store/redis_sync.h"
#include "store/scripts.h"
#include "tests/support/redis_server.h"

namespace dropq {
namespace {

class StoreScriptsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.ok());
    auto url = ParseRedisUrl(redis_.url());
    ASSERT_TRUE(url.ok());
    auto c = RedisSync::Connect(*url, std::chrono::seconds(2));
    ASSERT_TRUE(c.ok()) << c.error().what;
    conn_ = std::move(*c);
  }

  Reply Eval(const Script& s, std::vector<std::string> args) {
    auto r = conn_->Eval(s, keys_.base(), args);
    EXPECT_TRUE(r.ok());
    EXPECT_FALSE(r->is_error()) << r->str;
    return std::move(*r);
  }
  std::vector<int64_t> Ints(const Reply& r) {
    std::vector<int64_t> out;
    for (const auto& e : r.elements) out.push_back(e.AsInt());
    return out;
  }
  std::string Field(const std::string& id, const std::string& f) {
    return redis_.Cmd({"HGET", keys_.Job(id), f});
  }
  Reply Enqueue(const std::string& id, const std::string& name, const std::string& ident) {
    return Eval(EnqueueScript(), {"1000", id, name, ident, "5"});
  }
  // Claims up to `n` jobs for `inst`; returns their ids.
  std::vector<std::string> Claim(const std::string& inst, int n) {
    Reply r = Eval(ClaimScript(), {"2000", inst, std::to_string(n)});
    std::vector<std::string> ids;
    for (size_t i = 0; i < r.elements.size(); i += 8) ids.push_back(r.elements[i].AsString());
    return ids;
  }
  Reply Ack(const std::string& inst, const std::string& id, const std::string& state,
            const std::string& files_value, int keep_done = 100) {
    return Eval(AckScript(), {inst, "3000", std::to_string(keep_done), "-1", id, state, files_value,
                              "1", "result", state == "done" ? "ok" : "exit"});
  }

  test::RedisServer redis_;
  std::unique_ptr<RedisSync> conn_;
  QueueKeys keys_{"dropq", "q"};
};

TEST_F(StoreScriptsTest, EnqueueDeduplicatesLiveAndHandledNames) {
  EXPECT_EQ(Ints(Enqueue("J1", "a.txt", "1:5:7")), std::vector<int64_t>{1});
  EXPECT_EQ(Ints(Enqueue("J2", "a.txt", "1:5:7")), std::vector<int64_t>{0});  // live
  EXPECT_EQ(redis_.CmdInt({"LLEN", keys_.Pending()}), 1);
  ASSERT_EQ(Claim("i1", 10), std::vector<std::string>{"J1"});
  Ack("i1", "J1", "done", "~1:5:7");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a.txt"}), "~1:5:7");
  EXPECT_EQ(Ints(Enqueue("J3", "a.txt", "1:5:7")), std::vector<int64_t>{0});  // same content
  EXPECT_EQ(Ints(Enqueue("J4", "a.txt", "1:6:9")), std::vector<int64_t>{1});  // changed
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a.txt"}), "J4");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Stats(), "enqueued"}), "2");
}

// A name is deduplicated by its file: the same inode rewritten while pending
// updates the pending job; another inode, or a new version of a file whose
// job was already claimed, is a job of its own.
TEST_F(StoreScriptsTest, EnqueueTellsFilesApartByInode) {
  EXPECT_EQ(Ints(Enqueue("J1", "a", "10:5:1")), std::vector<int64_t>{1});
  EXPECT_EQ(Ints(Enqueue("J2", "a", "10:9:2")), std::vector<int64_t>{0});  // grew, still pending
  EXPECT_EQ(Field("J1", "ident"), "10:9:2");
  EXPECT_EQ(Field("J1", "size"), "5");  // Enqueue() always passes size 5 here
  EXPECT_EQ(Ints(Enqueue("J3", "a", "11:9:2")), std::vector<int64_t>{1});  // renamed over
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a"}), "J3");
  ASSERT_EQ(Claim("i1", 1), std::vector<std::string>{"J1"});
  ASSERT_EQ(Claim("i1", 1), std::vector<std::string>{"J3"});
  EXPECT_EQ(Ints(Enqueue("J4", "a", "11:9:2")), std::vector<int64_t>{0});   // same file again
  EXPECT_EQ(Ints(Enqueue("J5", "a", "11:12:3")), std::vector<int64_t>{1});  // rewritten mid-run
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a"}), "J5");
  // The claimed job's ack leaves the newer job's entry alone.
  Ack("i1", "J3", "done", "~11:9:2");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a"}), "J5");
}

TEST_F(StoreScriptsTest, ClaimIsBoundedAndOwned) {
  for (int i = 0; i < 5; ++i) Enqueue("J" + std::to_string(i), "f" + std::to_string(i), "1:1:1");
  auto ids = Claim("i1", 3);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], "J0");  // FIFO
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Active()}), 3);
  EXPECT_EQ(redis_.CmdInt({"LLEN", keys_.Pending()}), 2);
  EXPECT_EQ(Field("J0", "state"), "active");
  EXPECT_EQ(Field("J0", "owner"), "i1");
  EXPECT_EQ(Claim("i2", 10).size(), 2u);
  EXPECT_TRUE(Claim("i2", 10).empty());
}

TEST_F(StoreScriptsTest, AckIsFencedByOwnerAndTrimsDone) {
  for (int i = 0; i < 4; ++i) Enqueue("J" + std::to_string(i), "f" + std::to_string(i), "1:1:1");
  Claim("i1", 4);
  EXPECT_EQ(Ints(Ack("intruder", "J0", "done", "")), std::vector<int64_t>{0});
  EXPECT_EQ(Field("J0", "state"), "active");
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(Ints(Ack("i1", "J" + std::to_string(i), "done", "", 2)), std::vector<int64_t>{1});
  }
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Done()}), 2);
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J0")}), 0);  // trimmed with its record
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J3")}), 1);
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Active()}), 0);
  EXPECT_EQ(redis_.CmdInt({"HLEN", keys_.Files()}), 0);
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Stats(), "done"}), "4");
  // A second ack of the same job (a resend after a lost reply) changes nothing.
  EXPECT_EQ(Ints(Ack("i1", "J3", "done", "")), std::vector<int64_t>{0});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Stats(), "done"}), "4");
}

TEST_F(StoreScriptsTest, ReleaseGoesToTheFrontAndKeepsAttempt) {
  for (int i = 0; i < 3; ++i) Enqueue("J" + std::to_string(i), "f" + std::to_string(i), "1:1:1");
  Claim("i1", 1);  // J0
  Eval(StartedScript(), {"i1", "2500", "J0", "1"});
  EXPECT_EQ(Field("J0", "attempt"), "1");
  EXPECT_EQ(Eval(ReleaseScript(), {"i1", "J0", "1"}).AsInt(), 1);
  EXPECT_EQ(Field("J0", "state"), "pending");
  EXPECT_EQ(Field("J0", "owner"), "");
  EXPECT_EQ(Field("J0", "interrupted"), "1");
  EXPECT_EQ(Field("J0", "attempt"), "1");
  EXPECT_EQ(Claim("i2", 1), std::vector<std::string>{"J0"});  // next in line again
}

TEST_F(StoreScriptsTest, RequeueReturnsOwnUnheldActiveJobs) {
  for (int i = 0; i < 4; ++i) Enqueue("J" + std::to_string(i), "f" + std::to_string(i), "1:1:1");
  Claim("i1", 3);  // J0 J1 J2
  Claim("i2", 1);  // J3: another instance's
  Eval(StartedScript(), {"i1", "2500", "J1", "1"});
  Reply r = Eval(RequeueScript(), {"i1", "J2"});  // i1 still holds J2
  std::vector<std::string> ids;
  for (const auto& e : r.elements) ids.push_back(e.AsString());
  EXPECT_EQ(ids, (std::vector<std::string>{"J0", "J1"}));
  EXPECT_EQ(Field("J0", "state"), "pending");
  // Whether or not STARTED reached Redis, a requeued job is marked: its
  // handler may have run.
  EXPECT_EQ(Field("J0", "interrupted"), "1");
  EXPECT_EQ(Field("J1", "interrupted"), "1");
  EXPECT_EQ(Field("J2", "state"), "active");
  EXPECT_EQ(Field("J3", "owner"), "i2");
}

TEST_F(StoreScriptsTest, RetryKeepsIdAndName) {
  Enqueue("J1", "a.txt", "1:1:1");
  Claim("i1", 1);
  Ack("i1", "J1", "failed", "");
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Failed()}), 1);
  Reply prep = Eval(RetryPrepareScript(), {"J1"});
  EXPECT_EQ(prep.elements.at(0).AsString(), "a.txt");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a.txt"}), "J1");
  // The watcher seeing the file come back does not make a second job.
  EXPECT_EQ(Ints(Enqueue("J2", "a.txt", "1:1:1")), std::vector<int64_t>{0});
  EXPECT_EQ(Eval(RetryCommitScript(), {"J1", "4000"}).AsInt(), 1);
  EXPECT_EQ(Field("J1", "state"), "pending");
  EXPECT_EQ(Field("J1", "attempt"), "0");
  EXPECT_EQ(Field("J1", "last_result"), "exit");
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Failed()}), 0);
  EXPECT_EQ(Claim("i1", 5), std::vector<std::string>{"J1"});
  // Only failed jobs can be retried.
  auto r = conn_->Eval(RetryPrepareScript(), keys_.base(), {"J1"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_error());
}

// A failed run scheduled for a retry waits in :scheduled, keeps its name,
// and PROMOTE puts it back to pending once due, reporting the next due time.
TEST_F(StoreScriptsTest, ScheduledRetriesArePromotedWhenDue) {
  Enqueue("J1", "a", "1:1:1");
  Enqueue("J2", "b", "2:1:1");
  Claim("i1", 2);
  EXPECT_EQ(
      Ints(Eval(AckScript(), {"i1", "3000", "100", "-1", "J1", "scheduled", "", "2", "due", "5000",
                              "failures", "1", "J2", "scheduled", "", "1", "due", "9000"})),
      (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(Field("J1", "state"), "scheduled");
  EXPECT_EQ(Field("J1", "owner"), "");
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Active()}), 0);
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a"}), "J1");  // still live
  EXPECT_EQ(Ints(Enqueue("J3", "a", "1:1:1")), std::vector<int64_t>{0});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Stats(), "retries"}), "2");

  Reply early = Eval(PromoteScript(), {"4999", "10"});
  EXPECT_EQ(early.elements.at(0).AsInt(), 0);
  EXPECT_EQ(early.elements.at(1).AsInt(), 5000);
  Reply due = Eval(PromoteScript(), {"5000", "10"});
  EXPECT_EQ(due.elements.at(0).AsInt(), 1);
  EXPECT_EQ(due.elements.at(1).AsInt(), 9000);
  EXPECT_EQ(Field("J1", "state"), "pending");
  EXPECT_EQ(Field("J1", "failures"), "1");
  EXPECT_EQ(Claim("i1", 5), std::vector<std::string>{"J1"});
  Reply last = Eval(PromoteScript(), {"99999", "10"});
  EXPECT_EQ(last.elements.at(0).AsInt(), 1);
  EXPECT_EQ(last.elements.at(1).AsInt(), -1);
}

TEST_F(StoreScriptsTest, KeepFailedTrimsOnlyWhenSetAndCounts) {
  for (int i = 0; i < 3; ++i) Enqueue("J" + std::to_string(i), "f" + std::to_string(i), "1:1:1");
  Claim("i1", 3);
  for (int i = 0; i < 3; ++i) {
    Eval(AckScript(), {"i1", std::to_string(3000 + i), "100", "2", "J" + std::to_string(i),
                       "failed", "", "1", "result", "exit"});
  }
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Failed()}), 2);
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J0")}), 0);
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Stats(), "failed_trimmed"}), "1");
}

TEST_F(StoreScriptsTest, ForgetDropsOnlyHandledMarkers) {
  Enqueue("J1", "live", "1:1:1");
  redis_.Cmd({"HSET", keys_.Files(), "kept", "~2:2:2"});
  Eval(ForgetScript(), {"live", "kept"});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "live"}), "J1");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "kept"}), "");
}

}  // namespace
}  // namespace dropq
