// DecodeJobRecord (store/job_record.h): a sound record decodes whole; every
// kind of hand-made damage becomes a FieldProblem naming the field, never a
// crash, an exception or a wild number.
#include "store/job_record.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace dropq {
namespace {

using std::string_literals::operator""s;
using Fields = std::vector<std::pair<std::string, std::string>>;

Fields Sound() {
  return {{"name", "a b.png"},
          {"size", "12"},
          {"ident", "77:12:1700000000123456789"},
          {"state", "failed"},
          {"enq", "1700000000000"},
          {"owner", "host-1"},
          {"claimed", "1700000000100"},
          {"started", "1700000000200"},
          {"finished", "1700000000300"},
          {"attempt", "2"},
          {"failures", "2"},
          {"tempfails", "0"},
          {"interrupted", "1"},
          {"result", "exit"},
          {"exit", "3"},
          {"ms", "12"},
          {"error", "exit status 3"},
          {"stderr", "boom\n"},
          {"disposed_to", "/srv/failed/a b.png"},
          {"attempt.1", "result=signal signal=9 ms=5"},
          {"attempt.2", "result=exit exit=3 ms=12"},
          {"stderr.2", "boom\n"},
          {"custom", "kept"}};
}

// The problems as "field: message" lines, for readable failures.
std::vector<std::string> Problems(const JobRecord& r) {
  std::vector<std::string> out;
  for (const FieldProblem& p : r.problems) out.push_back(p.field + ": " + p.message);
  return out;
}

JobRecord Decode(const Fields& f) {
  auto r = DecodeJobRecord(f);
  EXPECT_TRUE(r.ok()) << r.error().what;
  return r.ok() ? std::move(r).value() : JobRecord{};
}

// A sound record with one field replaced (or added).
JobRecord With(const std::string& field, const std::string& value) {
  Fields f = Sound();
  bool replaced = false;
  for (auto& kv : f) {
    if (kv.first == field) kv.second = value, replaced = true;
  }
  if (!replaced) f.emplace_back(field, value);
  return Decode(f);
}

TEST(JobRecordTest, DecodesASoundRecord) {
  const JobRecord r = Decode(Sound());
  EXPECT_TRUE(r.problems.empty()) << testing::PrintToString(Problems(r));
  EXPECT_TRUE(CheckJobRecord(r).ok());
  EXPECT_EQ(r.name, "a b.png");
  EXPECT_EQ(r.state, "failed");
  EXPECT_EQ(r.size, 12);
  ASSERT_TRUE(r.ident.has_value());
  EXPECT_EQ(r.ident->ino, 77u);
  EXPECT_EQ(r.ident->mtime_ns, 1700000000123456789);
  EXPECT_EQ(r.enq, 1700000000000);
  EXPECT_EQ(r.finished, 1700000000300);
  EXPECT_EQ(r.attempt, 2);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.interrupted, 1);
  EXPECT_FALSE(r.due.has_value());
  EXPECT_FALSE(r.signal.has_value());
  EXPECT_EQ(r.stderr_tail, "boom\n");
  EXPECT_EQ(r.disposed_to, "/srv/failed/a b.png");
  ASSERT_EQ(r.history.size(), 2u);
  EXPECT_EQ(r.history.at(1).line, "result=signal signal=9 ms=5");
  EXPECT_FALSE(r.history.at(1).stderr_tail.has_value());
  EXPECT_EQ(r.history.at(2).stderr_tail, "boom\n");
  // Every field kept, sorted, unknown ones included.
  EXPECT_EQ(r.fields.size(), Sound().size());
  EXPECT_TRUE(std::is_sorted(r.fields.begin(), r.fields.end()));
  ASSERT_NE(r.Find("custom"), nullptr);
  EXPECT_EQ(*r.Find("custom"), "kept");
  EXPECT_EQ(r.Find("nope"), nullptr);
}

TEST(JobRecordTest, AnEmptyHashIsNoRecord) {
  const auto r = DecodeJobRecord({});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kInvalid);
}

