// The processing area on real files: Enter() moves a job's file from the
// watched directory into "<processing>/<job id>/<name>" (kJobDirs) or
// "<processing>/<job id>.<name>" (kFlat), or leaves it in place, and checks
// it is the file the job was made for, by descriptor when asked; a file an
// earlier attempt left in either layout is found; WorkPath() falls back to in place when that path
// would not fit; PutBack() returns what a job left behind to the watched
// directory without replacing anything; RemoveJobDir() removes only an empty
// job directory, or gives it to SpareDirs, whose spares later jobs reuse.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <set>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"
#include "workers/processing.h"

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

struct stat Lstat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

class ProcessingTest : public ::testing::Test {
 protected:
  ProcessingTest() : watch_(tmp_.Mkdir("in")), proc_(tmp_.Sub("proc")) {}

  // Creates in/<name> holding `content` and returns a job for it, with the
  // file's identity.
  Job MakeJob(const std::string& id, const std::string& name, const std::string& content) {
    WriteFile(watch_ + "/" + name, content);
    Job job;
    job.id = id;
    job.queue = "q";
    job.name = name;
    job.ident = FileIdentity::FromStat(Lstat(watch_ + "/" + name));
    return job;
  }

  TempDir tmp_;
  const std::string watch_;
  const std::string proc_;  // not created: Enter() makes it
};

TEST_F(ProcessingTest, JobDirAndWorkPath) {
  EXPECT_EQ(JobDir("/p", "J1"), "/p/J1");
  EXPECT_EQ(WorkPath(AreaLayout::kJobDirs, "/w", "/p", "J1", "a b.txt"), "/p/J1/a b.txt");
  EXPECT_EQ(WorkPath(AreaLayout::kJobDirs, "/w", "", "J1", "a b.txt"),
            "/w/a b.txt");  // processing area off
}

TEST_F(ProcessingTest, WorkPathFallsBackInPlaceAtPathMax) {
  const std::string id = "J1";
  const std::string name = "a.txt";
  // "<proc>/<id>/<name>" is proc.size() + id.size() + name.size() + 2 long.
  const std::size_t fixed = id.size() + name.size() + 2;
  const std::string fits(PATH_MAX - 1 - fixed, 'p');
  const std::string too_long(PATH_MAX - fixed, 'p');
  ASSERT_EQ((fits + "/" + id + "/" + name).size(), static_cast<std::size_t>(PATH_MAX - 1));
  EXPECT_EQ(WorkPath(AreaLayout::kJobDirs, "/w", fits, id, name), fits + "/" + id + "/" + name);
  EXPECT_EQ(WorkPath(AreaLayout::kJobDirs, "/w", too_long, id, name), "/w/" + name);
}

TEST_F(ProcessingTest, EnterMovesIntoTheJobDirectory) {
  Job job = MakeJob("J1", "a b.txt", "content");
  ASSERT_FALSE(Exists(proc_));

  Entered in = Enter(AreaLayout::kJobDirs, watch_, proc_, job, false);
  ASSERT_EQ(in.result, RunResult::kOk) << in.error;
  EXPECT_EQ(in.path, proc_ + "/J1/a b.txt");
  EXPECT_EQ(in.path, WorkPath(AreaLayout::kJobDirs, watch_, proc_, job.id, job.name));
  EXPECT_EQ(ReadFile(in.path), "content");
  EXPECT_FALSE(Exists(watch_ + "/a b.txt"));
  EXPECT_TRUE(S_ISREG(in.st.st_mode));
  EXPECT_EQ(in.st.st_ino, job.ident.ino);
  EXPECT_EQ(static_cast<uint64_t>(in.st.st_size), job.ident.size);
  EXPECT_EQ(in.st.st_ino, Lstat(in.path).st_ino);

  // Both directories are dropqd's own: 0700.
  const struct stat proc_st = Lstat(proc_);
  const struct stat dir_st = Lstat(proc_ + "/J1");
  EXPECT_TRUE(S_ISDIR(proc_st.st_mode));
  EXPECT_TRUE(S_ISDIR(dir_st.st_mode));
  EXPECT_EQ(proc_st.st_mode & 07777, 0700u);
  EXPECT_EQ(dir_st.st_mode & 07777, 0700u);
}

