// store/protocol.h: the encoders put every value where the scripts read it,
// and the decoders turn every reply that is not of the script's shape into
// an Error value instead of trusting it.
#include "store/protocol.h"

#include <gtest/gtest.h>

#include "store/job_fields.h"
#include "store/scripts.h"

namespace dropq {
namespace {

Reply Str(std::string s) {
  Reply r;
  r.type = Reply::Type::kString;
  r.str = std::move(s);
  return r;
}
Reply Int(int64_t v) {
  Reply r;
  r.type = Reply::Type::kInteger;
  r.integer = v;
  return r;
}
Reply Arr(std::vector<Reply> e) {
  Reply r;
  r.type = Reply::Type::kArray;
  r.elements = std::move(e);
  return r;
}
Reply Err(std::string s) {
  Reply r;
  r.type = Reply::Type::kError;
  r.str = std::move(s);
  return r;
}

// One job of a packed claim, as packed_jobs() in lib.lua writes it: 8
// fields, each ended by a NUL byte.
std::vector<std::string> ClaimTuple(std::string id, std::string name, std::string ident,
                                    std::string recorded = "", std::string pident = "") {
  return {std::move(id), std::move(name),     std::move(ident), "2", "1",
          "0",           std::move(recorded), std::move(pident)};
}

std::string Pack(const std::vector<std::vector<std::string>>& jobs) {
  std::string out;
  for (const auto& j : jobs) {
    for (const auto& f : j) {
      out += f;
      out.push_back('\0');
    }
  }
  return out;
}

Reply ClaimReply(const std::vector<std::vector<std::string>>& jobs) { return Str(Pack(jobs)); }

TEST(ProtocolTest, ClaimDecodesRunRedisposeCorruptAndInvalid) {
  auto r = DecodeClaim(ClaimReply(
      {ClaimTuple("J1", "a.txt", "1:5:7"), ClaimTuple("J2", "b.txt", "2:5:7", "failed", "2:6:8"),
       ClaimTuple("J3", "", "", "corrupt"), ClaimTuple("J4", "../etc/passwd", "4:5:7"),
       ClaimTuple("J5", "e.txt", "garbage")}));
  ASSERT_TRUE(r.ok()) << r.error().what;
  ASSERT_EQ(r->size(), 5u);
  const ClaimedJob& run = (*r)[0];
  EXPECT_EQ(run.kind, ClaimedJob::Kind::kRun);
  EXPECT_EQ(run.job.id, "J1");
  EXPECT_EQ(run.job.name, "a.txt");
  EXPECT_EQ(run.job.ident, (FileIdentity{1, 5, 7}));
  EXPECT_EQ(run.job.attempt, 2u);
  EXPECT_EQ(run.job.failures, 1u);
  EXPECT_EQ((*r)[1].kind, ClaimedJob::Kind::kRedispose);
  EXPECT_EQ((*r)[1].recorded, AckAs::kFailed);
  EXPECT_EQ((*r)[1].processed, (FileIdentity{2, 6, 8}));
  EXPECT_EQ((*r)[2].kind, ClaimedJob::Kind::kCorrupt);
  EXPECT_EQ((*r)[3].kind, ClaimedJob::Kind::kInvalid);
  EXPECT_NE((*r)[3].problem.find("name"), std::string::npos);
  // An identity edited into garbage is unknown (inode 0), not a reason to stop.
  EXPECT_EQ((*r)[4].kind, ClaimedJob::Kind::kRun);
  EXPECT_EQ((*r)[4].job.ident, FileIdentity{});
}

TEST(ProtocolTest, ClaimCountsOutOfRangeReadAsZero) {
  auto t = ClaimTuple("J1", "a.txt", "1:5:7");
  t[3] = "-4";
  t[4] = "99999999999";
  t[5] = "x";
  auto r = DecodeClaim(ClaimReply({t}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].job.attempt, 0u);
  EXPECT_EQ((*r)[0].job.failures, 0u);
  EXPECT_EQ((*r)[0].job.tempfails, 0u);
}

TEST(ProtocolTest, ClaimRepliesOfAnotherShapeAreErrors) {
  EXPECT_FALSE(DecodeClaim(Str("x")).ok());  // a field with no end
  EXPECT_FALSE(DecodeClaim(Err("PAUSED x")).ok());
  EXPECT_FALSE(DecodeClaim(Arr({})).ok());  // CLAIM's reply is one string
  EXPECT_TRUE(IsPausedReply(Err("PAUSED dropq:{q}:paused is set")));
  EXPECT_FALSE(IsPausedReply(Err("ERR x")));
  auto t = ClaimTuple("J1", "a.txt", "1:5:7");
  t.pop_back();
  EXPECT_FALSE(DecodeClaim(ClaimReply({t})).ok());  // 7 fields
  EXPECT_FALSE(DecodeClaim(Str(Pack({ClaimTuple("J1", "a.txt", "1:5:7")}) + "J2")).ok());
  EXPECT_FALSE(DecodeClaim(ClaimReply({ClaimTuple("J1", "a", "1:5:7", "weird")})).ok());
  EXPECT_FALSE(DecodeClaim(ClaimReply({ClaimTuple("a/b", "a", "1:5:7")})).ok());
  EXPECT_FALSE(DecodeClaim(ClaimReply({ClaimTuple(".spare-x", "a", "1:5:7")})).ok());
  EXPECT_TRUE(DecodeClaim(Str("")).ok());  // nothing pending
  EXPECT_TRUE(DecodeClaim(Str(""))->empty());
}

TEST(ProtocolTest, TakenFlagsMustMatchTheBatch) {
  auto ok = DecodeTaken(Str("10"), 2);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, (std::vector<bool>{true, false}));
  EXPECT_FALSE(DecodeTaken(Str("1"), 2).ok());
  EXPECT_FALSE(DecodeTaken(Str("12"), 2).ok());
  EXPECT_FALSE(DecodeTaken(Arr({Int(1), Int(0)}), 2).ok());
  EXPECT_FALSE(DecodeTaken(Int(1), 1).ok());
  EXPECT_FALSE(DecodeTaken(Err("WRONGTYPE x"), 2).ok());
  EXPECT_EQ(DecodeTaken(Err("WRONGTYPE x"), 2).error().what, "WRONGTYPE x");
  EXPECT_TRUE(DecodeTaken(Str(""), 0).ok());
}

// What a replica must have before the jobs run: only a reply that hands
// jobs over (RedisConn::EvalReplicated() waits for nothing else).
TEST(ProtocolTest, ClaimedAnySaysWhetherAReplyHandsJobsOver) {
  EXPECT_TRUE(ClaimedAny(ClaimReply({ClaimTuple("J1", "a.txt", "1:5:7")})));
  EXPECT_FALSE(ClaimedAny(ClaimReply({})));
  EXPECT_FALSE(ClaimedAny(Err("PAUSED x")));
  EXPECT_FALSE(ClaimedAny(Err("LIMITED rate 250")));
  EXPECT_TRUE(
      ClaimedAny(Arr({Str("1"), Int(0), ClaimReply({ClaimTuple("J1", "a.txt", "1:5:7")})})));
  EXPECT_FALSE(ClaimedAny(Arr({Str("1"), Int(0), Str("")})));
  EXPECT_TRUE(ClaimedAny(Int(3)));  // a shape it does not know: waited for
}

TEST(ProtocolTest, EnqueueDecodesFlagsPauseAndClaimedJobs) {
  auto e = DecodeEnqueue(Arr({Str("101"), Int(0),
                              ClaimReply({ClaimTuple("J1", "a.txt", "1:5:7"),
                                          ClaimTuple("J2", "b.txt", "2:5:7", "done", "2:5:7")})}),
                         3);
  ASSERT_TRUE(e.ok()) << e.error().what;
  EXPECT_EQ(e->enqueued, 2u);
  EXPECT_FALSE(e->paused);
  ASSERT_EQ(e->claimed.size(), 2u);
  EXPECT_EQ(e->claimed[0].job.name, "a.txt");
  EXPECT_EQ(e->claimed[1].kind, ClaimedJob::Kind::kRedispose);
  auto p = DecodeEnqueue(Arr({Str("0"), Int(1), Str("")}), 1);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->paused);
  EXPECT_TRUE(p->claimed.empty());
  EXPECT_EQ(p->enqueued, 0u);
  // Any other shape is an error, and so is a bad part inside it.
  EXPECT_FALSE(DecodeEnqueue(Arr({Str("1"), Int(0), Str("")}), 2).ok());
  EXPECT_FALSE(DecodeEnqueue(Arr({Str("1"), Int(0)}), 1).ok());
  EXPECT_FALSE(DecodeEnqueue(Arr({Str("1"), Str("0"), Str("")}), 1).ok());
  EXPECT_FALSE(DecodeEnqueue(Arr({Str("1"), Int(0), Str("J1")}), 1).ok());
  EXPECT_FALSE(DecodeEnqueue(Arr({Int(1), Int(0), Str("")}), 1).ok());
  EXPECT_EQ(DecodeEnqueue(Err("LAYOUT x"), 1).error().what, "LAYOUT x");
}