TEST(JobRecordTest, MissingRequiredFieldsAreNamed) {
  const JobRecord r = Decode({{"state", "pending"}});
  // size and enq are layout 1's: read when there, never required.
  EXPECT_EQ(Problems(r), (std::vector<std::string>{"name: missing (every job record has it)",
                                                   "ident: missing (every job record has it)"}));
  EXPECT_EQ(r.state, "pending");
  const Status s = CheckJobRecord(r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::kInvalid);
  EXPECT_EQ(s.error().what, "field `name`: missing (every job record has it)");
}

TEST(JobRecordTest, NonNumericNumbers) {
  for (const std::string& bad : {""s, "abc"s, "12x"s, " 12"s, "12 "s, "+12"s, "1.5"s, "1e3"s,
                                 "0x10"s, "-"s, "１２"s, "12\0"s}) {
    SCOPED_TRACE(testing::PrintToString(bad));
    const JobRecord r = With("size", bad);
    EXPECT_FALSE(r.size.has_value());
    ASSERT_EQ(r.problems.size(), 1u) << testing::PrintToString(Problems(r));
    EXPECT_EQ(r.problems[0].field, "size");
    ASSERT_NE(r.ProblemWith("size"), nullptr);
    EXPECT_NE(r.problems[0].message.find(bad.empty() ? "empty" : "is not a whole number"),
              std::string::npos)
        << r.problems[0].message;
    // The rest still decodes.
    EXPECT_EQ(r.enq, 1700000000000);
    EXPECT_EQ(*r.Find("size"), bad);
  }
}

TEST(JobRecordTest, HugeAndNegativeNumbersAreOutOfRange) {
  struct Case {
    std::string field, value, message;
  };
  for (const Case& c : std::vector<Case>{
           {"size", "99999999999999999999", "\"99999999999999999999\" is out of range"},
           {"size", "-99999999999999999999", "is out of range"},
           {"size", "-1", "-1 is out of range (want 0..9223372036854775807)"},
           {"enq", "-1", "-1 is out of range (want 0..253402300799999)"},
           {"enq", "-9223372036854775808", "is out of range"},
           {"enq", "253402300800000", "253402300800000 is out of range"},
           {"finished", "9223372036854775807", "is out of range"},
           {"attempt", "4294967296", "4294967296 is out of range (want 0..4294967295)"},
           {"exit", "256", "256 is out of range (want 0..255)"},
           {"exit", "-3", "-3 is out of range"},
           {"signal", "128", "128 is out of range (want 0..127)"},
       }) {
    SCOPED_TRACE(c.field + "=" + c.value);
    const JobRecord r = With(c.field, c.value);
    ASSERT_EQ(r.problems.size(), 1u) << testing::PrintToString(Problems(r));
    EXPECT_EQ(r.problems[0].field, c.field);
    EXPECT_NE(r.problems[0].message.find(c.message), std::string::npos) << r.problems[0].message;
  }
  // The edges themselves are fine.
  EXPECT_EQ(With("enq", "253402300799999").enq, 253402300799999);
  EXPECT_EQ(With("enq", "0").enq, 0);
  EXPECT_EQ(With("size", "9223372036854775807").size, INT64_MAX);
  EXPECT_EQ(With("attempt", "4294967295").attempt, 4294967295);
}

TEST(JobRecordTest, BadIdentNameAndState) {
  JobRecord r = With("ident", "1:2");
  EXPECT_FALSE(r.ident.has_value());
  ASSERT_NE(r.ProblemWith("ident"), nullptr);
  EXPECT_NE(r.ProblemWith("ident")->message.find("inode:size:mtime_ns"), std::string::npos);

  for (const std::string& bad : {""s, "."s, ".."s, "../etc/passwd"s, "/etc/passwd"s, "a//b"s, "a/"s,
                                 "a/./b"s, "a/../../b"s, "a/.."s, "a\0b"s}) {
    SCOPED_TRACE(testing::PrintToString(bad));
    r = With("name", bad);
    EXPECT_EQ(r.name, bad);  // kept for showing, but flagged
    EXPECT_NE(r.ProblemWith("name"), nullptr);
    EXPECT_FALSE(ValidJobName(bad));
  }
  EXPECT_TRUE(ValidJobName("\xff\xfe.bin"));
  EXPECT_TRUE(ValidJobName("...")) << "a dotted name is a file name";
  EXPECT_TRUE(ValidJobName("alice/2026/scan 01.pdf")) << "a path in a watched tree";
  EXPECT_TRUE(ValidJobName("a/.../b"));

  r = With("state", "exploded");
  EXPECT_EQ(r.state, "exploded");
  ASSERT_NE(r.ProblemWith("state"), nullptr);
  EXPECT_EQ(r.ProblemWith("state")->message, "unknown state \"exploded\"");
}

