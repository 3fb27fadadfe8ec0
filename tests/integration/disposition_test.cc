// Disposition on real files: keep, delete, move, the fallback name on a
// collision (never an overwrite), a vanished source, the link(2) fallback for
// filesystems without RENAME_NOREPLACE, and the cross-filesystem copy path
// (called directly: a test cannot easily mount a second filesystem).
#include "workers/disposition.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.h"

namespace dropq {
namespace {

using test::Exists;
using test::ReadFile;
using test::TempDir;
using test::WriteFile;

std::set<std::string> ListDir(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.insert(n);
  }
  ::closedir(d);
  return names;
}

class DispositionTest : public ::testing::Test {
 protected:
  DispositionTest() : in_(tmp_.Mkdir("in")), done_(tmp_.Mkdir("done")) {
    move_.kind = Disposition::Kind::kMoveTo;
    move_.dir = done_;
  }

  // Creates in/<name> holding `content`; returns its path.
  std::string Src(const std::string& name, const std::string& content) {
    WriteFile(in_ + "/" + name, content);
    return in_ + "/" + name;
  }

  TempDir tmp_;
  const std::string in_;
  const std::string done_;
  Disposition move_;
};

TEST_F(DispositionTest, TargetNames) {
  EXPECT_EQ(MoveTarget(move_, "a.png"), done_ + "/a.png");
  EXPECT_EQ(MoveFallbackTarget(move_, "a.png", "J1"), done_ + "/a.J1.png");
  EXPECT_EQ(MoveFallbackTarget(move_, "a.tar.gz", "J1"), done_ + "/a.tar.J1.gz");
  EXPECT_EQ(MoveFallbackTarget(move_, "README", "J1"), done_ + "/README.J1");
  EXPECT_EQ(MoveFallbackTarget(move_, ".bashrc", "J1"), done_ + "/.bashrc.J1");
}

TEST_F(DispositionTest, KeepReturnsTheSource) {
  const std::string src = Src("a.txt", "A");
  Disposition keep;
  auto r = Dispose(keep, src, "a.txt", "J1");
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, src);
  EXPECT_EQ(ReadFile(src), "A");
}

TEST_F(DispositionTest, KeepOfVanishedSource) {
  Disposition keep;
  auto r = Dispose(keep, in_ + "/gone", "gone", "J1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kVanished);
}

TEST_F(DispositionTest, DeleteUnlinks) {
  const std::string src = Src("a.txt", "A");
  Disposition del;
  del.kind = Disposition::Kind::kDelete;
  auto r = Dispose(del, src, "a.txt", "J1");
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, "");
  EXPECT_FALSE(Exists(src));

  auto again = Dispose(del, src, "a.txt", "J1");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::kVanished);
}

TEST_F(DispositionTest, MoveToTarget) {
  const std::string src = Src("a b.txt", "A");
  auto r = Dispose(move_, src, "a b.txt", "J1");
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, done_ + "/a b.txt");
  EXPECT_EQ(ReadFile(*r), "A");
  EXPECT_FALSE(Exists(src));
}

TEST_F(DispositionTest, CollisionUsesFallbackAndNeverOverwrites) {
  WriteFile(done_ + "/a.txt", "OLD");
  WriteFile(done_ + "/README", "OLD README");
  const std::string src = Src("a.txt", "NEW");
  const std::string readme = Src("README", "NEW README");

  auto r = Dispose(move_, src, "a.txt", "J1");
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, done_ + "/a.J1.txt");
  EXPECT_EQ(ReadFile(*r), "NEW");
  EXPECT_EQ(ReadFile(done_ + "/a.txt"), "OLD");
  EXPECT_FALSE(Exists(src));

  auto r2 = Dispose(move_, readme, "README", "J2");
  ASSERT_TRUE(r2.ok()) << r2.error().what;
  EXPECT_EQ(*r2, done_ + "/README.J2");
  EXPECT_EQ(ReadFile(done_ + "/README"), "OLD README");
}

