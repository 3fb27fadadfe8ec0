// The Lua state machine (store/scripts.h) against a real redis-server.
#include <gtest/gtest.h>

#include "config/redis_url.h"
#include "store/job_fields.h"
#include "store/keys.h"
#include "store/protocol.h"
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
    // As dropqd does when it connects: the queue gets this layout.
    auto up = conn_->Eval(UpgradeScript(), keys_.base(), {});
    ASSERT_TRUE(up.ok());
    ASSERT_TRUE(DecodeUpgrade(*up).ok()) << up->str;
  }

  Reply Eval(const Script& s, std::vector<std::string> args) {
    auto r = conn_->Eval(s, keys_.base(), args);
    EXPECT_TRUE(r.ok());
    EXPECT_FALSE(r->is_error()) << r->str;
    return std::move(*r);
  }
  // The flags of a reply (one character per job), as integers: ENQUEUE's
  // are its first element.
  std::vector<int64_t> Ints(const Reply& r) {
    const std::string& flags =
        r.type == Reply::Type::kArray && !r.elements.empty() ? r.elements[0].str : r.str;
    std::vector<int64_t> out;
    for (char c : flags) out.push_back(c - '0');
    return out;
  }
  // The fields of packed jobs (packed_jobs() in lib.lua), 8 per job.
  static std::vector<std::vector<std::string>> Unpack(const std::string& packed) {
    std::vector<std::vector<std::string>> out;
    std::vector<std::string> fields;
    size_t at = 0;
    for (size_t end; (end = packed.find('\0', at)) != std::string::npos; at = end + 1) {
      fields.push_back(packed.substr(at, end - at));
      if (fields.size() == 8) out.push_back(std::exchange(fields, {}));
    }
    EXPECT_TRUE(fields.empty());
    EXPECT_EQ(at, packed.size());
    return out;
  }
  std::string Field(const std::string& id, const std::string& f) {
    return redis_.Cmd({"HGET", keys_.Job(id), f});
  }
  Reply Enqueue(const std::string& id, const std::string& name, const std::string& ident) {
    return Eval(EnqueueScript(), {"1000", "i0", "0", id, name, ident});
  }
  // Claims up to `n` jobs for `inst`; returns their ids.
  std::vector<std::string> Claim(const std::string& inst, int n) {
    std::vector<std::string> ids;
    for (const auto& t : ClaimTuples(inst, n)) ids.push_back(t[0]);
    return ids;
  }
  Reply Ack(const std::string& inst, const std::string& id, const std::string& state,
            const std::string& files_value, int keep_done = 100) {
    return Eval(AckScript(), {inst, "3000", std::to_string(keep_done), "-1", id, state, files_value,
                              "1", "result", state == "done" ? "ok" : "exit"});
  }

  // Runs `s` and returns the reply as it is, error replies included.
  Reply Raw(const Script& s, std::vector<std::string> args) {
    auto r = conn_->Eval(s, keys_.base(), args);
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return Reply{};
    return std::move(*r);
  }
  // Claims up to `n` jobs for `inst`; returns the whole 8-tuples.
  std::vector<std::vector<std::string>> ClaimTuples(const std::string& inst, int n) {
    Reply r = Eval(ClaimScript(), {"2000", inst, std::to_string(n)});
    EXPECT_EQ(r.type, Reply::Type::kString);
    return Unpack(r.str);
  }
  // RECORD of one outcome: ack state `outcome`, processed identity `pident`.
  Reply Record(const std::string& inst, const std::string& id, const std::string& outcome,
               const std::string& pident) {
    return Eval(RecordScript(), {inst, id, "4", "result", outcome == "done" ? "ok" : "exit",
                                 "target", "/done/x", "outcome", outcome, "pident", pident});
  }

  test::RedisServer redis_;
  std::unique_ptr<RedisSync> conn_;
  QueueKeys keys_{"dropq", "q"};
};

// CLAIM with rate_limit and max_active: a claim is a start, counted
// against Redis' clock; a refusal says why and, for the rate, when.
TEST_F(StoreScriptsTest, ClaimHoldsToRateLimitAndMaxActive) {
  for (int i = 0; i < 6; ++i) {
    Enqueue("J" + std::to_string(i), "f" + std::to_string(i), "1" + std::to_string(i) + ":1:1");
  }
  const auto claim = [&](const std::string& inst, int n, const ClaimLimits& l) {
    return Raw(ClaimScript(), EncodeClaim(2000, inst, n, l));
  };
  // At most 2 starts a minute: 2 of the 5 asked, then a refusal with the wait.
  const ClaimLimits rate{2, 60000, 0};
  Reply r = claim("i1", 5, rate);
  ASSERT_FALSE(r.is_error()) << r.str;
  EXPECT_EQ(Unpack(r.str).size(), 2u);
  r = claim("i2", 5, rate);
  auto held = DecodeClaimHeld(r);
  ASSERT_TRUE(held.has_value()) << r.str;
  EXPECT_EQ(held->kind, ClaimHeld::Kind::kRate);
  EXPECT_GT(held->ms, 59000);
  EXPECT_LE(held->ms, 60001);
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.base() + "starts"}), 2);
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "rate_limited"}), "1");

  // At most 3 running: J0 and J1 run (claimed under the rate limit without
  // max_active, so uncounted); with max_active they start to count.
  const ClaimLimits active{0, 0, 3};
  r = claim("i1", 5, active);
  ASSERT_FALSE(r.is_error()) << r.str;
  const auto first = Unpack(r.str);
  ASSERT_EQ(first.size(), 3u);
  held = DecodeClaimHeld(claim("i2", 5, active));
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->kind, ClaimHeld::Kind::kActive);
  // An outcome recorded frees a slot, though the job is still active.
  Record("i1", first[0][0], "done", "1:1:1");
  r = claim("i2", 5, active);
  ASSERT_FALSE(r.is_error()) << r.str;
  EXPECT_EQ(Unpack(r.str).size(), 1u);
  // A job given back (its holder died) frees its slot too.
  EXPECT_EQ(Eval(ReleaseScript(), {"i1", first[1][0], "1"}).integer, 1);
  r = claim("i2", 5, active);
  ASSERT_FALSE(r.is_error()) << r.str;
  EXPECT_EQ(Unpack(r.str).size(), 1u);  // the released one, back in front
  // Nothing pending: an empty claim, not a refusal.
  r = claim("i3", 5, active);
  EXPECT_FALSE(r.is_error()) << r.str;
  EXPECT_EQ(r.str, "");
  // A stale entry (its job no longer active) is dropped by the count.
  Enqueue("J6", "f6", "16:1:1");
  redis_.Cmd({"ZADD", keys_.base() + "running", "1", "ghost"});
  held = DecodeClaimHeld(claim("i3", 5, active));
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(redis_.CmdInt({"ZSCORE", keys_.base() + "running", "ghost"}), 0);
}