TEST_F(ProcessingTest, EnterIntoAnExistingProcessingDirectory) {
  ASSERT_EQ(::mkdir(proc_.c_str(), 0700), 0);
  Job job = MakeJob("J1", "a.txt", "A");
  Entered in = Enter(AreaLayout::kJobDirs, watch_, proc_, job, false);
  ASSERT_EQ(in.result, RunResult::kOk) << in.error;
  EXPECT_EQ(ReadFile(proc_ + "/J1/a.txt"), "A");
}

// A job run again (a retry, or after a crash) finds its file where its last
// attempt left it.
TEST_F(ProcessingTest, SecondEnterFindsTheFileAlreadyThere) {
  Job job = MakeJob("J1", "a.txt", "A");
  Entered first = Enter(AreaLayout::kJobDirs, watch_, proc_, job, false);
  ASSERT_EQ(first.result, RunResult::kOk) << first.error;

  Entered again = Enter(AreaLayout::kJobDirs, watch_, proc_, job, false);
  ASSERT_EQ(again.result, RunResult::kOk) << again.error;
  EXPECT_EQ(again.path, first.path);
  EXPECT_EQ(again.st.st_ino, job.ident.ino);
  EXPECT_EQ(ReadFile(again.path), "A");
  EXPECT_FALSE(Exists(watch_ + "/a.txt"));

  // Even with a new file of the same name in the watched directory (it has
  // a job of its own), which stays where it is.
  WriteFile(watch_ + "/a.txt", "NEWER");
  Entered third = Enter(AreaLayout::kJobDirs, watch_, proc_, job, false);
  ASSERT_EQ(third.result, RunResult::kOk) << third.error;
  EXPECT_EQ(ReadFile(third.path), "A");
  EXPECT_EQ(ReadFile(watch_ + "/a.txt"), "NEWER");
}

TEST_F(ProcessingTest, EnterOfAVanishedFile) {
  Job job = MakeJob("J1", "a.txt", "A");
  ASSERT_EQ(::unlink((watch_ + "/a.txt").c_str()), 0);
  Entered in = Enter(AreaLayout::kJobDirs, watch_, proc_, job, false);
  EXPECT_EQ(in.result, RunResult::kVanished);
  EXPECT_FALSE(in.error.empty());
  EXPECT_FALSE(Exists(proc_ + "/J1"));
}

TEST_F(ProcessingTest, EnterOfAReplacedFileLeavesItInPlace) {
  Job job = MakeJob("J1", "a.txt", "A");
  // Another file took the name: renamed over the job's file.
  WriteFile(watch_ + "/other", "B");
  ASSERT_EQ(::rename((watch_ + "/other").c_str(), (watch_ + "/a.txt").c_str()), 0);
  ASSERT_NE(Lstat(watch_ + "/a.txt").st_ino, job.ident.ino);

  Entered in = Enter(AreaLayout::kJobDirs, watch_, proc_, job, false);
  EXPECT_EQ(in.result, RunResult::kReplaced);
  EXPECT_FALSE(in.error.empty());
  EXPECT_EQ(ReadFile(watch_ + "/a.txt"), "B");
  EXPECT_EQ(ListDir(watch_), std::set<std::string>{"a.txt"});
  EXPECT_FALSE(Exists(proc_ + "/J1/a.txt"));
}