TEST_F(DispositionTest, BothNamesTakenIsAnErrorAndTouchesNothing) {
  WriteFile(done_ + "/a.txt", "OLD");
  WriteFile(done_ + "/a.J1.txt", "OLDER");
  const std::string src = Src("a.txt", "NEW");
  auto r = Dispose(move_, src, "a.txt", "J1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kIo);
  EXPECT_EQ(ReadFile(src), "NEW");
  EXPECT_EQ(ReadFile(done_ + "/a.txt"), "OLD");
  EXPECT_EQ(ReadFile(done_ + "/a.J1.txt"), "OLDER");
}

TEST_F(DispositionTest, MoveOfVanishedSource) {
  auto r = Dispose(move_, in_ + "/gone.txt", "gone.txt", "J1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kVanished);
  EXPECT_TRUE(ListDir(done_).empty());
}

TEST_F(DispositionTest, MissingTargetDirectoryIsAnIoErrorNotVanished) {
  const std::string src = Src("a.txt", "A");
  Disposition d = move_;
  d.dir = tmp_.Sub("no-such-dir");
  auto r = Dispose(d, src, "a.txt", "J1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kIo);
  EXPECT_EQ(ReadFile(src), "A");
}

TEST_F(DispositionTest, ConcurrentMovesOfTheSameNameNeverOverwrite) {
  constexpr int kThreads = 8;
  std::vector<std::string> srcs;
  for (int t = 0; t < kThreads; ++t) {
    const std::string dir = tmp_.Mkdir("in" + std::to_string(t));
    WriteFile(dir + "/same.txt", "from " + std::to_string(t));
    srcs.push_back(dir + "/same.txt");
  }
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto r = Dispose(move_, srcs[t], "same.txt", "J" + std::to_string(t));
      if (r.ok() && ReadFile(*r) == "from " + std::to_string(t)) ++ok;
    });
  }
  for (std::thread& t : threads) t.join();
  // One gets the name, one more per job id gets its fallback; each file is
  // where Dispose() said, with its own content.
  EXPECT_EQ(ok.load(), kThreads);
  EXPECT_EQ(ListDir(done_).size(), static_cast<std::size_t>(kThreads));
}

TEST_F(DispositionTest, LinkFallbackNeverOverwrites) {
  const std::string src = Src("a.txt", "A");
  EXPECT_EQ(RenameNoReplace(src, done_ + "/a.txt", /*force_link=*/true), 0);
  EXPECT_FALSE(Exists(src));
  EXPECT_EQ(ReadFile(done_ + "/a.txt"), "A");

  const std::string src2 = Src("a.txt", "B");
  EXPECT_EQ(RenameNoReplace(src2, done_ + "/a.txt", /*force_link=*/true), EEXIST);
  EXPECT_EQ(ReadFile(src2), "B");
  EXPECT_EQ(ReadFile(done_ + "/a.txt"), "A");
  EXPECT_EQ(RenameNoReplace(src2, done_ + "/a.txt"), EEXIST);
  EXPECT_EQ(RenameNoReplace(in_ + "/gone", done_ + "/b.txt", true), ENOENT);
}

TEST_F(DispositionTest, CopyIntoPlaceCopiesAndRemovesSource) {
  std::string content;
  for (int i = 0; i < 300000; ++i) content.push_back(static_cast<char>(i * 7));
  const std::string src = Src("big.bin", content);
  ASSERT_EQ(::chmod(src.c_str(), 0640), 0);
  const struct timespec times[2] = {{1000000000, 5}, {1200000000, 123456789}};
  ASSERT_EQ(::utimensat(AT_FDCWD, src.c_str(), times, 0), 0);

  auto r = CopyIntoPlace(move_, src, "big.bin", "J1");
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, done_ + "/big.bin");
  EXPECT_EQ(ReadFile(*r), content);
  EXPECT_FALSE(Exists(src));
  EXPECT_EQ(ListDir(done_), std::set<std::string>{"big.bin"});  // no temporary left
  struct stat st;
  ASSERT_EQ(::stat(r->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
}

TEST_F(DispositionTest, CopyIntoPlaceCollisionUsesFallback) {
  WriteFile(done_ + "/a.txt", "OLD");
  WriteFile(done_ + "/.dropq-tmp-J1", "leftover of a crashed attempt");
  const std::string src = Src("a.txt", "NEW");
  auto r = CopyIntoPlace(move_, src, "a.txt", "J1");
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, done_ + "/a.J1.txt");
  EXPECT_EQ(ReadFile(*r), "NEW");
  EXPECT_EQ(ReadFile(done_ + "/a.txt"), "OLD");
  EXPECT_FALSE(Exists(src));
  EXPECT_EQ(ListDir(done_), (std::set<std::string>{"a.txt", "a.J1.txt"}));
}

