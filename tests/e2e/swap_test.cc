// A builtin queue with `processing_dir: auto` (the default), for each
// disposition, as a real deployment runs it: dropqd as an unprivileged user
// (nobody) owning a sticky inbox that uploaders (another user) write. An
// uploader swaps a symlink or another file in under an upload's name
//
//   - between the event and the handler (the queue is paused meanwhile): the
//     job ends `replaced`, its handler never runs, the link is never
//     followed, hashed or moved, and a regular file swapped in is a new
//     upload with a job of its own, processed once;
//   - while the handler runs, before the disposition (a 2 GiB sparse file
//     takes the handler a while): the handler hashes the original through
//     its descriptor, the disposition acts on the original only (keep: no
//     area at all; delete and move_to: the file is in the queue's private
//     area by then), and the link stays in the inbox, untouched.
//
// The secret a link points at is never hashed: its digest never appears in
// the manifest or a record.
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/process.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

constexpr uid_t kUploader = 12345;  // owns the uploads; neither root nor dropqd

class SwapTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.redis.ok());
    const struct passwd* pw = ::getpwnam("nobody");
    ASSERT_NE(pw, nullptr) << "no user nobody to run dropqd as";
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    secret_ = env_.tmp.Sub("secret.txt");
    WriteFile(secret_, "not for uploaders\n");
    const std::string mdir = env_.tmp.Mkdir("manifest");
    manifest_ = mdir + "/sha256.txt";

    QueueSpec q;
    q.handler = "builtin: sha256\nmanifest: " + manifest_;
    q.workers = 1;
    q.on_success = GetParam() == "move_to" ? "done" : GetParam();
    // keep: both dispositions keep, so the queue needs no processing area.
    if (GetParam() == "keep") q.on_failure = "keep";
    env_.WriteConfig(q);

    // dropqd's user owns the inbox (sticky, writable by all), the success and
    // failure directories and the manifest's; everything else is root's.
    ASSERT_EQ(::chmod(env_.tmp.path().c_str(), 0755), 0);
    for (const std::string& d : {env_.inbox, env_.done, env_.failed, mdir}) {
      ASSERT_EQ(::chown(d.c_str(), uid, gid), 0) << d;
    }
    ASSERT_EQ(::chmod(env_.inbox.c_str(), 01777), 0);
    ASSERT_EQ(::chmod(env_.config.c_str(), 0644), 0);
    daemon_ = std::make_unique<Process>(
        std::vector<std::string>{"setpriv", "--reuid=" + std::to_string(uid),
                                 "--regid=" + std::to_string(gid), "--clear-groups", DROPQD_BIN,
                                 "--config", env_.config},
        env_.tmp.Sub("dropqd.nobody.log"));
    ASSERT_TRUE(WaitFor([&] { return Log().find("scan.done") != std::string::npos; }, seconds(30)))
        << Log();
  }

  void TearDown() override {
    if (!daemon_) return;
    daemon_->Signal(SIGTERM);
    EXPECT_EQ(daemon_->Wait(seconds(30)), 0) << Log();
  }

  std::string Log() const { return daemon_ ? daemon_->Log() : ""; }

  // Writes `name` as the uploader would: elsewhere, then renamed in.
  void Upload(const std::string& name, const std::string& content) {
    const std::string staged = env_.tmp.Sub("staged-" + name);
    WriteFile(staged, content);
    ASSERT_EQ(::chown(staged.c_str(), kUploader, kUploader), 0);
    ASSERT_EQ(::rename(staged.c_str(), (env_.inbox + "/" + name).c_str()), 0);
  }

  // Puts a symlink to the secret under `name`, by rename.
  void SwapInLink(const std::string& name) {
    const std::string staged = env_.tmp.Sub("link-" + name);
    ASSERT_EQ(::symlink(secret_.c_str(), staged.c_str()), 0);
    ASSERT_EQ(::lchown(staged.c_str(), kUploader, kUploader), 0);
    ASSERT_EQ(::rename(staged.c_str(), (env_.inbox + "/" + name).c_str()), 0);
  }

  std::string JobOf(const std::string& name) {
    auto ids = JobIdsByName(env_.redis, "q");
    return ids[name].empty() ? "" : ids[name][0];
  }

  std::map<std::string, std::string> WaitEnded(const std::string& id) {
    EXPECT_TRUE(WaitFor(
        [&] {
          const std::string s = JobRecord(env_.redis, "q", id)["state"];
          return s == "done" || s == "failed";
        },
        seconds(60)))
        << id << "\n"
        << Log();
    return JobRecord(env_.redis, "q", id);
  }

  // The link is where the uploader left it, pointing at the untouched
  // secret, which was never hashed or moved.
  void ExpectLinkUntouched(const std::string& name, bool original_done = false) {
    struct stat st;
    ASSERT_EQ(::lstat((env_.inbox + "/" + name).c_str(), &st), 0) << name;
    EXPECT_TRUE(S_ISLNK(st.st_mode)) << name;
    EXPECT_EQ(ReadFile(secret_), "not for uploaders\n");
    EXPECT_EQ(ReadFile(manifest_).find(Sha256Hex("not for uploaders\n")), std::string::npos);
    if (!original_done) {
      EXPECT_FALSE(Exists(env_.done + "/" + name));
    }
    EXPECT_FALSE(Exists(env_.failed + "/" + name));
  }

  DropqEnv env_;
  std::unique_ptr<Process> daemon_;
  std::string secret_, manifest_;
};