// A call that frees max_active slots says so once on <base>freed, with how
// many; calls that free none publish nothing.
TEST_F(StoreScriptsTest, FreedSlotsAreAnnouncedOncePerCall) {
  auto url = ParseRedisUrl(redis_.url());
  ASSERT_TRUE(url.ok());
  auto sub = RedisSync::Connect(*url, std::chrono::seconds(5));
  ASSERT_TRUE(sub.ok()) << sub.error().what;
  const std::string channel = keys_.base() + "freed";
  ASSERT_TRUE((*sub)->Command({"SUBSCRIBE", channel}).ok());
  for (int i = 0; i < 4; ++i) {
    Enqueue("J" + std::to_string(i), "f" + std::to_string(i), "1" + std::to_string(i) + ":1:1");
  }
  const Reply r = Raw(ClaimScript(), EncodeClaim(2000, "i1", 4, ClaimLimits{0, 0, 4}));
  const auto jobs = Unpack(r.str);
  ASSERT_EQ(jobs.size(), 4u);
  // One RECORD of two outcomes: one message, "2".
  Eval(RecordScript(), {"i1", jobs[0][0], "1", "result", "ok", jobs[1][0], "1", "result", "ok"});
  // Their ACK frees nothing more: silent. A RELEASE of the other two: "2".
  Ack("i1", jobs[0][0], "done", "");
  Eval(ReleaseScript(), {"i1", jobs[2][0], "0", jobs[3][0], "1"});
  // A RELEASE of jobs this instance does not own frees nothing: silent.
  Eval(ReleaseScript(), {"i9", jobs[1][0], "0"});
  // The marker: published by hand, it comes after the script's messages.
  redis_.Cmd({"PUBLISH", channel, "end"});
  std::vector<std::string> got;
  for (;;) {
    auto m = (*sub)->NextReply();
    ASSERT_TRUE(m.ok()) << m.error().what;
    ASSERT_EQ(m->type, Reply::Type::kArray);
    ASSERT_EQ(m->elements.size(), 3u);
    EXPECT_EQ(m->elements[0].str, "message");
    EXPECT_EQ(m->elements[1].str, channel);
    if (m->elements[2].str == "end") break;
    got.push_back(m->elements[2].str);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"2", "2"}));
}

TEST_F(StoreScriptsTest, ThrottleHoldsEveryClaimAndOnlyLengthens) {
  Enqueue("J1", "a", "1:1:1");
  const Reply t = Eval(ThrottleScript(), EncodeThrottle(5000, "HTTP 429 Retry-After 5s"));
  ASSERT_EQ(t.type, Reply::Type::kInteger);
  const long long until = t.integer;
  EXPECT_EQ(Eval(ThrottleScript(), EncodeThrottle(1000, "shorter")).integer, until);
  EXPECT_EQ(redis_.Cmd({"GET", keys_.base() + "throttled_reason"}), "HTTP 429 Retry-After 5s");
  EXPECT_GT(redis_.CmdInt({"PTTL", keys_.base() + "throttled_until"}), 4000);
  const Reply r = Raw(ClaimScript(), EncodeClaim(2000, "i1", 5));
  const auto held = DecodeClaimHeld(r);
  ASSERT_TRUE(held.has_value()) << r.str;
  EXPECT_EQ(held->kind, ClaimHeld::Kind::kThrottled);
  EXPECT_GT(held->ms, 4000);
  // ENQUEUE claims nothing meanwhile either.
  const Reply e = Eval(EnqueueScript(), {"1000", "i1", "5", "J2", "b", "2:1:1"});
  EXPECT_EQ(e.elements[2].str, "");
  redis_.Cmd({"DEL", keys_.base() + "throttled_until"});
  EXPECT_EQ(Claim("i1", 5).size(), 2u);
}

TEST_F(StoreScriptsTest, EnqueueDeduplicatesLiveAndHandledNames) {
  EXPECT_EQ(Ints(Enqueue("J1", "a.txt", "1:5:7")), std::vector<int64_t>{1});
  EXPECT_EQ(Ints(Enqueue("J2", "a.txt", "1:5:7")), std::vector<int64_t>{0});  // live
  EXPECT_EQ(redis_.CmdInt({"LLEN", keys_.Pending()}), 1);
  ASSERT_EQ(Claim("i1", 10), std::vector<std::string>{"J1"});
  Ack("i1", "J1", "done", "~1:5:7");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a.txt"}), "~1:5:7");
  EXPECT_EQ(Ints(Enqueue("J3", "a.txt", "1:5:7")), std::vector<int64_t>{0});  // same content
  EXPECT_EQ(Ints(Enqueue("J4", "a.txt", "1:6:9")), std::vector<int64_t>{1});  // changed
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a.txt"}), "J4 1:6:9");  // no record before CLAIM
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J4")}), 0);
  EXPECT_EQ(redis_.Cmd({"LINDEX", keys_.Pending(), "0"}), "J4 a.txt");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "enqueued"}), "2");
}

