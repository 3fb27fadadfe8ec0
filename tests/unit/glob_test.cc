// ValidGlob, DefaultExcludes and NameSelected.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace dropq {
namespace {

TEST(ValidGlobTest, AcceptsUsualPatterns) {
  for (const char* p : {"*",
                        "*.png",
                        "a?c",
                        "IMG_*.JPG",
                        "[abc]*",
                        "[a-z]*.txt",
                        "[!a]*",
                        "[^a]*",
                        "[]]x",
                        "[!]]x",
                        "[]a]",
                        "[[:alpha:]]*",
                        "[[:digit:][:upper:]]",
                        "[[.a.]]",
                        "[[=e=]]",
                        "\\[x",
                        "\\*",
                        "a]",
                        "x[\\]]y",
                        "[*?]",
                        "a[b]c[d]",
                        "a/b",
                        "/alice/*.pdf",
                        "**/*.pdf",
                        "alice/**",
                        "*/in/[0-9]*"}) {
    std::string why = "untouched";
    EXPECT_TRUE(ValidGlob(p, &why)) << p << ": " << why;
  }
}

TEST(ValidGlobTest, RejectsBrokenPatternsAndSaysWhy) {
  for (const char* p :
       {"", "/", "*/", "a//b", "//a", "a/", "a/[bc", "[abc", "x[", "[!", "[]", "[!]", "[^]",
        "[[:alpha:", "[[:alpha:]", "[[:nosuch:]]", "[[.a", "x\\", "[a\\]"}) {
    std::string why;
    EXPECT_FALSE(ValidGlob(p, &why)) << p;
    EXPECT_FALSE(why.empty()) << p;
  }
}

TEST(ValidGlobTest, WhyMayBeNull) {
  EXPECT_TRUE(ValidGlob("*.png", nullptr));
  EXPECT_FALSE(ValidGlob("[", nullptr));
}

TEST(ValidGlobTest, MessagesNameTheProblem) {
  std::string why;
  EXPECT_FALSE(ValidGlob("alice/", &why));
  EXPECT_NE(why.find("dir/**"), std::string::npos) << why;
  EXPECT_FALSE(ValidGlob("[abc", &why));
  EXPECT_NE(why.find("unclosed"), std::string::npos) << why;
  EXPECT_FALSE(ValidGlob("", &why));
  EXPECT_NE(why.find("empty"), std::string::npos) << why;
}

TEST(DefaultExcludesTest, AreTheDocumentedOnes) {
  EXPECT_EQ(DefaultExcludes(), (std::vector<std::string>{".*", "*.part", "*.tmp", "*.filepart",
                                                         "*.crdownload", "*~"}));
  for (const std::string& g : DefaultExcludes()) EXPECT_TRUE(ValidGlob(g, nullptr)) << g;
}

QueueConfig Queue(std::vector<std::string> include, std::vector<std::string> exclude) {
  QueueConfig q;
  q.include = std::move(include);
  q.exclude = std::move(exclude);
  return q;
}

TEST(NameSelectedTest, DefaultExcludesAlwaysApply) {
  const QueueConfig q = Queue({"*"}, {});
  EXPECT_TRUE(NameSelected(q, "a.png"));
  EXPECT_TRUE(NameSelected(q, "report 2024.pdf"));
  EXPECT_TRUE(NameSelected(q, "partial"));
  EXPECT_TRUE(NameSelected(q, "a.part.png"));
  for (const char* name :
       {".hidden", ".a.png", "a.part", "b.tmp", "c.filepart", "d.crdownload", "e~", ".", ".."}) {
    EXPECT_FALSE(NameSelected(q, name)) << name;
  }
  // Even an include that names them does not bring them back.
  EXPECT_FALSE(NameSelected(Queue({".hidden", "*.tmp"}, {}), ".hidden"));
  EXPECT_FALSE(NameSelected(Queue({".hidden", "*.tmp"}, {}), "b.tmp"));
}

TEST(NameSelectedTest, NeedsOneMatchingInclude) {
  const QueueConfig q = Queue({"*.png", "*.jpg"}, {});
  EXPECT_TRUE(NameSelected(q, "a.png"));
  EXPECT_TRUE(NameSelected(q, "b.jpg"));
  EXPECT_FALSE(NameSelected(q, "c.gif"));
  EXPECT_FALSE(NameSelected(q, "a.PNG"));  // fnmatch is case-sensitive
  EXPECT_FALSE(NameSelected(Queue({}, {}), "a.png"));
}

TEST(NameSelectedTest, UserExcludesApplyAfterIncludes) {
  const QueueConfig q = Queue({"*.png"}, {"thumb_*", "[0-9]*"});
  EXPECT_TRUE(NameSelected(q, "a.png"));
  EXPECT_FALSE(NameSelected(q, "thumb_a.png"));
  EXPECT_FALSE(NameSelected(q, "1.png"));
  EXPECT_TRUE(NameSelected(q, "x1.png"));
}

TEST(NameSelectedTest, BracketsAndEscapes) {
  EXPECT_TRUE(NameSelected(Queue({"[!a]*"}, {}), "b"));
  EXPECT_FALSE(NameSelected(Queue({"[!a]*"}, {}), "a"));
  EXPECT_TRUE(NameSelected(Queue({"[]]x"}, {}), "]x"));
  EXPECT_TRUE(NameSelected(Queue({"\\*"}, {}), "*"));
  EXPECT_FALSE(NameSelected(Queue({"\\*"}, {}), "a"));
  EXPECT_TRUE(NameSelected(Queue({"[[:digit:]]*"}, {}), "7a"));
  EXPECT_FALSE(NameSelected(Queue({"[[:digit:]]*"}, {}), "a7"));
}

}  // namespace
}  // namespace dropq