TEST_F(DispositionTest, CopyIntoPlaceBothTakenKeepsSourceAndLeavesNoTemporary) {
  WriteFile(done_ + "/a.txt", "OLD");
  WriteFile(done_ + "/a.J1.txt", "OLDER");
  const std::string src = Src("a.txt", "NEW");
  auto r = CopyIntoPlace(move_, src, "a.txt", "J1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kIo);
  EXPECT_EQ(ReadFile(src), "NEW");
  EXPECT_EQ(ReadFile(done_ + "/a.txt"), "OLD");
  EXPECT_EQ(ReadFile(done_ + "/a.J1.txt"), "OLDER");
  EXPECT_EQ(ListDir(done_), (std::set<std::string>{"a.txt", "a.J1.txt"}));
}

TEST_F(DispositionTest, CopyIntoPlaceOfVanishedSource) {
  auto r = CopyIntoPlace(move_, in_ + "/gone", "gone", "J1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kVanished);
  EXPECT_TRUE(ListDir(done_).empty());
}

TEST_F(DispositionTest, CopyIntoPlaceRefusesNonRegularFiles) {
  ASSERT_EQ(::mkfifo((in_ + "/pipe").c_str(), 0644), 0);
  auto r = CopyIntoPlace(move_, in_ + "/pipe", "pipe", "J1");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Exists(in_ + "/pipe"));
  EXPECT_TRUE(ListDir(done_).empty());
}

// ---------------------------------------------------------------- options: ident, keep_dir

struct stat LstatOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

DisposeOptions IdentOf(const std::string& path) {
  DisposeOptions opt;
  opt.ident = FileIdentity::FromStat(LstatOf(path));
  return opt;
}

TEST_F(DispositionTest, KeepWithKeepDirMovesTheFileBack) {
  const std::string proc = tmp_.Mkdir("proc/J1");
  WriteFile(proc + "/a.txt", "A");
  DisposeOptions opt = IdentOf(proc + "/a.txt");
  opt.keep_dir = in_;
  Disposition keep;
  auto r = Dispose(keep, proc + "/a.txt", "a.txt", "J1", opt);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, in_ + "/a.txt");
  EXPECT_EQ(ReadFile(in_ + "/a.txt"), "A");
  EXPECT_EQ(LstatOf(in_ + "/a.txt").st_ino, opt.ident.ino);
  EXPECT_FALSE(Exists(proc + "/a.txt"));
}

TEST_F(DispositionTest, KeepWithKeepDirUsesTheFallbackNameIfTaken) {
  const std::string proc = tmp_.Mkdir("proc/J1");
  WriteFile(proc + "/a.txt", "OURS");
  WriteFile(in_ + "/a.txt", "NEWER");
  DisposeOptions opt = IdentOf(proc + "/a.txt");
  opt.keep_dir = in_;
  Disposition keep;
  auto r = Dispose(keep, proc + "/a.txt", "a.txt", "J1", opt);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, in_ + "/a.J1.txt");
  EXPECT_EQ(ReadFile(in_ + "/a.J1.txt"), "OURS");
  EXPECT_EQ(ReadFile(in_ + "/a.txt"), "NEWER");
  EXPECT_FALSE(Exists(proc + "/a.txt"));
}