// A name is deduplicated by its file: the same inode rewritten while pending
// updates the pending job; another inode, or a new version of a file whose
// job was already claimed, is a job of its own. A job never claimed whose
// name another file took meanwhile ends at CLAIM as a `replaced` count.
TEST_F(StoreScriptsTest, EnqueueTellsFilesApartByInode) {
  EXPECT_EQ(Ints(Enqueue("J1", "a", "10:5:1")), std::vector<int64_t>{1});
  EXPECT_EQ(Ints(Enqueue("J2", "a", "10:9:2")), std::vector<int64_t>{0});  // grew, still pending
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a"}), "J1 10:9:2");
  EXPECT_EQ(Ints(Enqueue("J3", "a", "11:9:2")), std::vector<int64_t>{1});  // renamed over
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a"}), "J3 11:9:2");
  ASSERT_EQ(Claim("i1", 1), std::vector<std::string>{"J3"});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "replaced"}), "1");
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J1")}), 0);
  EXPECT_EQ(Field("J3", "ident"), "11:9:2");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a"}), "J3");
  EXPECT_EQ(Ints(Enqueue("J4", "a", "11:9:2")), std::vector<int64_t>{0});   // same file again
  EXPECT_EQ(Ints(Enqueue("J5", "a", "11:12:3")), std::vector<int64_t>{1});  // rewritten mid-run
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a"}), "J5 11:12:3");
  // The claimed job's ack leaves the newer job's entry alone.
  Ack("i1", "J3", "done", "~11:9:2");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a"}), "J5 11:12:3");
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
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "done"}), "4");
  // A second ack of the same job (a resend after a lost reply) changes nothing.
  EXPECT_EQ(Ints(Ack("i1", "J3", "done", "")), std::vector<int64_t>{0});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "done"}), "4");
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
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "retries"}), "2");

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
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "failed_trimmed"}), "1");
}

TEST_F(StoreScriptsTest, ForgetDropsOnlyHandledMarkers) {
  Enqueue("J1", "live", "1:1:1");
  redis_.Cmd({"HSET", keys_.Files(), "kept", "~2:2:2"});
  Eval(ForgetScript(), {"live", "kept"});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "live"}), "J1 1:1:1");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "kept"}), "");
}

// ---------------------------------------------------------------- a recorded outcome survives

// The run ended and its outcome was recorded, then its holder died (REQUEUE)
// or let it go (RELEASE): the job keeps phase=disposing, is not counted as
// interrupted, and whoever claims it next is told what was recorded.
TEST_F(StoreScriptsTest, RecordedJobKeepsItsOutcomeThroughRequeue) {
  Enqueue("J1", "a.txt", "1:5:7");
  ASSERT_EQ(Claim("i1", 1), std::vector<std::string>{"J1"});
  Eval(StartedScript(), {"i1", "2500", "J1", "1"});
  EXPECT_EQ(Ints(Record("i1", "J1", "done", "1:6:8")), std::vector<int64_t>{1});
  EXPECT_EQ(Field("J1", "phase"), "disposing");
  EXPECT_EQ(Field("J1", "outcome"), "done");
  EXPECT_EQ(Field("J1", "pident"), "1:6:8");

  Reply r = Eval(RequeueScript(), {"i1"});
  ASSERT_EQ(r.elements.size(), 1u);
  EXPECT_EQ(r.elements[0].AsString(), "J1");
  EXPECT_EQ(Field("J1", "state"), "pending");
  EXPECT_EQ(Field("J1", "phase"), "disposing");
  EXPECT_EQ(Field("J1", "owner"), "");
  EXPECT_EQ(Field("J1", "interrupted"), "");
  EXPECT_EQ(Field("J1", "result"), "ok");  // not overwritten with 'interrupted'
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "interrupted"}), "");
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Active()}), 0);

  auto t = ClaimTuples("i2", 5);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0],
            (std::vector<std::string>{"J1", "a.txt", "1:5:7", "1", "0", "0", "done", "1:6:8"}));
  EXPECT_EQ(Field("J1", "owner"), "i2");
  EXPECT_EQ(Field("J1", "phase"), "disposing");

  // Its ACK clears the recording.
  EXPECT_EQ(Ints(Ack("i2", "J1", "done", "~1:6:8")), std::vector<int64_t>{1});
  EXPECT_EQ(Field("J1", "phase"), "");
  EXPECT_EQ(Field("J1", "outcome"), "");
  EXPECT_EQ(Field("J1", "pident"), "");
}

TEST_F(StoreScriptsTest, RecordedFailureKeepsItsOutcomeThroughRelease) {
  Enqueue("J1", "a.txt", "1:5:7");
  Enqueue("J2", "b.txt", "2:5:7");
  ASSERT_EQ(Claim("i1", 2), (std::vector<std::string>{"J1", "J2"}));
  EXPECT_EQ(Ints(Record("i1", "J1", "failed", "1:5:7")), std::vector<int64_t>{1});
  // Both are released as interrupted; only the unrecorded one is.
  EXPECT_EQ(Eval(ReleaseScript(), {"i1", "J1", "1", "J2", "1"}).AsInt(), 2);
  EXPECT_EQ(Field("J1", "phase"), "disposing");
  EXPECT_EQ(Field("J1", "interrupted"), "");
  EXPECT_EQ(Field("J2", "phase"), "");
  EXPECT_EQ(Field("J2", "interrupted"), "1");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "interrupted"}), "1");

  auto t = ClaimTuples("i2", 5);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0][0], "J2");  // RELEASE pushes each to the front: the last one first
  EXPECT_EQ(t[0][6], "");
  EXPECT_EQ(t[0][7], "");
  EXPECT_EQ(t[1][0], "J1");
  EXPECT_EQ(t[1][6], "failed");
  EXPECT_EQ(t[1][7], "1:5:7");
}

