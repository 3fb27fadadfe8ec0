// A success directory on a filesystem that is full: the move there (a copy,
// since the inbox is on another filesystem) fails with ENOSPC. The job must
// stay out of done with the error recorded, its file safe and unchanged on
// the inbox side (in the inbox or its processing area), and once space
// returns the move is retried and the job completes.
// As root the success directory is a small tmpfs mounted for the test and
// filled up (unmounted in every case). Where mounting is not permitted, the
// full disk is stood in for by a success directory dropqd cannot write: as a
// non-root user a read-only directory; as root (who may write anywhere)
// dropqd runs as `nobody`. DROPQ_FULL_FS_NO_MOUNT=1 takes that fallback even
// where mounting works.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A tmpfs of `size` mounted on `dir` while it lives.
class TmpfsMount {
 public:
  TmpfsMount(std::string dir, const std::string& size) : dir_(std::move(dir)) {
    const std::string opts = "size=" + size + ",mode=0755";
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, opts.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~TmpfsMount() {
    if (!mounted_) return;
    if (::umount(dir_.c_str()) != 0) {
      // Still busy (a process holds a file there): detach it now, the kernel
      // frees it when the last user lets go.
      if (::umount2(dir_.c_str(), MNT_DETACH) != 0) {
        ADD_FAILURE() << "umount " << dir_ << ": " << std::strerror(errno);
      }
    }
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

// Writes to `path` until the filesystem is full (ENOSPC). Returns false if it
// stopped for another reason.
bool FillUp(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "we");
  if (f == nullptr) return false;
  std::setvbuf(f, nullptr, _IONBF, 0);
  const std::string chunk(size_t{64} * 1024, 'F');
  bool full = false;
  for (int i = 0; i < 1 << 16; ++i) {  // at most 4 GiB: a tmpfs without a size would be a bug
    if (std::fwrite(chunk.data(), 1, chunk.size(), f) != chunk.size()) {
      full = errno == ENOSPC;
      break;
    }
  }
  // Also the last partial page.
  for (int i = 0; full && i < 64 * 1024; ++i) {
    if (std::fputc('F', f) == EOF) break;
  }
  std::fclose(f);
  return full;
}

std::string Describe(std::map<std::string, std::string> rec) {
  return "state=" + rec["state"] + " phase=" + rec["phase"] + " result=" + rec["result"] +
         " dispose_failures=" + rec["dispose_failures"] + " dispose_error=" + rec["dispose_error"];
}

TEST(FullFsTest, JobWaitsForSpaceAndCompletesOnceItReturns) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const bool root = ::geteuid() == 0;
  std::unique_ptr<TmpfsMount> fs;
  // DROPQ_FULL_FS_NO_MOUNT=1 takes the fallback even where mounting works,
  // to check the fallback itself.
  const char* no_mount = std::getenv("DROPQ_FULL_FS_NO_MOUNT");
  if (root && (no_mount == nullptr || std::string(no_mount) != "1")) {
    fs = std::make_unique<TmpfsMount>(env.done, "512k");
  }
  // How the success directory is made unwritable, and the error that shows it.
  std::string mode, expect_error;
  std::unique_ptr<Process> as_nobody;
  if (fs && fs->mounted()) {
    mode = "tmpfs";
    expect_error = std::strerror(ENOSPC);
  } else if (!root) {
    mode = "read-only directory";
    expect_error = std::strerror(EACCES);
    ASSERT_EQ(::chmod(env.done.c_str(), 0555), 0) << std::strerror(errno);
  } else {
    mode = "nobody";
    expect_error = std::strerror(EACCES);
  }
  std::cout << "full_fs: success directory: " << mode
            << (fs && !fs->mounted() ? " (mount tmpfs: " + fs->error() + ")" : "") << std::endl;
  const std::string no_mount_why = fs ? fs->error() : "not tried";
  const std::string filler = env.done + "/filler";
  if (mode == "tmpfs") {
    ASSERT_TRUE(FillUp(filler)) << "could not fill the tmpfs";
  }

  QueueSpec q;
  q.handler = "builtin: sha256";
  env.WriteConfig(q);
  if (mode == "nobody") {
    // Everything but the success directory is nobody's to use.
    const struct passwd* pw = ::getpwnam("nobody");
    if (pw == nullptr) {
      GTEST_SKIP() << "cannot mount a tmpfs (" << no_mount_why
                   << ") and there is no user nobody to run dropqd as";
    }
    ASSERT_EQ(::chmod(env.tmp.path().c_str(), 0755), 0);
    for (const std::string& d : {env.inbox, env.failed}) {
      ASSERT_EQ(::chown(d.c_str(), pw->pw_uid, pw->pw_gid), 0) << std::strerror(errno);
    }
    ASSERT_EQ(::chmod(env.config.c_str(), 0644), 0);
    ASSERT_EQ(::chmod(env.done.c_str(), 0755), 0);  // root's: nobody cannot write it
    as_nobody = std::make_unique<Process>(
        std::vector<std::string>{"setpriv", "--reuid=" + std::to_string(pw->pw_uid),
                                 "--regid=" + std::to_string(pw->pw_gid), "--clear-groups",
                                 DROPQD_BIN, "--config", env.config},
        env.tmp.Sub("dropqd.nobody.log"));
    ASSERT_TRUE(WaitFor([&] { return as_nobody->Log().find("scan.done") != std::string::npos; },
                        seconds(30)))
        << as_nobody->Log();
  } else {
    ASSERT_TRUE(env.Start()) << env.DaemonLog();
  }
  auto daemon_log = [&] { return as_nobody ? as_nobody->Log() : env.DaemonLog(); };

  // Big enough to need several pages, with a pattern to check it unchanged.
  std::string content;
  for (int i = 0; content.size() < 40000; ++i) content += "line " + std::to_string(i) + "\n";
  const std::string staging = env.tmp.Mkdir("staging");
  if (mode == "nobody") {
    ASSERT_EQ(::chmod(staging.c_str(), 0777), 0);
  }
  WriteAndRename(staging + "/a.dat", env.inbox + "/a.dat", content);

  std::string id;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto ids = JobIdsByName(env.redis, "q");
        if (ids.count("a.dat") == 0) return false;
        id = ids["a.dat"].at(0);
        return std::atoi(JobRecord(env.redis, "q", id)["dispose_failures"].c_str()) >= 2;
      },
      seconds(20)))
      << daemon_log();
  auto rec = JobRecord(env.redis, "q", id);
  EXPECT_NE(rec["state"], "done") << Describe(rec);
  EXPECT_EQ(rec["state"], "active") << Describe(rec);
  EXPECT_EQ(rec["result"], "ok") << Describe(rec);  // the handler's run succeeded
  EXPECT_NE(rec["dispose_error"].find(expect_error), std::string::npos) << Describe(rec);
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), 0);
  // The file is on the inbox side, once, unchanged; nothing of it in done/.
  const std::vector<std::string> copies = FindNamed(env.inbox, "a.dat");
  ASSERT_EQ(copies.size(), 1u) << "copies of a.dat under the inbox: " << copies.size();
  EXPECT_EQ(ReadFile(copies[0]), content) << copies[0];
  EXPECT_FALSE(Exists(env.done + "/a.dat"));
  const std::string waiting_at = copies[0];

  // Space comes back.
  if (mode == "tmpfs") {
    ASSERT_EQ(::unlink(filler.c_str()), 0) << std::strerror(errno);
  } else {
    ASSERT_EQ(::chmod(env.done.c_str(), 0777), 0) << std::strerror(errno);
  }
  ASSERT_TRUE(
      WaitFor([&] { return JobRecord(env.redis, "q", id)["state"] == "done"; }, seconds(30)))
      << Describe(JobRecord(env.redis, "q", id)) << "\n"
      << daemon_log();
  EXPECT_EQ(ReadFile(env.done + "/a.dat"), content);
  EXPECT_TRUE(FindNamed(env.inbox, "a.dat").empty());
  EXPECT_EQ(JobRecord(env.redis, "q", id)["disposed_to"], env.done + "/a.dat");
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), 1);
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "active")}), 0);
  // No temporary copy left behind by the failed attempts.
  EXPECT_EQ(ListDir(env.done), std::vector<std::string>{"a.dat"});
  const int failures = std::atoi(JobRecord(env.redis, "q", id)["dispose_failures"].c_str());
  std::cout << "full_fs: mode=" << mode << " dispose_failures=" << failures
            << " waited_at=" << waiting_at.substr(env.inbox.size()) << std::endl;
  RecordProperty("mode", mode);
  RecordProperty("dispose_failures", failures);

  if (as_nobody) {
    as_nobody->Signal(SIGTERM);
    EXPECT_EQ(as_nobody->Wait(seconds(30)), 0) << as_nobody->Log();
  } else {
    EXPECT_EQ(env.Stop(), 0) << env.DaemonLog();
  }
}

}  // namespace
}  // namespace dropq::test