TEST_P(SwapTest, SwappedInBeforeTheHandler) {
  ASSERT_EQ(env_.Ctl({"pause", "q"}).status, 0);
  Upload("link.txt", "upload one\n");
  Upload("other.txt", "upload two\n");
  ASSERT_TRUE(WaitFor([&] { return !JobOf("link.txt").empty() && !JobOf("other.txt").empty(); },
                      seconds(10)))
      << Log();
  const std::string link_job = JobOf("link.txt");
  const std::string other_job = JobOf("other.txt");
  SwapInLink("link.txt");
  Upload("other.txt", "swapped in\n");  // another regular file, renamed over
  ASSERT_EQ(env_.Ctl({"resume", "q"}).status, 0);

  auto rec = WaitEnded(link_job);
  EXPECT_EQ(rec["result"], "replaced") << Log();
  EXPECT_EQ(rec.count("sha256"), 0u);
  // other.txt's first job was never claimed: CLAIM finds its name taken by
  // the file renamed over it and ends it as a `replaced` count, unrun
  // (the other count is link.txt's skip).
  EXPECT_TRUE(WaitFor([&] { return StatCounter(env_.redis, "q", "replaced") == 2; }, seconds(10)))
      << Log();
  EXPECT_EQ(env_.redis.CmdInt({"EXISTS", DropqEnv::Key("q", "job:" + other_job)}), 0);
  // The file swapped in is an upload of its own: one job, processed once.
  std::string new_job;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto ids = JobIdsByName(env_.redis, "q");
        for (const auto& id : ids["other.txt"]) {
          if (id != other_job) new_job = id;
        }
        return !new_job.empty();
      },
      seconds(10)))
      << Log();
  EXPECT_EQ(JobIdsByName(env_.redis, "q")["other.txt"].size(), 1u);
  rec = WaitEnded(new_job);
  EXPECT_EQ(rec["result"], "ok") << Log();
  EXPECT_EQ(rec["sha256"], Sha256Hex("swapped in\n"));
  EXPECT_EQ(Count(ReadFile(manifest_), Sha256Hex("swapped in\n")), 1u);
  EXPECT_EQ(ReadFile(manifest_).find(Sha256Hex("upload two\n")), std::string::npos);

  ExpectLinkUntouched("link.txt");
  EXPECT_NE(Log().find("reason=symlink"), std::string::npos) << Log();
  EXPECT_GE(StatCounter(env_.redis, "q", "replaced"), 2);
}

TEST_P(SwapTest, SwappedInWhileTheHandlerRuns) {
  // Sparse: 2 GiB to hash, nothing on disk.
  const std::string staged = env_.tmp.Sub("big.bin");
  WriteFile(staged, "");
  ASSERT_EQ(::truncate(staged.c_str(), 2LL << 30), 0);
  ASSERT_EQ(::chown(staged.c_str(), kUploader, kUploader), 0);
  struct stat orig;
  ASSERT_EQ(::stat(staged.c_str(), &orig), 0);
  ASSERT_EQ(::rename(staged.c_str(), (env_.inbox + "/big.bin").c_str()), 0);

  std::string id;
  ASSERT_TRUE(WaitFor(
      [&] {
        id = JobOf("big.bin");
        return !id.empty() && JobRecord(env_.redis, "q", id)["attempt"] == "1";
      },
      seconds(20)))
      << Log();
  SwapInLink("big.bin");
  // Still hashing: the swap came between the event and the disposition.
  auto now = JobRecord(env_.redis, "q", id);
  EXPECT_EQ(now["state"], "active");
  EXPECT_EQ(now.count("phase"), 0u) << "no outcome recorded yet";

  auto rec = WaitEnded(id);
  EXPECT_EQ(rec["state"], "done") << Log();
  EXPECT_EQ(rec["result"], "ok") << Log();
  EXPECT_EQ(rec["sha256"].size(), 64u);
  ExpectLinkUntouched("big.bin", GetParam() == "move_to");
  struct stat st;
  if (GetParam() == "move_to") {
    ASSERT_EQ(::stat((env_.done + "/big.bin").c_str(), &st), 0);
    EXPECT_EQ(st.st_ino, orig.st_ino);  // the original, and only it
    EXPECT_EQ(rec["disposed_to"], env_.done + "/big.bin");
  } else if (GetParam() == "delete") {
    EXPECT_EQ(rec["disposed_to"], "(deleted)");
  }
  if (GetParam() == "keep") {
    EXPECT_FALSE(Exists(env_.inbox + "/.dropq-processing")) << "keep needs no area";
  }
  // Nothing is left in the processing area, and nothing else in the inbox.
  EXPECT_EQ(FindNamed(env_.inbox + "/.dropq-processing", "big.bin").size(), 0u);
  EXPECT_EQ(ListDir(env_.inbox), std::vector<std::string>{"big.bin"});
}

INSTANTIATE_TEST_SUITE_P(Dispositions, SwapTest, ::testing::Values("keep", "delete", "move_to"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace dropq::test