TEST_F(StoreScriptsTest, RecordIsFencedByOwner) {
  Enqueue("J1", "a.txt", "1:5:7");
  Claim("i1", 1);
  EXPECT_EQ(Ints(Record("intruder", "J1", "done", "1:5:7")), std::vector<int64_t>{0});
  EXPECT_EQ(Field("J1", "phase"), "");
  EXPECT_EQ(Field("J1", "outcome"), "");
}

// ---------------------------------------------------------------- hand-edited records

TEST_F(StoreScriptsTest, PendingRecordWithoutNameIsSetAsideAsCorrupt) {
  redis_.Cmd({"HSET", keys_.Job("J9"), "state", "pending", "ident", "1:1:1"});
  redis_.Cmd({"LPUSH", keys_.Pending(), "J9"});
  Enqueue("J1", "a.txt", "1:5:7");  // behind it

  auto t = ClaimTuples("i1", 5);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0], (std::vector<std::string>{"J9", "", "", "0", "0", "0", "corrupt", ""}));
  EXPECT_EQ(t[1][0], "J1");
  EXPECT_EQ(t[1][6], "");
  EXPECT_EQ(Field("J9", "state"), "failed");
  EXPECT_FALSE(Field("J9", "error").empty());
  EXPECT_EQ(Field("J9", "owner"), "");
  EXPECT_EQ(redis_.Cmd({"ZSCORE", keys_.Failed(), "J9"}), "2000");
  EXPECT_EQ(redis_.Cmd({"ZSCORE", keys_.Active(), "J9"}), "");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "corrupt"}), "1");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "stale_pending"}), "");
}

TEST_F(StoreScriptsTest, PendingRecordWithoutStateIsSetAsideAsCorrupt) {
  redis_.Cmd({"HSET", keys_.Job("J9"), "name", "a.txt", "ident", "1:1:1"});
  redis_.Cmd({"LPUSH", keys_.Pending(), "J9"});

  auto t = ClaimTuples("i1", 5);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0][6], "corrupt");
  EXPECT_EQ(Field("J9", "state"), "failed");  // where an operator sees it
  EXPECT_NE(Field("J9", "error").find("no state"), std::string::npos);
  EXPECT_EQ(redis_.Cmd({"ZSCORE", keys_.Failed(), "J9"}), "2000");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "corrupt"}), "1");
}

TEST_F(StoreScriptsTest, JobKeyThatIsNotAHashIsCorrupt) {
  redis_.Cmd({"RPUSH", keys_.Job("J8"), "x"});
  redis_.Cmd({"LPUSH", keys_.Pending(), "J8"});
  redis_.Cmd({"LPUSH", keys_.Pending(), "J7"});  // no record at all: stale, not corrupt

  auto t = ClaimTuples("i1", 5);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0], (std::vector<std::string>{"J8", "", "", "0", "0", "0", "corrupt", ""}));
  EXPECT_EQ(redis_.Cmd({"TYPE", keys_.Job("J8")}), "list");  // left as it is
  EXPECT_EQ(redis_.CmdInt({"LLEN", keys_.Pending()}), 0);
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Active()}), 0);
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "corrupt"}), "1");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "stale_pending"}), "1");
}

// A queue key of the wrong type: every script that may write it refuses
// before its first write, so nothing is half done. Scripts that never touch
// it go on, so jobs already running still end properly.
TEST_F(StoreScriptsTest, WrongTypeQueueKeyIsRefusedBeforeAnyWrite) {
  Enqueue("J1", "a.txt", "1:5:7");
  Enqueue("J2", "b.txt", "2:5:7");
  ASSERT_EQ(Claim("i1", 1), std::vector<std::string>{"J1"});
  redis_.Cmd({"DEL", keys_.Pending()});
  redis_.Cmd({"SET", keys_.Pending(), "hand-edited"});
  const std::vector<std::string> files_before = redis_.CmdList({"HGETALL", keys_.Files()});
  const std::vector<std::string> stats_before = redis_.CmdList({"HGETALL", keys_.Counts()});
  const std::vector<std::string> j1_before = redis_.CmdList({"HGETALL", keys_.Job("J1")});
  const std::vector<std::string> j2_before = redis_.CmdList({"HGETALL", keys_.Job("J2")});

  auto expect_wrongtype = [](const Reply& r, const char* what) {
    EXPECT_TRUE(r.is_error()) << what;
    EXPECT_EQ(r.str.rfind("WRONGTYPE", 0), 0u) << what << ": " << r.str;
  };
  expect_wrongtype(Raw(EnqueueScript(), {"1000", "i1", "0", "J3", "c.txt", "3:5:7"}), "enqueue");
  expect_wrongtype(Raw(EnqueueScript(), {"1000", "i1", "5", "J3", "c.txt", "3:5:7"}),
                   "enqueue and claim");
  expect_wrongtype(Raw(ClaimScript(), {"2000", "i1", "10"}), "claim");
  expect_wrongtype(Raw(ReleaseScript(), {"i1", "J1", "1"}), "release");
  expect_wrongtype(Raw(RequeueScript(), {"i1"}), "requeue");
  expect_wrongtype(Raw(PromoteScript(), {"99999", "10"}), "promote");

  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J3")}), 0);
  EXPECT_EQ(redis_.CmdList({"HGETALL", keys_.Files()}), files_before);
  EXPECT_EQ(redis_.CmdList({"HGETALL", keys_.Counts()}), stats_before);
  EXPECT_EQ(redis_.CmdList({"HGETALL", keys_.Job("J1")}), j1_before);
  EXPECT_EQ(redis_.CmdList({"HGETALL", keys_.Job("J2")}), j2_before);
  EXPECT_EQ(redis_.Cmd({"GET", keys_.Pending()}), "hand-edited");
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Active()}), 1);
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Done()}), 0);
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Failed()}), 0);

  // The running job J1 never needs pending: its outcome is recorded and
  // acknowledged as usual.
  EXPECT_EQ(Ints(Raw(RecordScript(), {"i1", "J1", "1", "outcome", "done"})),
            std::vector<int64_t>{1});
  EXPECT_EQ(Ints(Ack("i1", "J1", "done", "")), std::vector<int64_t>{1});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Job("J1"), "state"}), "done");
  EXPECT_EQ(redis_.Cmd({"GET", keys_.Pending()}), "hand-edited");

  // Put right, the same calls work again.
  redis_.Cmd({"DEL", keys_.Pending()});
  EXPECT_EQ(Ints(Enqueue("J3", "c.txt", "3:5:7")), std::vector<int64_t>{1});
}