TEST_F(ProcessingTest, EnterOfASymlinkLeavesLinkAndTargetAlone) {
  const std::string outside = tmp_.Mkdir("outside");
  const std::string target = outside + "/secret";
  WriteFile(target, "SECRET");
  const struct stat target_st = Lstat(target);

  // The job was made for a regular file whose inode is the target's: the
  // link is caught by its kind, not only by its inode.
  Job job;
  job.id = "J1";
  job.queue = "q";
  job.name = "a.txt";
  job.ident = FileIdentity::FromStat(target_st);
  ASSERT_EQ(::symlink(target.c_str(), (watch_ + "/a.txt").c_str()), 0);

  Entered in = Enter(AreaLayout::kJobDirs, watch_, proc_, job, false);
  EXPECT_EQ(in.result, RunResult::kReplaced);
  const struct stat link_st = Lstat(watch_ + "/a.txt");
  EXPECT_TRUE(S_ISLNK(link_st.st_mode));
  char buf[PATH_MAX];
  const ssize_t n = ::readlink((watch_ + "/a.txt").c_str(), buf, sizeof buf);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(n)), target);
  EXPECT_EQ(ReadFile(target), "SECRET");
  EXPECT_EQ(Lstat(target).st_ino, target_st.st_ino);
  EXPECT_EQ(ListDir(outside), std::set<std::string>{"secret"});
  EXPECT_FALSE(Exists(proc_ + "/J1/a.txt"));

  // The same without an inode to compare (ident.ino 0).
  job.ident = FileIdentity{};
  Entered again = Enter(AreaLayout::kJobDirs, watch_, proc_, job, false);
  EXPECT_EQ(again.result, RunResult::kReplaced);
  EXPECT_TRUE(S_ISLNK(Lstat(watch_ + "/a.txt").st_mode));
  EXPECT_EQ(ReadFile(target), "SECRET");
}

TEST_F(ProcessingTest, EnterWithoutProcessingDirectoryChecksInPlace) {
  Job job = MakeJob("J1", "a.txt", "A");
  Entered in = Enter(AreaLayout::kInPlace, watch_, "", job, false);
  ASSERT_EQ(in.result, RunResult::kOk) << in.error;
  EXPECT_EQ(in.path, watch_ + "/a.txt");
  EXPECT_EQ(in.st.st_ino, job.ident.ino);
  EXPECT_EQ(ReadFile(watch_ + "/a.txt"), "A");

  Job wrong = job;
  wrong.ident.ino = job.ident.ino + 1;
  EXPECT_EQ(Enter(AreaLayout::kInPlace, watch_, "", wrong, false).result, RunResult::kReplaced);
  EXPECT_EQ(ReadFile(watch_ + "/a.txt"), "A");
}

TEST_F(ProcessingTest, EnterFallsBackInPlaceWhenThePathWouldNotFit) {
  Job job = MakeJob("J1", "a.txt", "A");
  const std::string long_proc = tmp_.Sub(std::string(PATH_MAX, 'p'));
  ASSERT_EQ(WorkPath(AreaLayout::kJobDirs, watch_, long_proc, job.id, job.name), watch_ + "/a.txt");

  Entered in = Enter(AreaLayout::kJobDirs, watch_, long_proc, job, false);
  ASSERT_EQ(in.result, RunResult::kOk) << in.error;
  EXPECT_EQ(in.path, watch_ + "/a.txt");
  EXPECT_EQ(in.st.st_ino, job.ident.ino);
  EXPECT_EQ(ReadFile(watch_ + "/a.txt"), "A");
  EXPECT_EQ(ListDir(tmp_.path()), std::set<std::string>{"in"});  // nothing created

  ASSERT_EQ(::unlink((watch_ + "/a.txt").c_str()), 0);
  EXPECT_EQ(Enter(AreaLayout::kJobDirs, watch_, long_proc, job, false).result,
            RunResult::kVanished);
}

TEST_F(ProcessingTest, PutBackMovesTheFileBackAndRemovesTheJobDirectory) {
  Job job = MakeJob("J1", "a.txt", "A");
  ASSERT_EQ(Enter(AreaLayout::kJobDirs, watch_, proc_, job, false).result, RunResult::kOk);

  auto r = PutBack(proc_, AreaEntry{"J1", ""}, watch_);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, std::vector<std::string>{watch_ + "/a.txt"});
  EXPECT_EQ(ReadFile(watch_ + "/a.txt"), "A");
  EXPECT_EQ(Lstat(watch_ + "/a.txt").st_ino, job.ident.ino);
  EXPECT_FALSE(Exists(proc_ + "/J1"));
  EXPECT_TRUE(Exists(proc_));
}

