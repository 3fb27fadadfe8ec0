// ValidatePlaceholders, ExpandPlaceholders and SplitName (common/placeholders.h).
#include "common/placeholders.h"

#include <gtest/gtest.h>

#include <string>

namespace dropq {
namespace {

TEST(ValidatePlaceholdersTest, AcceptsKnownNamesAndEscapedBraces) {
  for (const char* arg : {"", "plain", "{path}", "{name}", "{stem}", "{ext}", "{dir}", "{queue}",
                          "{job_id}", "{attempt}", "/out/{stem}.png", "{dir}/{name}{ext}", "{{",
                          "}}", "{{path}}", "{{{name}}}", "a{{b}}c", "--opt={path}"}) {
    const Status s = ValidatePlaceholders(arg);
    EXPECT_TRUE(s.ok()) << arg << ": " << (s.ok() ? "" : s.error().what);
  }
}

TEST(ValidatePlaceholdersTest, UnknownPlaceholderIsNamed) {
  const Status s = ValidatePlaceholders("/out/{basename}.png");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::kConfig);
  EXPECT_NE(s.error().what.find("{basename}"), std::string::npos) << s.error().what;
}

TEST(ValidatePlaceholdersTest, RejectsBadBraces) {
  for (const char* arg :
       {"{", "{path", "a}b", "}", "{}", "{PATH}", "{ path }", "{path}}", "x{{y}"}) {
    const Status s = ValidatePlaceholders(arg);
    ASSERT_FALSE(s.ok()) << arg;
    EXPECT_EQ(s.error().code, Errc::kConfig);
  }
}

PlaceholderValues Values() {
  PlaceholderValues v;
  v.path = "/in/a b.tar.gz";
  v.name = "a b.tar.gz";
  v.stem = "a b.tar";
  v.ext = "gz";
  v.dir = "/in";
  v.queue = "uploads";
  v.job_id = "7f3a9c02";
  v.attempt = "2";
  return v;
}

TEST(ExpandPlaceholdersTest, ReplacesEveryName) {
  const PlaceholderValues v = Values();
  EXPECT_EQ(ExpandPlaceholders("{path}", v), "/in/a b.tar.gz");
  EXPECT_EQ(ExpandPlaceholders("{name}|{stem}|{ext}|{dir}|{queue}|{job_id}|{attempt}", v),
            "a b.tar.gz|a b.tar|gz|/in|uploads|7f3a9c02|2");
  EXPECT_EQ(ExpandPlaceholders("/out/{stem}.png", v), "/out/a b.tar.png");
  EXPECT_EQ(ExpandPlaceholders("{path}{path}", v), "/in/a b.tar.gz/in/a b.tar.gz");
  EXPECT_EQ(ExpandPlaceholders("plain", v), "plain");
  EXPECT_EQ(ExpandPlaceholders("", v), "");
}

TEST(ExpandPlaceholdersTest, DoubledBracesAreLiterals) {
  const PlaceholderValues v = Values();
  EXPECT_EQ(ExpandPlaceholders("{{", v), "{");
  EXPECT_EQ(ExpandPlaceholders("}}", v), "}");
  EXPECT_EQ(ExpandPlaceholders("{{path}}", v), "{path}");
  EXPECT_EQ(ExpandPlaceholders("{{{queue}}}", v), "{uploads}");
  EXPECT_EQ(ExpandPlaceholders("awk '{{print $1}}' {name}", v), "awk '{print $1}' a b.tar.gz");
}

TEST(ExpandPlaceholdersTest, ValuesAreNotExpandedAgain) {
  PlaceholderValues v = Values();
  v.name = "{path}";
  EXPECT_EQ(ExpandPlaceholders("{name}", v), "{path}");
}

TEST(SplitNameTest, SplitsAtTheLastDot) {
  struct Case {
    const char* name;
    const char* stem;
    const char* ext;
  };
  for (const Case& c :
       {Case{"a.tar.gz", "a.tar", "gz"}, Case{"README", "README", ""},
        Case{".bashrc", ".bashrc", ""}, Case{"a.png", "a", "png"}, Case{".a.b", ".a", "b"},
        Case{"a.", "a", ""}, Case{"", "", ""}, Case{"a b.c d", "a b", "c d"}}) {
    std::string_view stem = "unset";
    std::string_view ext = "unset";
    SplitName(c.name, &stem, &ext);
    EXPECT_EQ(stem, c.stem) << c.name;
    EXPECT_EQ(ext, c.ext) << c.name;
  }
}

}  // namespace
}  // namespace dropq