TEST(ProtocolTest, PromoteStatesIdsAndRetryPrepare) {
  auto p = DecodePromote(Arr({Int(3), Str("1234")}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->moved, 3);
  EXPECT_EQ(p->next_due_ms, 1234);
  EXPECT_EQ(DecodePromote(Arr({Int(0), Str("-1")}))->next_due_ms, -1);
  EXPECT_FALSE(DecodePromote(Arr({Int(0)})).ok());
  EXPECT_EQ(*DecodeStates(Arr({Str("done"), Str("")}), 2), (std::vector<std::string>{"done", ""}));
  EXPECT_FALSE(DecodeStates(Arr({Str("done")}), 2).ok());
  EXPECT_EQ(*DecodeIds(Arr({Str("J1")})), std::vector<std::string>{"J1"});
  EXPECT_FALSE(DecodeIds(Int(1)).ok());
  auto rp = DecodeRetryPrepare(Arr({Str("a.txt"), Str("/done/a.txt"), Str("1:5:7"), Str("")}));
  ASSERT_TRUE(rp.ok());
  EXPECT_EQ(rp->name, "a.txt");
  EXPECT_EQ(rp->disposed_to, "/done/a.txt");
  EXPECT_FALSE(DecodeRetryPrepare(Arr({Str("a.txt")})).ok());
  EXPECT_TRUE(DecodeUpgrade(Int(kLayout)).ok());
  EXPECT_FALSE(DecodeUpgrade(Int(kLayout + 1)).ok());
  EXPECT_FALSE(DecodeUpgrade(Str("2")).ok());
  EXPECT_TRUE(IsLayoutReply(Err("LAYOUT x:layout is \"3\"")));
  EXPECT_FALSE(IsLayoutReply(Err("WRONGTYPE x")));
  EXPECT_FALSE(DecodeUpgrade(Err("LAYOUT x")).ok());
}

TEST(ProtocolTest, ClaimHeldSaysWhyAndForHowLong) {
  Reply r;
  r.type = Reply::Type::kError;
  r.str = "THROTTLED 1500 1796592945810";
  auto h = DecodeClaimHeld(r);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->kind, ClaimHeld::Kind::kThrottled);
  EXPECT_EQ(h->ms, 1500);
  r.str = "LIMITED rate 321";
  h = DecodeClaimHeld(r);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->kind, ClaimHeld::Kind::kRate);
  EXPECT_EQ(h->ms, 321);
  r.str = "LIMITED active";
  h = DecodeClaimHeld(r);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->kind, ClaimHeld::Kind::kActive);
  r.str = "PAUSED x";
  EXPECT_FALSE(DecodeClaimHeld(r).has_value());
  r.type = Reply::Type::kString;
  r.str = "LIMITED rate 5";
  EXPECT_FALSE(DecodeClaimHeld(r).has_value());
}