TEST_F(ProcessingTest, PutBackNeverReplacesAFileInTheWatchedDirectory) {
  Job job = MakeJob("J7", "a.tar.gz", "OURS");
  Job readme = MakeJob("J8", "README", "OURS TOO");
  ASSERT_EQ(Enter(AreaLayout::kJobDirs, watch_, proc_, job, false).result, RunResult::kOk);
  ASSERT_EQ(Enter(AreaLayout::kJobDirs, watch_, proc_, readme, false).result, RunResult::kOk);
  WriteFile(watch_ + "/a.tar.gz", "NEWER");
  WriteFile(watch_ + "/README", "NEWER README");

  auto r = PutBack(proc_, AreaEntry{"J7", ""}, watch_);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_EQ(*r, std::vector<std::string>{watch_ + "/a.tar.J7.gz"});
  EXPECT_EQ(ReadFile(watch_ + "/a.tar.J7.gz"), "OURS");
  EXPECT_EQ(ReadFile(watch_ + "/a.tar.gz"), "NEWER");
  EXPECT_FALSE(Exists(proc_ + "/J7"));

  auto r2 = PutBack(proc_, AreaEntry{"J8", ""}, watch_);
  ASSERT_TRUE(r2.ok()) << r2.error().what;
  EXPECT_EQ(*r2, std::vector<std::string>{watch_ + "/README.J8"});
  EXPECT_EQ(ReadFile(watch_ + "/README.J8"), "OURS TOO");
  EXPECT_EQ(ReadFile(watch_ + "/README"), "NEWER README");
  EXPECT_FALSE(Exists(proc_ + "/J8"));
}

TEST_F(ProcessingTest, PutBackWhenBothNamesAreTakenLeavesTheFile) {
  Job job = MakeJob("J1", "a.txt", "OURS");
  ASSERT_EQ(Enter(AreaLayout::kJobDirs, watch_, proc_, job, false).result, RunResult::kOk);
  WriteFile(watch_ + "/a.txt", "NEWER");
  WriteFile(watch_ + "/a.J1.txt", "NEWER STILL");

  auto r = PutBack(proc_, AreaEntry{"J1", ""}, watch_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ReadFile(proc_ + "/J1/a.txt"), "OURS");
  EXPECT_EQ(ReadFile(watch_ + "/a.txt"), "NEWER");
  EXPECT_EQ(ReadFile(watch_ + "/a.J1.txt"), "NEWER STILL");
}

TEST_F(ProcessingTest, PutBackOfAMissingJobDirectoryHasNothingToDo) {
  // Its job finished between the sweep's listing and its put-back.
  auto r = PutBack(proc_, AreaEntry{"J1", ""}, watch_);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_TRUE(r->empty());
}

TEST_F(ProcessingTest, PutBackOfAnEmptyJobDirectoryRemovesIt) {
  const std::string dir = tmp_.Mkdir("proc/J1");
  auto r = PutBack(proc_, AreaEntry{"J1", ""}, watch_);
  ASSERT_TRUE(r.ok()) << r.error().what;
  EXPECT_TRUE(r->empty());
  EXPECT_FALSE(Exists(dir));
  EXPECT_TRUE(ListDir(watch_).empty());
}