// Where the file was processed in place, another file may have taken its
// name during the run: that one has a job of its own and stays.
TEST_F(DispositionTest, IdentMismatchIsVanishedAndTouchesNothing) {
  const std::string src = Src("a.txt", "OTHER");
  DisposeOptions opt = IdentOf(src);
  opt.ident.ino += 1;
  for (const Disposition& d : {move_, Disposition{}}) {
    auto r = Dispose(d, src, "a.txt", "J1", opt);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::kVanished);
    EXPECT_EQ(ReadFile(src), "OTHER");
  }
  Disposition del;
  del.kind = Disposition::Kind::kDelete;
  auto r = Dispose(del, src, "a.txt", "J1", opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kVanished);
  EXPECT_EQ(ReadFile(src), "OTHER");
  EXPECT_TRUE(ListDir(done_).empty());
}

// ---------------------------------------------------------------- recovering

// A crash after the link(2) of the link fallback and before its unlink(2):
// the file is under both names. Recovery drops the source only.
TEST_F(DispositionTest, RecoveringWithTheFileLinkedAtTheTarget) {
  const std::string src = Src("a.txt", "A");
  ASSERT_EQ(::link(src.c_str(), (done_ + "/a.txt").c_str()), 0);
  DisposeOptions opt = IdentOf(src);
  opt.recovering = true;
  auto r = Dispose(move_, src, "a.txt", "J1", opt);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, done_ + "/a.txt");
  EXPECT_FALSE(Exists(src));
  EXPECT_EQ(ReadFile(done_ + "/a.txt"), "A");
  EXPECT_EQ(LstatOf(done_ + "/a.txt").st_nlink, 1u);
  EXPECT_EQ(ListDir(done_), std::set<std::string>{"a.txt"});  // no fallback copy
}

TEST_F(DispositionTest, RecoveringWithTheFileLinkedAtTheFallbackTarget) {
  WriteFile(done_ + "/a.txt", "OLD");
  const std::string src = Src("a.txt", "A");
  ASSERT_EQ(::link(src.c_str(), (done_ + "/a.J1.txt").c_str()), 0);
  DisposeOptions opt = IdentOf(src);
  opt.recovering = true;
  auto r = Dispose(move_, src, "a.txt", "J1", opt);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, done_ + "/a.J1.txt");
  EXPECT_FALSE(Exists(src));
  EXPECT_EQ(ReadFile(done_ + "/a.txt"), "OLD");
  EXPECT_EQ(ListDir(done_), (std::set<std::string>{"a.txt", "a.J1.txt"}));
}

// The move finished before the crash: the source is gone, the target is the file.
TEST_F(DispositionTest, RecoveringAfterAFinishedMove) {
  const std::string src = Src("a.txt", "A");
  DisposeOptions opt = IdentOf(src);
  opt.recovering = true;
  ASSERT_EQ(::rename(src.c_str(), (done_ + "/a.txt").c_str()), 0);
  auto r = Dispose(move_, src, "a.txt", "J1", opt);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, done_ + "/a.txt");
  EXPECT_EQ(ReadFile(done_ + "/a.txt"), "A");
  EXPECT_EQ(ListDir(done_), std::set<std::string>{"a.txt"});

  // Without `recovering` the same call reports the source as vanished.
  opt.recovering = false;
  auto plain = Dispose(move_, src, "a.txt", "J1", opt);
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.error().code, Errc::kVanished);
}

// A cross-filesystem copy that finished before the crash: another inode, the
// same size and mtime (CopyIntoPlace keeps the times).
TEST_F(DispositionTest, RecoveringAfterAFinishedCopy) {
  const std::string src = Src("a.txt", "A copy");
  const struct timespec times[2] = {{1000000000, 5}, {1200000000, 123456789}};
  ASSERT_EQ(::utimensat(AT_FDCWD, src.c_str(), times, 0), 0);
  DisposeOptions opt = IdentOf(src);
  opt.recovering = true;
  WriteFile(done_ + "/a.txt", "A copy");
  ASSERT_EQ(::utimensat(AT_FDCWD, (done_ + "/a.txt").c_str(), times, 0), 0);
  ASSERT_NE(LstatOf(done_ + "/a.txt").st_ino, opt.ident.ino);
  ASSERT_EQ(::unlink(src.c_str()), 0);

  auto r = Dispose(move_, src, "a.txt", "J1", opt);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, done_ + "/a.txt");
  EXPECT_EQ(ListDir(done_), std::set<std::string>{"a.txt"});
}