// A wrong-typed active set stops the scripts that end jobs, before a write.
TEST_F(StoreScriptsTest, WrongTypeActiveKeyStopsAcknowledgements) {
  Enqueue("J1", "a.txt", "1:5:7");
  ASSERT_EQ(Claim("i1", 1), std::vector<std::string>{"J1"});
  redis_.Cmd({"DEL", keys_.Active()});
  redis_.Cmd({"SET", keys_.Active(), "hand-edited"});
  const std::vector<std::string> j1_before = redis_.CmdList({"HGETALL", keys_.Job("J1")});
  for (const auto& [script, args] : std::vector<std::pair<const Script*, std::vector<std::string>>>{
           {&AckScript(), {"i1", "3000", "100", "-1", "J1", "done", "", "1", "result", "ok"}},
           {&ReleaseScript(), {"i1", "J1", "1"}},
           {&ClaimScript(), {"2000", "i1", "10"}}}) {
    Reply r = Raw(*script, args);
    EXPECT_TRUE(r.is_error()) << script->name;
    EXPECT_EQ(r.str.rfind("WRONGTYPE", 0), 0u) << script->name << ": " << r.str;
  }
  EXPECT_EQ(redis_.CmdList({"HGETALL", keys_.Job("J1")}), j1_before);
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Done()}), 0);
}

TEST_F(StoreScriptsTest, WrongTypeFilesOrStatsKeyIsRefusedToo) {
  redis_.Cmd({"RPUSH", keys_.Files(), "x"});
  Reply r = Raw(EnqueueScript(), {"1000", "i1", "0", "J1", "a.txt", "1:5:7"});
  EXPECT_TRUE(r.is_error());
  EXPECT_EQ(r.str.rfind("WRONGTYPE", 0), 0u) << r.str;
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J1")}), 0);
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Pending()}), 0);
  redis_.Cmd({"DEL", keys_.Files()});

  redis_.Cmd({"SET", keys_.Counts(), "1"});
  Reply r2 = Raw(EnqueueScript(), {"1000", "i1", "4", "J1", "a.txt", "1:5:7"});
  EXPECT_TRUE(r2.is_error());
  EXPECT_EQ(r2.str.rfind("WRONGTYPE", 0), 0u) << r2.str;
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J1")}), 0);
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Files()}), 0);
}

// A :files entry whose record belongs to another name (or to none) does not
// hold this name: it is stale, and the file gets a job.
TEST_F(StoreScriptsTest, EnqueueTreatsAnEntryForAnotherNameAsStale) {
  EXPECT_EQ(Ints(Enqueue("J1", "a.txt", "1:5:7")), std::vector<int64_t>{1});
  redis_.Cmd({"HSET", keys_.Files(), "b.txt", "J1"});  // hand-edited
  EXPECT_EQ(Ints(Enqueue("J2", "b.txt", "1:5:7")), std::vector<int64_t>{1});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "b.txt"}), "J2 1:5:7");
  EXPECT_EQ(redis_.Cmd({"LINDEX", keys_.Pending(), "0"}), "J2 b.txt");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a.txt"}), "J1 1:5:7");  // not touched

  redis_.Cmd({"HSET", keys_.Job("J5"), "state", "pending", "ident", "3:5:7"});  // no name
  redis_.Cmd({"HSET", keys_.Files(), "c.txt", "J5"});
  EXPECT_EQ(Ints(Enqueue("J3", "c.txt", "3:5:7")), std::vector<int64_t>{1});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "c.txt"}), "J3 3:5:7");

  redis_.Cmd({"RPUSH", keys_.Job("J6"), "x"});  // not a hash
  redis_.Cmd({"HSET", keys_.Files(), "d.txt", "J6"});
  EXPECT_EQ(Ints(Enqueue("J4", "d.txt", "4:5:7")), std::vector<int64_t>{1});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "d.txt"}), "J4 4:5:7");

  // "<id> <ident>" of a job that has a record is stale: CLAIM rewrites the
  // entry as it makes the record.
  redis_.Cmd({"HSET", keys_.Job("J7"), "name", "e.txt", "state", "active", "ident", "5:5:7"});
  redis_.Cmd({"HSET", keys_.Files(), "e.txt", "J7 5:5:7"});
  EXPECT_EQ(Ints(Enqueue("J8", "e.txt", "5:5:7")), std::vector<int64_t>{1});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "enqueued"}), "5");
}

// DISPOSE_FAILED writes only a record this instance owns, active and in its
// disposing phase: never a record another instance took over, and never a
// deleted one (which a plain HSET would recreate as a two-field hash).
TEST_F(StoreScriptsTest, DisposeFailedIsOwnerChecked) {
  Enqueue("J1", "a.txt", "1:5:7");
  Enqueue("J2", "b.txt", "2:5:7");
  ASSERT_EQ(Claim("i1", 2).size(), 2u);
  Record("i1", "J1", "done", "1:5:7");
  const auto write = [&](const std::string& inst, const std::string& id) {
    auto r = conn_->Eval(DisposeFailedScript(), keys_.base(),
                         EncodeDisposeFailed(inst, {{id, "rename: EACCES", 3}}));
    EXPECT_TRUE(r.ok());
    auto taken = DecodeTaken(*r, 1);
    EXPECT_TRUE(taken.ok()) << taken.error().what;
    return taken.ok() && (*taken)[0];
  };
  EXPECT_FALSE(write("i2", "J1"));  // not the owner
  EXPECT_FALSE(write("i1", "J2"));  // not disposing: no outcome recorded
  EXPECT_TRUE(write("i1", "J1"));
  EXPECT_EQ(Field("J1", "dispose_error"), "rename: EACCES");
  EXPECT_EQ(Field("J1", "dispose_failures"), "3");
  EXPECT_EQ(Field("J2", "dispose_error"), "");
  redis_.Cmd({"DEL", keys_.Job("J1")});
  EXPECT_FALSE(write("i1", "J1"));
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J1")}), 0);
}