TEST_F(ProcessingTest, RemoveJobDirLeavesANonEmptyDirectory) {
  Job job = MakeJob("J1", "a.txt", "A");
  ASSERT_EQ(Enter(AreaLayout::kJobDirs, watch_, proc_, job, false).result, RunResult::kOk);

  RemoveJobDir(proc_, "J1");
  EXPECT_EQ(ReadFile(proc_ + "/J1/a.txt"), "A");

  ASSERT_EQ(::unlink((proc_ + "/J1/a.txt").c_str()), 0);
  RemoveJobDir(proc_, "J1");
  EXPECT_FALSE(Exists(proc_ + "/J1"));
  EXPECT_TRUE(Exists(proc_));
  RemoveJobDir(proc_, "J1");  // gone already: nothing to do
  RemoveJobDir(proc_, "J2");
  EXPECT_TRUE(Exists(proc_));
}

TEST_F(ProcessingTest, FinishedJobDirectoriesAreReusedAsSpares) {
  Job a = MakeJob("J1", "a.txt", "A");
  ASSERT_EQ(Enter(AreaLayout::kJobDirs, watch_, proc_, a, false).result,
            RunResult::kOk);  // made with mkdir
  SpareDirs spares(proc_, "host-1", 1);
  ASSERT_EQ(::rename((proc_ + "/J1/a.txt").c_str(), (watch_ + "/a.txt").c_str()), 0);
  RemoveJobDir(proc_, "J1", &spares);
  EXPECT_EQ(ListDir(proc_), std::set<std::string>({".spare-host-1-0"}));
  EXPECT_EQ(spares.stocked(), 1U);

  // The next job's directory is the spare, renamed; the file is checked as ever.
  Job b = MakeJob("J2", "b.txt", "B");
  const ino_t spare_ino = Lstat(proc_ + "/.spare-host-1-0").st_ino;
  Entered in = Enter(AreaLayout::kJobDirs, watch_, proc_, b, false, &spares);
  ASSERT_EQ(in.result, RunResult::kOk) << in.error;
  EXPECT_EQ(Lstat(proc_ + "/J2").st_ino, spare_ino);
  EXPECT_EQ(ListDir(proc_), std::set<std::string>({"J2"}));
  EXPECT_EQ(ReadFile(proc_ + "/J2/b.txt"), "B");
  EXPECT_EQ(spares.stocked(), 0U);

  // With no spare left, Enter() makes the directory itself.
  Job c = MakeJob("J3", "c.txt", "C");
  ASSERT_EQ(Enter(AreaLayout::kJobDirs, watch_, proc_, c, false, &spares).result, RunResult::kOk);
  EXPECT_EQ(ReadFile(proc_ + "/J3/c.txt"), "C");
}

TEST_F(ProcessingTest, ASpareIsNeverADirectoryWithFilesOrBeyondCapacity) {
  SpareDirs spares(proc_, "h", 1);
  // A handler left a file of its own beside the job's: the directory stays
  // where it is, as without spares, for the sweep to give back.
  tmp_.Mkdir("proc/J1");
  WriteFile(proc_ + "/J1/out.log", "x");
  RemoveJobDir(proc_, "J1", &spares);
  EXPECT_EQ(ReadFile(proc_ + "/J1/out.log"), "x");
  EXPECT_EQ(spares.stocked(), 0U);

  // One spare at most: the second empty directory is removed.
  tmp_.Mkdir("proc/J2");
  tmp_.Mkdir("proc/J3");
  RemoveJobDir(proc_, "J2", &spares);
  RemoveJobDir(proc_, "J3", &spares);
  EXPECT_EQ(spares.stocked(), 1U);
  EXPECT_EQ(ListDir(proc_), std::set<std::string>({"J1", ".spare-h-0"}));
}

TEST_F(ProcessingTest, ASpareIsNotUsedWhenTheJobDirectoryExists) {
  SpareDirs spares(proc_, "h", 2);
  tmp_.Mkdir("proc/J0");
  RemoveJobDir(proc_, "J0", &spares);
  // An earlier attempt left J1's directory (its file already went on).
  tmp_.Mkdir("proc/J1");
  EXPECT_FALSE(spares.Take(proc_ + "/J1"));
  EXPECT_EQ(spares.stocked(), 1U);
  EXPECT_TRUE(Exists(proc_ + "/.spare-h-0"));
  // A spare removed behind its back is forgotten, not fatal.
  ASSERT_EQ(::rmdir((proc_ + "/.spare-h-0").c_str()), 0);
  EXPECT_FALSE(spares.Take(proc_ + "/J2"));
  EXPECT_EQ(spares.stocked(), 0U);
}