TEST(ProtocolTest, EncodersPutEachValueWhereTheScriptReadsIt) {
  EXPECT_EQ(EncodeEnqueue(7, "i1", 4, {{"J1", "a b", FileIdentity{1, 5, 9}}}),
            (std::vector<std::string>{"7", "i1", "4", "J1", "a b", "1:5:9"}));
  EXPECT_EQ(EncodeEnqueue(7, "i1", -3, {})[2], "0");
  EXPECT_EQ(EncodeClaim(7, "i1", 16), (std::vector<std::string>{"7", "i1", "16", "0", "0", "0"}));
  EXPECT_EQ(EncodeClaim(7, "i1", 16, ClaimLimits{20, 1000, 5}),
            (std::vector<std::string>{"7", "i1", "16", "20", "1000", "5"}));
  EXPECT_EQ(EncodeThrottle(0, "why"), (std::vector<std::string>{"1", "why"}));
  EXPECT_EQ(EncodeStarted("i1", 7, {{"J1", 2}}), (std::vector<std::string>{"i1", "7", "J1", "2"}));
  EXPECT_EQ(EncodeRelease("i1", {{"J1", true}, {"J2", false}}),
            (std::vector<std::string>{"i1", "J1", "1", "J2", "0"}));
  EXPECT_EQ(
      EncodeAck("i1", 7, 100, -1, {{"J1", AckAs::kScheduled, "", {{"due", "9"}}}}),
      (std::vector<std::string>{"i1", "7", "100", "-1", "J1", "scheduled", "", "1", "due", "9"}));
  EXPECT_EQ(
      EncodeRecord("i1", {{"J1", {{"result", "ok"}}, AckAs::kDone, "", FileIdentity{1, 2, 3}}}),
      (std::vector<std::string>{"i1", "J1", "4", "result", "ok", "target", "(delete)", "outcome",
                                "done", "pident", "1:2:3"}));
  EXPECT_EQ(EncodeDisposeFailed("i1", {{"J1", "EACCES", 2}}),
            (std::vector<std::string>{"i1", "J1", "EACCES", "2"}));
  EXPECT_EQ(EncodeRequeue("i1", {"J1"}), (std::vector<std::string>{"i1", "J1"}));
}