// Redis reports a failing script at a line of lib.lua and the script joined;
// the error names the file and the line in it instead.
TEST_F(StoreScriptsTest, ScriptErrorsNameTheLuaFileAndLine) {
  // RECORD with a field count that is not a number fails inside record.lua.
  Reply r = Raw(RecordScript(), {"i1", "J1", "not-a-number"});
  ASSERT_TRUE(r.is_error());
  EXPECT_NE(r.str.find("store/lua/record.lua:"), std::string::npos) << r.str;
  EXPECT_EQ(r.str.find("user_script:"), std::string::npos) << r.str;
}

// Every field a job's life leaves in its record is in the one table of field
// names (store/job_fields.h), whatever path it took: retried, failed, done,
// disposed, released, requeued, retried by hand.
TEST_F(StoreScriptsTest, EveryFieldTheScriptsWriteIsInTheFieldTable) {
  for (int i = 1; i <= 4; ++i) {
    const std::string n = std::to_string(i);
    Enqueue("J" + n, n + ".txt", n + ":5:7");
  }
  ASSERT_EQ(Claim("i1", 4).size(), 4u);
  Eval(StartedScript(), EncodeStarted("i1", 2500, {{"J1", 1}, {"J2", 1}, {"J3", 1}, {"J4", 1}}));
  Outcome failed;
  failed.job.attempt = 1;
  failed.job.failures = 1;
  failed.result = RunResult::kExit;
  failed.exit_code = 3;
  failed.stderr_tail = "boom";
  failed.error = "exit 3";
  Outcome ok;
  ok.job.attempt = 1;
  ok.sha256 = "ab";
  Fields sched = OutcomeFields(failed);
  sched.emplace_back(jobfield::kDue, "1");
  // J1 is scheduled for a retry, promoted, claimed, released as interrupted
  // and requeued; J2 fails after its outcome is recorded and its move
  // failed once; J3 ends done; J4 fails and is retried by hand.
  Eval(AckScript(), EncodeAck("i1", 3000, 100, -1, {{"J1", AckAs::kScheduled, "", sched}}));
  Eval(RecordScript(), EncodeRecord("i1", {{"J2", OutcomeFields(failed), AckAs::kFailed, "",
                                            FileIdentity{2, 5, 7}}}));
  Eval(DisposeFailedScript(), EncodeDisposeFailed("i1", {{"J2", "EACCES", 1}}));
  Eval(AckScript(), EncodeAck("i1", 3000, 100, -1,
                              {{"J2", AckAs::kFailed, "", {{"disposed_to", "(deleted)"}}},
                               {"J3", AckAs::kDone, "~3:5:7", OutcomeFields(ok)},
                               {"J4", AckAs::kFailed, "", OutcomeFields(failed)}}));
  Eval(PromoteScript(), EncodePromote(5000, 10));
  ASSERT_EQ(Claim("i1", 1), std::vector<std::string>{"J1"});
  Eval(ReleaseScript(), EncodeRelease("i1", {{"J1", true}}));
  ASSERT_EQ(Claim("i1", 1), std::vector<std::string>{"J1"});
  Eval(RequeueScript(), EncodeRequeue("i1", {}));
  Eval(RetryPrepareScript(), {"J4"});
  Eval(RetryCommitScript(), {"J4", "6000"});
  for (const char* id : {"J1", "J2", "J3", "J4"}) {
    const std::vector<std::string> kv = redis_.CmdList({"HGETALL", keys_.Job(id)});
    ASSERT_FALSE(kv.empty()) << id;
    for (size_t i = 0; i < kv.size(); i += 2) {
      EXPECT_TRUE(jobfield::IsKnown(kv[i])) << id << " has field " << kv[i];
    }
  }
}

// ---------------------------------------------------------------- layout

// A queue left by a dropq of layout 1 (counters in :stats, a record made at
// ENQUEUE with size and enq): UPGRADE moves the counters and leaves a string
// at :stats, on which every layout 1 script stops before writing. Its jobs
// are read as they are.
TEST_F(StoreScriptsTest, UpgradeMovesLayoutOneCountersAndLeavesATripwire) {
  const std::string stats = keys_.base() + "stats";
  redis_.Cmd({"DEL", keys_.Layout(), stats});  // as a layout 1 dropqd left them
  redis_.Cmd({"HSET", stats, "enqueued", "5", "done", "3", "edited", "x"});
  redis_.Cmd({"HSET", keys_.Counts(), "done", "1", "seen", "7"});  // pushed before the upgrade
  redis_.Cmd({"HSET", keys_.Job("J9"), "name", "a.txt", "size", "5", "ident", "1:5:7", "state",
              "pending", "enq", "1000"});
  redis_.Cmd({"LPUSH", keys_.Pending(), "J9"});
  redis_.Cmd({"HSET", keys_.Files(), "a.txt", "J9"});
  Reply missing = Raw(ClaimScript(), EncodeClaim(2000, "i1", 1));
  EXPECT_TRUE(IsLayoutReply(missing)) << missing.str;
  EXPECT_NE(missing.str.find("layout is missing"), std::string::npos) << missing.str;
  EXPECT_EQ(redis_.CmdInt({"LLEN", keys_.Pending()}), 1);  // refused before any write

  for (int i = 0; i < 2; ++i) {  // idempotent
    Reply up = Raw(UpgradeScript(), {});
    ASSERT_TRUE(DecodeUpgrade(up).ok()) << up.str;
  }
  EXPECT_EQ(redis_.Cmd({"GET", keys_.Layout()}), "2");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "enqueued"}), "5");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "done"}), "4");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "seen"}), "7");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "edited"}), "x");
  EXPECT_EQ(redis_.Cmd({"TYPE", stats}), "string");
  // A layout 1 dropqd counts with HINCRBY on :stats and checks its type in
  // every script: both fail.
  EXPECT_NE(redis_.Cmd({"HINCRBY", stats, "done", "1"}).find("WRONGTYPE"), std::string::npos);

  auto t = ClaimTuples("i1", 5);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0][0], "J9");
  EXPECT_EQ(t[0][1], "a.txt");
  EXPECT_EQ(t[0][2], "1:5:7");
  // Its file, seen again, is the same job.
  EXPECT_EQ(Ints(Enqueue("J10", "a.txt", "1:5:7")), std::vector<int64_t>{0});
}