TEST_F(ProcessingTest, ResetRemovesOnlyThisInstancesEmptySpares) {
  tmp_.Mkdir("proc/.spare-h-0");
  tmp_.Mkdir("proc/.spare-h-7");
  tmp_.Mkdir("proc/.spare-h-8");
  WriteFile(proc_ + "/.spare-h-8/stray", "s");
  tmp_.Mkdir("proc/.spare-other-0");
  tmp_.Mkdir("proc/J1");
  SpareDirs spares(proc_, "h", 4);
  spares.Reset();
  EXPECT_EQ(ListDir(proc_), std::set<std::string>({".spare-h-8", ".spare-other-0", "J1"}));
  EXPECT_EQ(spares.stocked(), 0U);
}

// ------------------------------------------------------------ flat, descriptors

constexpr char kId[] = "01JABCDEFGHJKMNPQRSTVWXYZ0";  // a real job id (26 characters)

TEST_F(ProcessingTest, LayoutOfFollowsHandlerDispositionsAndSetting) {
  QueueConfig q;
  q.processing_dir = "/w/.dropq-processing";
  q.handler.kind = HandlerConfig::Kind::kSha256;
  EXPECT_EQ(LayoutOf(q), AreaLayout::kInPlace);  // auto, keep/keep: the descriptor suffices
  q.on_success.kind = Disposition::Kind::kMoveTo;
  EXPECT_EQ(LayoutOf(q), AreaLayout::kFlat);
  q.on_success.kind = Disposition::Kind::kKeep;
  q.on_failure.kind = Disposition::Kind::kMoveTo;
  EXPECT_EQ(LayoutOf(q), AreaLayout::kFlat);
  q.on_failure.kind = Disposition::Kind::kKeep;
  q.processing_auto = false;  // an explicit path keeps its meaning
  EXPECT_EQ(LayoutOf(q), AreaLayout::kFlat);
  q.handler.kind = HandlerConfig::Kind::kExec;
  EXPECT_EQ(LayoutOf(q), AreaLayout::kJobDirs);
  q.processing_auto = true;
  EXPECT_EQ(LayoutOf(q), AreaLayout::kJobDirs);  // {path} needs the area
  q.processing_dir.clear();                      // off
  EXPECT_EQ(LayoutOf(q), AreaLayout::kInPlace);
}

TEST_F(ProcessingTest, FlatWorkPathFallsBackToAJobDirectoryForLongNames) {
  const std::string fits(NAME_MAX - 27, 'n');
  const std::string too_long(NAME_MAX - 26, 'n');
  EXPECT_EQ(WorkPath(AreaLayout::kFlat, "/w", "/p", kId, fits),
            "/p/" + std::string(kId) + "." + fits);
  EXPECT_EQ(WorkPath(AreaLayout::kFlat, "/w", "/p", kId, too_long),
            "/p/" + std::string(kId) + "/" + too_long);
  EXPECT_EQ(WorkPath(AreaLayout::kInPlace, "/w", "/p", kId, "a"), "/w/a");
}

