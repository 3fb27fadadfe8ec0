// TextTemplate (placeholders and secret references parsed once) and the
// secrets' sources (config/secrets.h): env, file and systemd credentials.
#include "common/text_template.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "config/secrets.h"
#include "tests/support/temp_dir.h"

namespace dropq {
namespace {

constexpr TextTemplate::Syntax kBoth{.placeholders = true, .secrets = true};

using Kind = TextTemplate::Part::Kind;

TEST(TextTemplateTest, SplitsTextPlaceholdersAndSecrets) {
  auto t = TextTemplate::Parse("Bearer ${env:TOKEN} for {relpath} {{x}} $${HOME}", kBoth);
  ASSERT_TRUE(t.ok()) << t.error().what;
  const auto& p = t->parts();
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0], (TextTemplate::Part{Kind::kText, "Bearer ", ""}));
  EXPECT_EQ(p[1], (TextTemplate::Part{Kind::kSecret, "", "env:TOKEN"}));
  EXPECT_EQ(p[2], (TextTemplate::Part{Kind::kText, " for ", ""}));
  EXPECT_EQ(p[3], (TextTemplate::Part{Kind::kPlaceholder, "relpath", ""}));
  EXPECT_EQ(p[4], (TextTemplate::Part{Kind::kText, " {x} ${HOME}", ""}));
  EXPECT_TRUE(t->has_secret());
  EXPECT_TRUE(t->has_placeholder());
  EXPECT_EQ(t->Redacted(), "Bearer *** for {relpath} {x} ${HOME}");
}

TEST(TextTemplateTest, WithoutPlaceholdersBracesAreText) {
  auto t =
      TextTemplate::Parse("redis://:${file:/p}@h/{0}", {.placeholders = false, .secrets = true});
  ASSERT_TRUE(t.ok()) << t.error().what;
  EXPECT_FALSE(t->has_placeholder());
  EXPECT_EQ(t->Redacted(), "redis://:***@h/{0}");
  auto u = TextTemplate::Parse("$${name}", {.placeholders = true, .secrets = false});
  ASSERT_TRUE(u.ok());
  EXPECT_FALSE(u->has_secret());  // without secrets, "$$" is text
  EXPECT_EQ(u->Redacted(), "$${name}");
}

TEST(TextTemplateTest, Errors) {
  for (const char* bad :
       {"${env:}", "${nope:x}", "${env:X", "${TOKEN}", "{nope}", "{path", "a}b"}) {
    auto t = TextTemplate::Parse(bad, kBoth);
    EXPECT_FALSE(t.ok()) << bad;
  }
  EXPECT_NE(TextTemplate::Parse("${vault:x}", kBoth).error().what.find("${env:NAME}"),
            std::string::npos);
}

TEST(TextTemplateTest, ASecretValueIsNeverAPlaceholder) {
  auto t = TextTemplate::Parse("x={name}&k=${env:K}", kBoth);
  ASSERT_TRUE(t.ok());
  t->mutable_parts()[3].text = "{path}%/";  // what the secret holds
  PlaceholderValues v;
  v.name = "a b&c/d";
  v.path = "/secret/path";
  EXPECT_EQ(t->Expand(v, PercentEncode, PercentEncode), "x=a%20b%26c/d&k=%7Bpath%7D%25/");
  EXPECT_EQ(t->Expand(v, PercentEncode, Verbatim), "x=a%20b%26c/d&k={path}%/");
  EXPECT_EQ(t->Expand(v, PercentEncode, PercentEncodeAll), "x=a%20b%26c/d&k=%7Bpath%7D%25%2F");
}

TEST(TextTemplateTest, PercentEncodeLeavesNoLineBreak) {
  EXPECT_EQ(PercentEncode("a\r\nX-Injected: 1"), "a%0D%0AX-Injected%3A%201");
  EXPECT_EQ(PercentEncode(std::string("\0\xff", 2)), "%00%FF");
  EXPECT_EQ(PercentEncode("AZaz09-._~/"), "AZaz09-._~/");
}

class SecretsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("DROPQ_TEST_SECRET");
    unsetenv("CREDENTIALS_DIRECTORY");
  }
  test::TempDir tmp_;
};

TEST_F(SecretsTest, FromTheEnvironment) {
  setenv("DROPQ_TEST_SECRET", "s3cret", 1);
  EXPECT_EQ(*ReadSecret("env:DROPQ_TEST_SECRET"), "s3cret");
  setenv("DROPQ_TEST_SECRET", "", 1);
  EXPECT_EQ(ReadSecret("env:DROPQ_TEST_SECRET").error().what,
            "${env:DROPQ_TEST_SECRET}: environment variable DROPQ_TEST_SECRET is empty");
  unsetenv("DROPQ_TEST_SECRET");
  EXPECT_EQ(ReadSecret("env:DROPQ_TEST_SECRET").error().what,
            "${env:DROPQ_TEST_SECRET}: environment variable DROPQ_TEST_SECRET is not set");
}

TEST_F(SecretsTest, FromAFileWithoutItsTrailingNewline) {
  test::WriteFile(tmp_.Sub("token"), "abc\n");
  EXPECT_EQ(*ReadSecret("file:" + tmp_.Sub("token")), "abc");
  test::WriteFile(tmp_.Sub("token"), "a\nb\r\n");
  EXPECT_EQ(*ReadSecret("file:" + tmp_.Sub("token")), "a\nb");
  test::WriteFile(tmp_.Sub("token"), "\n");
  EXPECT_NE(ReadSecret("file:" + tmp_.Sub("token")).error().what.find("is empty"),
            std::string::npos);
  EXPECT_NE(ReadSecret("file:" + tmp_.Sub("none")).error().what.find("does not exist"),
            std::string::npos);
  EXPECT_NE(ReadSecret("file:relative").error().what.find("absolute"), std::string::npos);
}

TEST_F(SecretsTest, FromASystemdCredential) {
  setenv("CREDENTIALS_DIRECTORY", tmp_.path().c_str(), 1);
  test::WriteFile(tmp_.Sub("api"), "tok\n");
  EXPECT_EQ(*ReadSecret("cred:api"), "tok");
  EXPECT_EQ(
      ReadSecret("cred:missing").error().what,
      "${cred:missing}: credential missing not found (looked in " + tmp_.Sub("missing") + ")");
  EXPECT_FALSE(ReadSecret("cred:../api").ok());
  unsetenv("CREDENTIALS_DIRECTORY");
  // Outside systemd: the credstores, as systemd looks.
  EXPECT_EQ(ReadSecret("cred:dropq-test-none").error().what,
            "${cred:dropq-test-none}: credential dropq-test-none not found (looked in "
            "/etc/credstore/dropq-test-none, /run/credstore/dropq-test-none)");
}

TEST_F(SecretsTest, ResolveFillsEveryPartAndNamesTheVariables) {
  setenv("DROPQ_TEST_SECRET", "v", 1);
  test::WriteFile(tmp_.Sub("f"), "w");
  auto t = TextTemplate::Parse("${env:DROPQ_TEST_SECRET}-${file:" + tmp_.Sub("f") + "}", kBoth);
  ASSERT_TRUE(t.ok());
  std::vector<std::string> names;
  ASSERT_TRUE(ResolveSecrets(&*t, &names).ok());
  EXPECT_EQ(t->Expand({}, Verbatim, Verbatim), "v-w");
  EXPECT_EQ(names, std::vector<std::string>{"DROPQ_TEST_SECRET"});
  EXPECT_EQ(t->Redacted(), "***-***");
}

}  // namespace
}  // namespace dropq