// A queue of a later layout (or none) is refused by every script, before any
// write: two versions never read each other's keys.
TEST_F(StoreScriptsTest, EveryScriptRefusesAQueueOfAnotherLayout) {
  Enqueue("J1", "a.txt", "1:5:7");
  Enqueue("J2", "b.txt", "2:5:7");
  Claim("i1", 1);
  const std::vector<std::pair<const Script*, std::vector<std::string>>> calls = {
      {&EnqueueScript(), EncodeEnqueue(2000, "i1", 0, {{"J3", "c.txt", {3, 5, 7}}})},
      {&EnqueueScript(), EncodeEnqueue(2000, "i1", 5, {{"J3", "c.txt", {3, 5, 7}}})},
      {&ClaimScript(), EncodeClaim(2000, "i1", 5)},
      {&StartedScript(), EncodeStarted("i1", 2500, {{"J1", 1}})},
      {&RecordScript(), {"i1", "J1", "1", "result", "ok"}},
      {&AckScript(), {"i1", "3000", "100", "-1", "J1", "done", "~1:5:7", "1", "result", "ok"}},
      {&ReleaseScript(), EncodeRelease("i1", {{"J1", true}})},
      {&RequeueScript(), EncodeRequeue("i1", {})},
      {&ForgetScript(), {"a.txt"}},
      {&StatesScript(), {"J1"}},
      {&PromoteScript(), EncodePromote(5000, 10)},
      {&RetryPrepareScript(), {"J1"}},
      {&RetryCommitScript(), {"J1", "6000"}},
      {&RetryAbortScript(), {"J1", ""}},
      {&PurgeScript(), {"done", "9000", "10"}},
      {&DisposeFailedScript(), EncodeDisposeFailed("i1", {{"J1", "EACCES", 1}})},
  };
  for (const char* layout : {"3", ""}) {
    if (*layout) {
      redis_.Cmd({"SET", keys_.Layout(), layout});
    } else {
      redis_.Cmd({"DEL", keys_.Layout()});
    }
    const std::vector<std::string> before = redis_.CmdList({"KEYS", "*"});
    const std::string dump = redis_.Cmd({"HGETALL", keys_.Job("J1")});
    for (const auto& [script, args] : calls) {
      Reply r = Raw(*script, args);
      EXPECT_TRUE(IsLayoutReply(r)) << script->name << ": " << r.str;
    }
    EXPECT_EQ(redis_.CmdList({"KEYS", "*"}), before);
    EXPECT_EQ(redis_.CmdInt({"LLEN", keys_.Pending()}), 1);
    EXPECT_EQ(redis_.Cmd({"HGET", keys_.Job("J1"), "state"}), "active");
  }
  redis_.Cmd({"SET", keys_.Layout(), "3"});
  Reply up = Raw(UpgradeScript(), {});
  EXPECT_TRUE(IsLayoutReply(up)) << up.str;
  EXPECT_EQ(redis_.Cmd({"GET", keys_.Layout()}), "3");
}

// CLAIM makes the record of a job never claimed from its two entries, and
// sets a job aside whose entries disagree.
TEST_F(StoreScriptsTest, ClaimMakesTheRecordOfAJobNeverClaimed) {
  Enqueue("J1", "a b.txt", "1:5:7");
  auto t = ClaimTuples("i1", 1);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0], (std::vector<std::string>{"J1", "a b.txt", "1:5:7", "0", "0", "0", "", ""}));
  EXPECT_EQ(Field("J1", "name"), "a b.txt");
  EXPECT_EQ(Field("J1", "ident"), "1:5:7");
  EXPECT_EQ(Field("J1", "state"), "active");
  EXPECT_EQ(Field("J1", "owner"), "i1");
  EXPECT_EQ(Field("J1", "claimed"), "2000");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "a b.txt"}), "J1");
  EXPECT_EQ(redis_.CmdInt({"ZSCORE", keys_.Active(), "J1"}), 2000);

  // Its :files entry gone (a hand edit): stale, nothing made.
  Enqueue("J2", "b.txt", "2:5:7");
  redis_.Cmd({"HDEL", keys_.Files(), "b.txt"});
  EXPECT_TRUE(ClaimTuples("i1", 1).empty());
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J2")}), 0);
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "stale_pending"}), "1");
  // An id no file or directory may have: corrupt.
  redis_.Cmd({"LPUSH", keys_.Pending(), ".x c.txt"});
  t = ClaimTuples("i1", 1);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0][6], "corrupt");
}