TEST_F(DispositionTest, RecoveringWithNothingAtTheTargetIsVanished) {
  DisposeOptions opt;
  opt.ident = FileIdentity{12345, 1, 1};
  opt.recovering = true;
  WriteFile(done_ + "/a.txt", "another file, another size");
  auto r = Dispose(move_, in_ + "/a.txt", "a.txt", "J1", opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kVanished);
  EXPECT_EQ(ReadFile(done_ + "/a.txt"), "another file, another size");
}

TEST_F(DispositionTest, RecoveringADeleteWhoseSourceIsGone) {
  Disposition del;
  del.kind = Disposition::Kind::kDelete;
  DisposeOptions opt;
  opt.ident = FileIdentity{12345, 1, 1};
  opt.recovering = true;
  auto r = Dispose(del, in_ + "/a.txt", "a.txt", "J1", opt);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, "");

  // A source still there is deleted as usual.
  const std::string src = Src("b.txt", "B");
  DisposeOptions opt2 = IdentOf(src);
  opt2.recovering = true;
  auto r2 = Dispose(del, src, "b.txt", "J2", opt2);
  ASSERT_TRUE(r2.ok()) << r2.error().what;
  EXPECT_EQ(*r2, "");
  EXPECT_FALSE(Exists(src));
}

// On the same filesystem only the very inode counts: a different file that
// happens to have the name, the size and the mtime is a collision.
TEST_F(DispositionTest, RecoveringDoesNotTakeADifferentFileOfTheSameName) {
  const std::string src = Src("a.txt", "SAME SIZE");
  WriteFile(done_ + "/a.txt", "OTHER ONE");
  const struct timespec times[2] = {{1000000000, 5}, {1200000000, 123456789}};
  ASSERT_EQ(::utimensat(AT_FDCWD, src.c_str(), times, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, (done_ + "/a.txt").c_str(), times, 0), 0);
  DisposeOptions opt = IdentOf(src);
  opt.recovering = true;

  auto r = Dispose(move_, src, "a.txt", "J1", opt);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, done_ + "/a.J1.txt");
  EXPECT_EQ(ReadFile(done_ + "/a.J1.txt"), "SAME SIZE");
  EXPECT_EQ(LstatOf(done_ + "/a.J1.txt").st_ino, opt.ident.ino);
  EXPECT_EQ(ReadFile(done_ + "/a.txt"), "OTHER ONE");
  EXPECT_FALSE(Exists(src));
}

TEST_F(DispositionTest, RecoveringAKeepThatWentBack) {
  const std::string proc = tmp_.Mkdir("proc/J1");
  WriteFile(proc + "/a.txt", "A");
  DisposeOptions opt = IdentOf(proc + "/a.txt");
  opt.keep_dir = in_;
  opt.recovering = true;
  Disposition keep;

  // Linked back, not yet unlinked from the processing area.
  ASSERT_EQ(::link((proc + "/a.txt").c_str(), (in_ + "/a.txt").c_str()), 0);
  auto r = Dispose(keep, proc + "/a.txt", "a.txt", "J1", opt);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, in_ + "/a.txt");
  EXPECT_FALSE(Exists(proc + "/a.txt"));
  EXPECT_EQ(ListDir(in_), std::set<std::string>{"a.txt"});

  // And once more, the source now gone.
  auto again = Dispose(keep, proc + "/a.txt", "a.txt", "J1", opt);
  ASSERT_TRUE(again.ok()) << again.error().what;
  EXPECT_EQ(*again, in_ + "/a.txt");
  EXPECT_EQ(ReadFile(in_ + "/a.txt"), "A");
}