TEST(JobRecordTest, DuplicateFieldsKeepTheLastValue) {
  Fields f = Sound();
  f.emplace_back("size", "13");
  f.emplace_back("size", "14");
  const JobRecord r = Decode(f);
  EXPECT_EQ(r.size, 14);
  EXPECT_EQ(*r.Find("size"), "14");
  EXPECT_EQ(r.fields.size(), Sound().size());
  EXPECT_EQ(Problems(r), std::vector<std::string>{"size: given 3 times; the last value is kept"});
}

TEST(JobRecordTest, HistoryFieldsMustNameARun) {
  for (const std::string& bad :
       {"attempt."s, "attempt.0"s, "attempt.01"s, "attempt.-1"s, "attempt.x"s,
        "attempt.99999999999"s, "stderr.1.5"s, "stderr. 1"s}) {
    SCOPED_TRACE(bad);
    const JobRecord r = With(bad, "v");
    ASSERT_NE(r.ProblemWith(bad), nullptr) << testing::PrintToString(Problems(r));
    EXPECT_EQ(r.history.size(), 2u);
    EXPECT_EQ(*r.Find(bad), "v");
  }
  const JobRecord r = With("attempt.4294967295", "last");
  EXPECT_EQ(r.history.at(4294967295u).line, "last");
}

TEST(JobRecordTest, BinaryAndLongValuesAreQuotedShortAndEscaped) {
  const std::string binary = "\x1b[31m\n\0\xff"s + std::string(1 << 20, '7') + "x";
  const JobRecord r = With("enq", binary);
  ASSERT_EQ(r.problems.size(), 1u);
  const std::string& m = r.problems[0].message;
  EXPECT_LT(m.size(), 200u) << m;
  EXPECT_EQ(m.find_first_of("\x1b\n\0"s), std::string::npos) << m;
  EXPECT_NE(m.find("(" + std::to_string(binary.size()) + " bytes)"), std::string::npos) << m;
  EXPECT_EQ(*r.Find("enq"), binary);

  // Binary field names are kept and named exactly.
  const std::string odd = "\0\xff name"s;
  const JobRecord o = With(odd, "\0"s);
  EXPECT_TRUE(o.problems.empty());
  ASSERT_NE(o.Find(odd), nullptr);
  EXPECT_EQ(*o.Find(odd), "\0"s);

  EXPECT_TRUE(CheckJobRecord(With("exit\n", "1")).ok());  // unknown, however named: no problem
}

TEST(JobRecordTest, ParseRecordNumberUsesTheFieldsRange) {
  EXPECT_EQ(*ParseRecordNumber("enq", "1700000000000"), 1700000000000);
  auto r = ParseRecordNumber("enq", "-5");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kInvalid);
  EXPECT_EQ(r.error().what, "field `enq`: -5 is out of range (want 0..253402300799999)");
  r = ParseRecordNumber("enq", "soon");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().what, "field `enq`: \"soon\" is not a whole number");
  EXPECT_EQ(*ParseRecordNumber("whatever", "-5"), -5);  // unknown: any int64
  EXPECT_FALSE(ParseRecordNumber("whatever", "9223372036854775808").ok());
}

TEST(JobRecordTest, ManyFieldsStayLinear) {
  // 200,000 distinct unknown fields and 1,000 copies of one: decoded in one pass.
  Fields f = Sound();
  for (int i = 0; i < 200000; ++i) f.emplace_back("x" + std::to_string(i), "v");
  for (int i = 0; i < 1000; ++i) f.emplace_back("dup", std::to_string(i));
  const JobRecord r = Decode(f);
  EXPECT_EQ(r.fields.size(), Sound().size() + 200000 + 1);
  EXPECT_EQ(*r.Find("dup"), "999");
  EXPECT_EQ(Problems(r), std::vector<std::string>{"dup: given 1000 times; the last value is kept"});
}

}  // namespace
}  // namespace dropq
