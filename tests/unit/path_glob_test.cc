// PathGlobMatch: globs on relative paths, '*' within a component, '**' for
// any number of directories.
#include "common/path_glob.h"

#include <gtest/gtest.h>

namespace dropq {
namespace {

TEST(PathGlobTest, StarStaysWithinAComponent) {
  EXPECT_TRUE(PathGlobMatch("*/in/*.pdf", "alice/in/a.pdf"));
  EXPECT_FALSE(PathGlobMatch("*/in/*.pdf", "in/a.pdf"));
  EXPECT_FALSE(PathGlobMatch("*/in/*.pdf", "a/b/in/a.pdf"));
  EXPECT_FALSE(PathGlobMatch("*.pdf", "a/b.pdf")) << "a component pattern never crosses '/'";
  EXPECT_TRUE(PathGlobMatch("a/b", "a/b"));
  EXPECT_FALSE(PathGlobMatch("a/b", "a/b/c"));
  EXPECT_FALSE(PathGlobMatch("a/b/c", "a/b"));
}

TEST(PathGlobTest, DoubleStarIsAnyNumberOfDirectories) {
  EXPECT_TRUE(PathGlobMatch("**/*.pdf", "a.pdf"));
  EXPECT_TRUE(PathGlobMatch("**/*.pdf", "x/a.pdf"));
  EXPECT_TRUE(PathGlobMatch("**/*.pdf", "x/y/z/a.pdf"));
  EXPECT_FALSE(PathGlobMatch("**/*.pdf", "x/y/z/a.txt"));
  EXPECT_TRUE(PathGlobMatch("alice/**", "alice/a"));
  EXPECT_TRUE(PathGlobMatch("alice/**", "alice/b/c/d"));
  EXPECT_FALSE(PathGlobMatch("alice/**", "alice")) << "something below alice/, not alice";
  EXPECT_FALSE(PathGlobMatch("alice/**", "bob/alice/a"));
  EXPECT_TRUE(PathGlobMatch("**/tmp/**", "tmp/a"));
  EXPECT_TRUE(PathGlobMatch("**/tmp/**", "x/y/tmp/z/a"));
  EXPECT_FALSE(PathGlobMatch("**/tmp/**", "x/tmpa/b"));
  EXPECT_TRUE(PathGlobMatch("a/**/b", "a/b"));
  EXPECT_TRUE(PathGlobMatch("a/**/b", "a/x/y/b"));
  EXPECT_FALSE(PathGlobMatch("a/**/b", "a/x/y/c"));
  EXPECT_TRUE(PathGlobMatch("a/**/**/b", "a/x/b")) << "a run of ** is one";
}

TEST(PathGlobTest, ComponentsUseFnmatch) {
  EXPECT_TRUE(PathGlobMatch("[0-9][0-9][0-9][0-9]/*", "2026/scan.pdf"));
  EXPECT_FALSE(PathGlobMatch("[0-9][0-9][0-9][0-9]/*", "abcd/scan.pdf"));
  EXPECT_TRUE(PathGlobMatch("a\\*/x", "a*/x"));
  EXPECT_FALSE(PathGlobMatch("a\\*/x", "ab/x"));
  EXPECT_TRUE(PathGlobMatch("?/x", "a/x"));
}

TEST(PathGlobTest, OneLeadingSlashAnchorsAtTheWatchedDirectory) {
  EXPECT_TRUE(PathGlobMatch("/alice/*.pdf", "alice/a.pdf"));
  EXPECT_FALSE(PathGlobMatch("/alice/*.pdf", "x/alice/a.pdf"));
}

TEST(PathGlobTest, ManyDoubleStarsStayCheap) {
  // Backtracking is bounded by components: this must answer at once.
  std::string path;
  for (int i = 0; i < 60; ++i) path += "d/";
  path += "f";
  EXPECT_FALSE(PathGlobMatch("**/a/**/b/**/c/**/e", path));
  EXPECT_TRUE(PathGlobMatch("**/d/**/d/**/f", path));
}

}  // namespace
}  // namespace dropq