TEST(ProtocolTest, OutcomeFieldsAreAllKnownAndKeepTheHistory) {
  Outcome o;
  o.job.attempt = 3;
  o.result = RunResult::kExit;
  o.exit_code = 2;
  o.stderr_tail = "err";
  o.error = "exit 2";
  const Fields f = OutcomeFields(o);
  bool history = false;
  for (const auto& [k, v] : f) {
    EXPECT_TRUE(jobfield::IsKnown(k)) << k;
    if (k == "attempt.3") {
      history = true;
      EXPECT_EQ(v, "result=exit exit=2 ms=0 error=exit 2");
    }
  }
  EXPECT_TRUE(history);
  EXPECT_TRUE(jobfield::IsKnown("stderr.12"));
  EXPECT_FALSE(jobfield::IsKnown("stderr.012"));
  EXPECT_FALSE(jobfield::IsKnown("attempt."));
  EXPECT_FALSE(jobfield::IsKnown("colour"));
}

TEST(ProtocolTest, ScriptErrorsAreMappedToTheirFiles) {
  const Script& s = ClaimScript();
  ASSERT_GT(s.lib_lines, 0);
  const std::string in_lib = "ERR user_script:2: boom script: x, on @user_script:2.";
  EXPECT_EQ(DescribeScriptError(s, in_lib),
            "ERR store/lua/lib.lua:2: boom script: x, on @store/lua/lib.lua:2.");
  const std::string own = "ERR user_script:" + std::to_string(s.lib_lines + 5) + ": boom";
  EXPECT_EQ(DescribeScriptError(s, own), "ERR store/lua/claim.lua:5: boom");
  EXPECT_EQ(DescribeScriptError(s, "WRONGTYPE x"), "WRONGTYPE x");
  EXPECT_EQ(DescribeScriptError(s, "user_script:"), "user_script:");
}

}  // namespace
}  // namespace dropq