// ENQUEUE with room to claim: jobs that waited in :pending go first, then
// the new files, straight to active with their records; what is left over
// waits in :pending. Nothing is claimed while the queue is paused.
TEST_F(StoreScriptsTest, EnqueueClaimsPendingFirstThenItsOwnFiles) {
  Enqueue("J1", "a.txt", "1:5:7");  // waiting in :pending
  const auto call = [&](int max, std::vector<EnqueueItem> items) {
    auto r = conn_->Eval(EnqueueScript(), keys_.base(), EncodeEnqueue(2000, "i1", max, items));
    EXPECT_TRUE(r.ok());
    auto e = DecodeEnqueue(*r, items.size());
    EXPECT_TRUE(e.ok()) << e.error().what;
    return e.ok() ? std::move(*e) : Enqueued{};
  };
  Enqueued e = call(2, {{"J2", "b.txt", {2, 5, 7}},
                        {"J3", "c.txt", {3, 5, 7}},
                        {"J4", "a.txt", {1, 5, 7}}});  // a.txt: known
  EXPECT_EQ(e.enqueued, 2u);
  EXPECT_FALSE(e.paused);
  ASSERT_EQ(e.claimed.size(), 2u);
  EXPECT_EQ(e.claimed[0].job.id, "J1");
  EXPECT_EQ(e.claimed[1].job.id, "J2");
  EXPECT_EQ(e.claimed[1].job.name, "b.txt");
  EXPECT_EQ(e.claimed[1].job.ident, (FileIdentity{2, 5, 7}));
  EXPECT_EQ(Field("J2", "state"), "active");
  EXPECT_EQ(Field("J2", "owner"), "i1");
  EXPECT_EQ(Field("J2", "ident"), "2:5:7");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "b.txt"}), "J2");
  EXPECT_EQ(redis_.CmdInt({"ZSCORE", keys_.Active(), "J2"}), 2000);
  // No room left for c.txt: it waits as a job never claimed.
  EXPECT_EQ(redis_.CmdList({"LRANGE", keys_.Pending(), "0", "-1"}),
            std::vector<std::string>{"J3 c.txt"});
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Files(), "c.txt"}), "J3 3:5:7");
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J3")}), 0);
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "enqueued"}), "3");

  redis_.Cmd({"SET", keys_.Paused(), "1"});
  e = call(5, {{"J5", "d.txt", {5, 5, 7}}});
  EXPECT_TRUE(e.paused);
  EXPECT_TRUE(e.claimed.empty());
  EXPECT_EQ(e.enqueued, 1u);
  EXPECT_EQ(redis_.CmdInt({"LLEN", keys_.Pending()}), 2);
  redis_.Cmd({"DEL", keys_.Paused()});
  e = call(5, {});
  ASSERT_EQ(e.claimed.size(), 2u);
  EXPECT_EQ(e.claimed[0].job.id, "J3");  // oldest first
  EXPECT_EQ(e.claimed[1].job.id, "J5");
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Active()}), 4);
}

// ENQUEUE tells the files apart before it claims: a pending job whose file
// was rewritten (same inode) is claimed once, with the new identity, and no
// second job is made for it.
TEST_F(StoreScriptsTest, EnqueueUpdatesAPendingJobBeforeItClaimsIt) {
  Enqueue("J1", "a.txt", "5:1:100");
  auto r = conn_->Eval(EnqueueScript(), keys_.base(),
                       EncodeEnqueue(2000, "i1", 5, {{"J2", "a.txt", {5, 2, 200}}}));
  ASSERT_TRUE(r.ok());
  auto e = DecodeEnqueue(*r, 1);
  ASSERT_TRUE(e.ok()) << e.error().what;
  EXPECT_EQ(e->enqueued, 0u);
  ASSERT_EQ(e->claimed.size(), 1u);
  EXPECT_EQ(e->claimed[0].job.id, "J1");
  EXPECT_EQ(e->claimed[0].job.ident, (FileIdentity{5, 2, 200}));
  EXPECT_EQ(redis_.CmdInt({"ZCARD", keys_.Active()}), 1);
  EXPECT_EQ(redis_.CmdInt({"EXISTS", keys_.Job("J2")}), 0);
}

// A NUL byte cannot travel in a packed reply: a job whose name, identity
// or processed identity holds one (edited by hand) is set aside as corrupt,
// and the jobs around it are claimed as usual.
TEST_F(StoreScriptsTest, ClaimSetsAsideFieldsWithANulByte) {
  Enqueue("J1", "a.txt", "1:5:7");
  const std::string nul_name("b\0c", 3);
  redis_.Cmd({"HSET", keys_.Job("J2"), "name", nul_name, "ident", "2:5:7", "state", "pending"});
  redis_.Cmd({"LPUSH", keys_.Pending(), "J2"});
  redis_.Cmd({"HSET", keys_.Job("J3"), "name", "c.txt", "ident", "3:5:7", "state", "pending",
              "phase", "disposing", "outcome", "done", "pident", std::string("3:5\0", 4)});
  redis_.Cmd({"LPUSH", keys_.Pending(), "J3"});
  redis_.Cmd({"LPUSH", keys_.Pending(), std::string("J") + '\0' + "4 d.txt"});
  Enqueue("J5", "e.txt", "5:5:7");
  auto r = conn_->Eval(ClaimScript(), keys_.base(), EncodeClaim(2000, "i1", 10));
  ASSERT_TRUE(r.ok());
  auto c = DecodeClaim(*r);
  ASSERT_TRUE(c.ok()) << c.error().what;
  ASSERT_EQ(c->size(), 5u);
  EXPECT_EQ((*c)[0].job.id, "J1");
  EXPECT_EQ((*c)[0].kind, ClaimedJob::Kind::kRun);
  EXPECT_EQ((*c)[1].kind, ClaimedJob::Kind::kCorrupt);
  EXPECT_EQ((*c)[2].kind, ClaimedJob::Kind::kCorrupt);
  EXPECT_EQ((*c)[3].kind, ClaimedJob::Kind::kCorrupt);
  EXPECT_EQ((*c)[3].job.id, "J?4");
  EXPECT_EQ((*c)[4].job.id, "J5");
  EXPECT_EQ(Field("J2", "state"), "failed");
  EXPECT_EQ(Field("J2", "error"), "corrupt job record: a NUL byte");
  EXPECT_EQ(Field("J3", "state"), "failed");
  EXPECT_EQ(redis_.Cmd({"HGET", keys_.Counts(), "corrupt"}), "3");
}

}  // namespace
}  // namespace dropq