TEST_F(ProcessingTest, FlatEnterRenamesTheFileInWithoutADirectory) {
  Job job = MakeJob(kId, "a b.txt", "content");
  Entered in = Enter(AreaLayout::kFlat, watch_, proc_, job, /*open=*/true);
  ASSERT_EQ(in.result, RunResult::kOk) << in.error;
  EXPECT_EQ(in.path, proc_ + "/" + kId + ".a b.txt");
  EXPECT_EQ(ListDir(proc_), std::set<std::string>{std::string(kId) + ".a b.txt"});
  EXPECT_FALSE(Exists(watch_ + "/a b.txt"));
  ASSERT_TRUE(in.fd.valid());
  char buf[16];
  EXPECT_EQ(::pread(in.fd.get(), buf, sizeof buf, 0), 7);
  EXPECT_EQ(std::string(buf, 7), "content");
  EXPECT_EQ(in.st.st_ino, job.ident.ino);
  EXPECT_EQ(Lstat(proc_).st_mode & 07777, 0700u);

  // Run again, it finds the file where it is.
  Entered again = Enter(AreaLayout::kFlat, watch_, proc_, job, true);
  ASSERT_EQ(again.result, RunResult::kOk) << again.error;
  EXPECT_EQ(again.path, in.path);

  // The sweep reads the name back from the entry.
  auto e = ParseAreaEntry(std::string(kId) + ".a b.txt");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->job_id, kId);
  EXPECT_EQ(e->name, "a b.txt");
  auto back = PutBack(proc_, *e, watch_);
  ASSERT_TRUE(back.ok()) << back.error().what;
  EXPECT_EQ(*back, std::vector<std::string>{watch_ + "/a b.txt"});
  EXPECT_EQ(ReadFile(watch_ + "/a b.txt"), "content");
  EXPECT_TRUE(ListDir(proc_).empty());
}

TEST_F(ProcessingTest, ParseAreaEntryKnowsOnlyJobEntries) {
  auto dir = ParseAreaEntry(kId);
  ASSERT_TRUE(dir.has_value());
  EXPECT_EQ(dir->job_id, kId);
  EXPECT_EQ(dir->name, "");
  EXPECT_FALSE(ParseAreaEntry(".spare-h-0").has_value());
  EXPECT_FALSE(ParseAreaEntry(std::string(kId) + ".").has_value());
  EXPECT_FALSE(ParseAreaEntry(std::string(kId) + "-a.txt").has_value());
  EXPECT_FALSE(ParseAreaEntry("notajobid.txt").has_value());
}

TEST_F(ProcessingTest, InPlaceByDescriptorRefusesWhatWasSwappedIn) {
  Job job = MakeJob(kId, "a.txt", "A");
  Entered in = Enter(AreaLayout::kInPlace, watch_, "", job, /*open=*/true);
  ASSERT_EQ(in.result, RunResult::kOk) << in.error;
  EXPECT_EQ(in.path, watch_ + "/a.txt");
  ASSERT_TRUE(in.fd.valid());
  // The descriptor is the file's, whatever the name points at afterwards.
  const std::string secret = tmp_.Sub("secret");
  WriteFile(secret, "SECRET");
  ASSERT_EQ(::unlink((watch_ + "/a.txt").c_str()), 0);
  ASSERT_EQ(::symlink(secret.c_str(), (watch_ + "/a.txt").c_str()), 0);
  char buf[8];
  EXPECT_EQ(::pread(in.fd.get(), buf, sizeof buf, 0), 1);
  EXPECT_EQ(buf[0], 'A');

  // A symlink under the name: never opened through, nothing moved.
  Entered link = Enter(AreaLayout::kInPlace, watch_, "", job, true);
  EXPECT_EQ(link.result, RunResult::kReplaced);
  EXPECT_FALSE(link.fd.valid());
  EXPECT_NE(link.error.find("symlink"), std::string::npos) << link.error;
  EXPECT_TRUE(S_ISLNK(Lstat(watch_ + "/a.txt").st_mode));
  EXPECT_EQ(ReadFile(secret), "SECRET");

  // Another regular file: opened, found to be another inode, closed.
  ASSERT_EQ(::unlink((watch_ + "/a.txt").c_str()), 0);
  WriteFile(watch_ + "/a.txt", "B");
  Entered other = Enter(AreaLayout::kInPlace, watch_, "", job, true);
  EXPECT_EQ(other.result, RunResult::kReplaced);
  EXPECT_FALSE(other.fd.valid());
  EXPECT_EQ(ReadFile(watch_ + "/a.txt"), "B");

  // A FIFO: opened without blocking, refused.
  ASSERT_EQ(::unlink((watch_ + "/a.txt").c_str()), 0);
  ASSERT_EQ(::mkfifo((watch_ + "/a.txt").c_str(), 0644), 0);
  EXPECT_EQ(Enter(AreaLayout::kInPlace, watch_, "", job, true).result, RunResult::kReplaced);
}