namespace dropq {
namespace {

TEST(NameSelectedTest, GlobsWithoutSlashMatchTheLastComponentOfARelativePath) {
  const QueueConfig q = Queue({"*.pdf"}, {"draft*"});
  EXPECT_TRUE(NameSelected(q, "alice/2026/scan 01.pdf"));
  EXPECT_FALSE(NameSelected(q, "alice/2026/draft.pdf"));
  EXPECT_FALSE(NameSelected(q, "alice/x.pdf/readme.txt"));
  EXPECT_FALSE(NameSelected(q, "alice/.hidden.pdf")) << "default excludes match the name";
  EXPECT_TRUE(NameSelected(q, ".dir/a.pdf")) << "dot-directories are DirSelected()'s business";
}

TEST(NameSelectedTest, GlobsWithSlashMatchTheRelativePath) {
  const QueueConfig q = Queue({"**/*.pdf", "top.txt"}, {"tmp/**", "*/private/*"});
  EXPECT_TRUE(NameSelected(q, "a.pdf"));
  EXPECT_TRUE(NameSelected(q, "x/y/a.pdf"));
  EXPECT_TRUE(NameSelected(q, "top.txt"));
  EXPECT_TRUE(NameSelected(q, "x/top.txt")) << "no '/': the name alone";
  EXPECT_FALSE(NameSelected(q, "tmp/a.pdf"));
  EXPECT_FALSE(NameSelected(q, "tmp/deep/er/a.pdf"));
  EXPECT_FALSE(NameSelected(q, "bob/private/a.pdf"));
  EXPECT_TRUE(NameSelected(q, "bob/x/private/a.pdf")) << "'*' is one component";
}

TEST(DirSelectedTest, DotDirectoriesAndExcludeDirs) {
  QueueConfig q;
  q.exclude_dirs = {"node_modules", "tmp*"};
  EXPECT_TRUE(DirSelected(q, "alice"));
  EXPECT_FALSE(DirSelected(q, ".git"));
  EXPECT_FALSE(DirSelected(q, ".dropq-processing"));
  EXPECT_FALSE(DirSelected(q, "node_modules"));
  EXPECT_FALSE(DirSelected(q, "tmp.123"));
  EXPECT_TRUE(DirSelected(q, "xtmp"));
}

}  // namespace
}  // namespace dropq