// A second filesystem, where the machine has one at hand (/dev/shm is
// usually a tmpfs): a directory in it, removed with the fixture.
class OtherFsDir {
 public:
  OtherFsDir() {
    std::string tmpl = "/dev/shm/dropq-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~OtherFsDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  OtherFsDir(const OtherFsDir&) = delete;
  OtherFsDir& operator=(const OtherFsDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Across filesystems a finished copy has another inode: recovery knows it by
// its size and mtime, and drops the source still left behind. A target that
// differs is a collision, handled by the ordinary copy.
TEST_F(DispositionTest, RecoveringAcrossFilesystemsKnowsTheCopy) {
  OtherFsDir other;
  if (other.path().empty() || LstatOf(other.path()).st_dev == LstatOf(in_).st_dev) {
    GTEST_SKIP() << "no second filesystem at /dev/shm";
  }
  Disposition d = move_;
  d.dir = other.path();
  const struct timespec times[2] = {{1000000000, 5}, {1200000000, 123456789}};

  const std::string src = Src("a.txt", "A copy");
  ASSERT_EQ(::utimensat(AT_FDCWD, src.c_str(), times, 0), 0);
  WriteFile(d.dir + "/a.txt", "A copy");
  ASSERT_EQ(::utimensat(AT_FDCWD, (d.dir + "/a.txt").c_str(), times, 0), 0);
  DisposeOptions opt = IdentOf(src);
  opt.recovering = true;
  auto r = Dispose(d, src, "a.txt", "J1", opt);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, d.dir + "/a.txt");
  EXPECT_FALSE(Exists(src));
  EXPECT_EQ(ListDir(d.dir), std::set<std::string>{"a.txt"});

  // Another file under the name (another mtime): copied to the fallback name.
  const std::string src2 = Src("b.txt", "B");
  WriteFile(d.dir + "/b.txt", "X");
  // Same size as the source: only the mtime tells them apart, and two files
  // written within one clock tick can share it. Make it differ for certain.
  ASSERT_EQ(::utimensat(AT_FDCWD, (d.dir + "/b.txt").c_str(), times, 0), 0);
  DisposeOptions opt2 = IdentOf(src2);
  opt2.recovering = true;
  auto r2 = Dispose(d, src2, "b.txt", "J2", opt2);
  ASSERT_TRUE(r2.ok()) << r2.error().what;
  EXPECT_EQ(*r2, d.dir + "/b.J2.txt");
  EXPECT_EQ(ReadFile(d.dir + "/b.J2.txt"), "B");
  EXPECT_EQ(ReadFile(d.dir + "/b.txt"), "X");
  EXPECT_FALSE(Exists(src2));
}

}  // namespace
}  // namespace dropq

namespace dropq {
namespace {

TEST(MoveFallbackTargetTest, ALongNameIsShortenedToFitTheJobId) {
  Disposition d;
  d.kind = Disposition::Kind::kMoveTo;
  d.dir = "/d";
  const std::string id = "01M86XMC6NPAX63NN9WZVPE9JK";
  const std::string name = std::string(240, 'n') + ".txt";
  const std::string t = MoveFallbackTarget(d, name, id);
  const std::string last = t.substr(3);
  EXPECT_EQ(last.size(), static_cast<size_t>(NAME_MAX));
  EXPECT_EQ(last.substr(last.size() - id.size() - 5), "." + id + ".txt");
  // Multi-byte characters are not cut in half.
  std::string wide;
  for (int i = 0; i < 120; ++i) wide += "\xc3\xa9";  // e-acute, 2 bytes
  const std::string w = MoveFallbackTarget(d, wide + ".txt", id).substr(3);
  EXPECT_LE(w.size(), static_cast<size_t>(NAME_MAX));
  const std::string stem = w.substr(0, w.size() - id.size() - 5);
  EXPECT_EQ(stem.size() % 2, 0u);
  // Short names are left alone.
  EXPECT_EQ(MoveFallbackTarget(d, "README", id), "/d/README." + id);
}

}  // namespace
}  // namespace dropq