TEST_F(ProcessingTest, AFlatEntryIsCheckedAfterTheRenameAndPutBackIfSwapped) {
  const std::string secret = tmp_.Sub("secret");
  WriteFile(secret, "SECRET");
  Job job = MakeJob(kId, "a.txt", "A");
  // What a swap between the check and the rename brings in: a symlink,
  // found in the area, put back under the name.
  ASSERT_EQ(::mkdir(proc_.c_str(), 0700), 0);
  ASSERT_EQ(::unlink((watch_ + "/a.txt").c_str()), 0);
  ASSERT_EQ(::symlink(secret.c_str(), (proc_ + "/" + kId + ".a.txt").c_str()), 0);
  Entered in = Enter(AreaLayout::kFlat, watch_, proc_, job, true);
  EXPECT_EQ(in.result, RunResult::kReplaced);
  EXPECT_TRUE(S_ISLNK(Lstat(watch_ + "/a.txt").st_mode));
  EXPECT_TRUE(ListDir(proc_).empty());
  EXPECT_EQ(ReadFile(secret), "SECRET");
}

// After an upgrade or a changed configuration, a file an earlier attempt
// left in the other layout (or in the area at all) is found and used there.
TEST_F(ProcessingTest, AFileLeftByAnotherLayoutIsFound) {
  Job job = MakeJob(kId, "a.txt", "A");
  ASSERT_EQ(Enter(AreaLayout::kJobDirs, watch_, proc_, job, false).result, RunResult::kOk);
  const std::string left = proc_ + "/" + kId + "/a.txt";
  EXPECT_EQ(LocateWork(AreaLayout::kInPlace, watch_, proc_, kId, "a.txt"), left);
  EXPECT_EQ(LocateWork(AreaLayout::kFlat, watch_, proc_, kId, "a.txt"), left);

  Entered flat = Enter(AreaLayout::kFlat, watch_, proc_, job, true);
  ASSERT_EQ(flat.result, RunResult::kOk) << flat.error;
  EXPECT_EQ(flat.path, left);
  Entered here = Enter(AreaLayout::kInPlace, watch_, proc_, job, true);
  ASSERT_EQ(here.result, RunResult::kOk) << here.error;
  EXPECT_EQ(here.path, left);
  EXPECT_TRUE(InJobDir(proc_, kId, left));
  EXPECT_FALSE(InJobDir(proc_, kId, proc_ + "/" + kId + ".a.txt"));
  EXPECT_FALSE(InJobDir("", kId, "/" + std::string(kId) + "/a.txt"));

  // Gone from everywhere: where it would be worked on.
  ASSERT_EQ(::unlink(left.c_str()), 0);
  EXPECT_EQ(LocateWork(AreaLayout::kFlat, watch_, proc_, kId, "a.txt"),
            proc_ + "/" + kId + ".a.txt");
  EXPECT_EQ(Enter(AreaLayout::kFlat, watch_, proc_, job, true).result, RunResult::kVanished);

  // A newer upload under the name is never taken for the file of a queue
  // that works in an area; only an in-place queue finds its file there.
  WriteFile(watch_ + "/a.txt", "NEWER");
  EXPECT_EQ(LocateWork(AreaLayout::kFlat, watch_, proc_, kId, "a.txt"),
            proc_ + "/" + kId + ".a.txt");
  EXPECT_EQ(LocateWork(AreaLayout::kInPlace, watch_, proc_, kId, "a.txt"), watch_ + "/a.txt");
}

}  // namespace
}  // namespace dropq
