// Paths below a root, resolved without following a symlink anywhere: the
// helpers every step of a recursive queue goes through.
#include "common/beneath.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "tests/support/temp_dir.h"

namespace dropq {
namespace {

TEST(BeneathTest, OpensDirectoriesBelowTheRoot) {
  test::TempDir tmp;
  const std::string root = tmp.Mkdir("root");
  std::filesystem::create_directories(root + "/a/b");
  test::WriteFile(root + "/a/b/f", "x");
  Result<UniqueFd> d = OpenDirBeneath(root, "a/b");
  ASSERT_TRUE(d.ok()) << d.error().what;
  struct stat st;
  EXPECT_EQ(::fstatat(d->get(), "f", &st, AT_SYMLINK_NOFOLLOW), 0);
  Result<UniqueFd> top = OpenDirBeneath(root, "");
  ASSERT_TRUE(top.ok());
  // Through ProcPath() the descriptor stands for the directory itself.
  EXPECT_EQ(::lstat(ProcPath(d->get(), "f").c_str(), &st), 0);
}

TEST(BeneathTest, NeverFollowsASymlinkInAnyComponent) {
  test::TempDir tmp;
  const std::string root = tmp.Mkdir("root");
  const std::string outside = tmp.Mkdir("outside");
  std::filesystem::create_directories(outside + "/b");
  std::filesystem::create_directories(root + "/a");
  ASSERT_EQ(::symlink(outside.c_str(), (root + "/link").c_str()), 0);
  ASSERT_EQ(::symlink((outside + "/b").c_str(), (root + "/a/b").c_str()), 0);
  for (const char* rel : {"link", "link/b", "a/b"}) {
    int err = 0;
    Result<UniqueFd> d = OpenDirBeneath(root, rel, &err);
    EXPECT_FALSE(d.ok()) << rel;
    EXPECT_EQ(err, ELOOP) << rel;
  }
  int err = 0;
  EXPECT_FALSE(OpenDirBeneath(root, "a/missing", &err).ok());
  EXPECT_EQ(err, ENOENT);
  // ".." leaves nothing: RESOLVE_BENEATH refuses it.
  EXPECT_FALSE(OpenDirBeneath(root, "a/../..", &err).ok());
}

TEST(BeneathTest, MakesParentsWithTheModesOfTheSameDirectoriesElsewhere) {
  test::TempDir tmp;
  const std::string inbox = tmp.Mkdir("inbox");
  const std::string done = tmp.Mkdir("done");
  std::filesystem::create_directories(inbox + "/alice/2026");
  ASSERT_EQ(::chmod((inbox + "/alice").c_str(), 0700), 0);
  ASSERT_EQ(::chmod((inbox + "/alice/2026").c_str(), 0750), 0);
  Result<UniqueFd> d = MakeDirsBeneath(done, "alice/2026/new", inbox);
  ASSERT_TRUE(d.ok()) << d.error().what;
  struct stat st;
  ASSERT_EQ(::stat((done + "/alice").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat((done + "/alice/2026").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  ASSERT_EQ(::stat((done + "/alice/2026/new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u) << "no such inbox directory: its parent's mode";
  // Existing directories are used as they are; a symlink is never followed.
  EXPECT_TRUE(MakeDirsBeneath(done, "alice/2026", inbox).ok());
  const std::string outside = tmp.Mkdir("outside");
  ASSERT_EQ(::symlink(outside.c_str(), (done + "/bob").c_str()), 0);
  EXPECT_FALSE(MakeDirsBeneath(done, "bob/x", inbox).ok());
  EXPECT_FALSE(std::filesystem::exists(outside + "/x")) << "made through the symlink";
}

TEST(BeneathTest, ResolveBeneathAndSplitParent) {
  EXPECT_EQ(SplitParent("a/b/c").first, "a/b");
  EXPECT_EQ(SplitParent("a/b/c").second, "c");
  EXPECT_EQ(SplitParent("c").first, "");
  EXPECT_EQ(SplitParent("c").second, "c");
  test::TempDir tmp;
  const std::string root = tmp.Mkdir("root");
  Result<BeneathPath> top = ResolveBeneath(root, "f");
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->path, root + "/f");
  EXPECT_FALSE(top->dir.valid());
  int err = 0;
  EXPECT_FALSE(ResolveBeneath(root, "x/f", false, "", &err).ok());
  EXPECT_EQ(err, ENOENT);
  Result<BeneathPath> made = ResolveBeneath(root, "x/y/f", true, "");
  ASSERT_TRUE(made.ok()) << made.error().what;
  test::WriteFile(made->path, "z");
  EXPECT_TRUE(std::filesystem::exists(root + "/x/y/f"));
}

}  // namespace
}  // namespace dropq
