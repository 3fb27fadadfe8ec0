// The builtin sha256 handler on real files: known digests, the manifest line
// format and its atomicity under concurrent workers, and the files it must
// refuse without blocking (FIFO, symlink, directory) or report (vanished).
#include "workers/sha256_handler.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/escape.h"
#include "common/unique_fd.h"
#include "tests/support/temp_dir.h"
#include "workers/cancel_token.h"
#include "workers/handler.h"

namespace dropq {
namespace {

using test::ReadFile;
using test::TempDir;
using test::WriteFile;

constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
// FIPS 180-2 test vector: one million 'a'.
constexpr char kMillionA[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

class Sha256HandlerTest : public ::testing::Test {
 protected:
  std::unique_ptr<Handler> Make(const std::string& manifest = "") {
    QueueConfig q;
    q.name = "q";
    q.watch = tmp_.path();
    q.handler.kind = HandlerConfig::Kind::kSha256;
    q.handler.manifest = manifest;
    auto h = MakeHandler(q, "inst");
    EXPECT_TRUE(h.ok()) << (h.ok() ? "" : h.error().what);
    return h.ok() ? std::move(h).value() : nullptr;
  }

  Outcome Hash(Handler* h, const std::string& name) {
    Job j;
    j.id = "job1";
    j.queue = "q";
    j.name = name;
    j.attempt = 1;
    return h->Run(j, tmp_.Sub(name), -1, cancel_);
  }

  TempDir tmp_;
  CancelToken cancel_;
};

TEST_F(Sha256HandlerTest, KnownDigests) {
  auto h = Make();
  ASSERT_TRUE(h);
  WriteFile(tmp_.Sub("abc"), "abc");
  WriteFile(tmp_.Sub("empty"), "");
  WriteFile(tmp_.Sub("million"), std::string(1000000, 'a'));  // many 64 KiB chunks

  const int64_t before = NowUnixMs();
  const Outcome abc = Hash(h.get(), "abc");
  EXPECT_EQ(abc.result, RunResult::kOk) << abc.error;
  EXPECT_EQ(abc.sha256, kAbc);
  EXPECT_GE(abc.started_ms, before);
  EXPECT_GE(abc.duration_ms, 0);
  EXPECT_EQ(Hash(h.get(), "empty").sha256, kEmpty);
  EXPECT_EQ(Hash(h.get(), "million").sha256, kMillionA);
}

// Given the worker's descriptor, the handler reads it and never opens the
// path, where something else may sit by now.
TEST_F(Sha256HandlerTest, ReadsTheDescriptorItIsGiven) {
  auto h = Make();
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->ReadsDescriptor());
  WriteFile(tmp_.Sub("abc"), "abc");
  UniqueFd fd(::open(tmp_.Sub("abc").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  WriteFile(tmp_.Sub("other"), "");
  Job j;
  j.id = "job1";
  j.queue = "q";
  j.name = "other";
  const Outcome o = h->Run(j, tmp_.Sub("other"), fd.get(), cancel_);
  ASSERT_EQ(o.result, RunResult::kOk) << o.error;
  EXPECT_EQ(o.sha256, kAbc);
}

TEST_F(Sha256HandlerTest, ManifestLineHasEscapedNameDigestAndTime) {
  const std::string manifest = tmp_.Sub("manifest.txt");
  auto h = Make(manifest);
  ASSERT_TRUE(h);
  const std::string name = "a b\\c\n\xff.txt";
  WriteFile(tmp_.Sub(name), "abc");
  const int64_t before = NowUnixNs();
  const Outcome o = Hash(h.get(), name);
  const int64_t after = NowUnixNs();
  ASSERT_EQ(o.result, RunResult::kOk) << o.error;

  const std::string text = ReadFile(manifest);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const std::vector<std::string> lines = SplitLines(text);
  ASSERT_EQ(lines.size(), 1u);
  const std::string prefix = "a\\x20b\\\\c\\x0a\\xff.txt " + std::string(kAbc) + " ";
  ASSERT_EQ(EscapeName(name) + " " + kAbc + " ", prefix);
  ASSERT_EQ(lines[0].rfind(prefix, 0), 0u) << lines[0];
  const std::string ns = lines[0].substr(prefix.size());
  ASSERT_FALSE(ns.empty());
  ASSERT_EQ(ns.find_first_not_of("0123456789"), std::string::npos) << ns;
  const int64_t t = std::strtoll(ns.c_str(), nullptr, 10);
  EXPECT_GE(t, before);
  EXPECT_LE(t, after);

  struct stat st;
  ASSERT_EQ(::stat(manifest.c_str(), &st), 0);
  EXPECT_EQ(
      st.st_mode & 0777, 0644 & ~[] {
        const mode_t m = ::umask(0);
        ::umask(m);
        return m;
      }());
}

TEST_F(Sha256HandlerTest, ManifestAppendsAndKeepsLinesWholeUnderConcurrency) {
  const std::string manifest = tmp_.Sub("manifest.txt");
  WriteFile(manifest, "earlier line\n");
  auto h = Make(manifest);
  ASSERT_TRUE(h);
  constexpr int kThreads = 8;
  constexpr int kFiles = 25;
  for (int t = 0; t < kThreads; ++t) {
    for (int f = 0; f < kFiles; ++f) {
      WriteFile(tmp_.Sub("f" + std::to_string(t) + "_" + std::to_string(f)), "abc");
    }
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int f = 0; f < kFiles; ++f) {
        const Outcome o = Hash(h.get(), "f" + std::to_string(t) + "_" + std::to_string(f));
        EXPECT_EQ(o.result, RunResult::kOk) << o.error;
      }
    });
  }
  for (std::thread& t : threads) t.join();

  const std::vector<std::string> lines = SplitLines(ReadFile(manifest));
  ASSERT_EQ(lines.size(), 1u + kThreads * kFiles);
  EXPECT_EQ(lines[0], "earlier line");
  std::set<std::string> names;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::istringstream in(lines[i]);
    std::string name, digest, ns, extra;
    in >> name >> digest >> ns;
    EXPECT_FALSE(in >> extra) << lines[i];
    EXPECT_EQ(digest, kAbc) << lines[i];
    EXPECT_FALSE(ns.empty());
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kThreads * kFiles));
}

TEST_F(Sha256HandlerTest, UnopenableManifestFailsMakeHandler) {
  QueueConfig q;
  q.name = "q";
  q.handler.kind = HandlerConfig::Kind::kSha256;
  q.handler.manifest = tmp_.Sub("no-such-dir/manifest.txt");
  auto h = MakeHandler(q, "inst");
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().code, Errc::kIo);
  EXPECT_NE(h.error().what.find("no-such-dir/manifest.txt"), std::string::npos) << h.error().what;
}

TEST_F(Sha256HandlerTest, FifoIsRefusedWithoutBlocking) {
  auto h = Make();
  ASSERT_TRUE(h);
  const std::string fifo = tmp_.Sub("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  auto run = std::async(std::launch::async, [&] { return Hash(h.get(), "pipe"); });
  if (run.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    // Blocked in open(): a writer releases it, so the test can end and fail.
    const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    run.wait();
    if (w >= 0) ::close(w);
    FAIL() << "sha256 handler blocked on a FIFO";
  }
  const Outcome o = run.get();
  EXPECT_EQ(o.result, RunResult::kError);
  EXPECT_NE(o.error.find("not a regular file"), std::string::npos) << o.error;
}

TEST_F(Sha256HandlerTest, SymlinkIsRefused) {
  auto h = Make();
  ASSERT_TRUE(h);
  WriteFile(tmp_.Sub("target"), "abc");
  ASSERT_EQ(::symlink(tmp_.Sub("target").c_str(), tmp_.Sub("link").c_str()), 0);
  const Outcome o = Hash(h.get(), "link");
  EXPECT_EQ(o.result, RunResult::kError);
  EXPECT_NE(o.error.find("not a regular file"), std::string::npos) << o.error;
  EXPECT_TRUE(o.sha256.empty());
}

TEST_F(Sha256HandlerTest, DirectoryIsRefused) {
  auto h = Make();
  ASSERT_TRUE(h);
  tmp_.Mkdir("sub");
  const Outcome o = Hash(h.get(), "sub");
  EXPECT_EQ(o.result, RunResult::kError);
  EXPECT_NE(o.error.find("not a regular file"), std::string::npos) << o.error;
}

TEST_F(Sha256HandlerTest, MissingFileIsVanished) {
  const std::string manifest = tmp_.Sub("manifest.txt");
  auto h = Make(manifest);
  ASSERT_TRUE(h);
  const Outcome o = Hash(h.get(), "gone");
  EXPECT_EQ(o.result, RunResult::kVanished);
  EXPECT_FALSE(o.error.empty());
  EXPECT_EQ(ReadFile(manifest), "");  // no line for a file never hashed
}

TEST_F(Sha256HandlerTest, CancelledTokenInterrupts) {
  const std::string manifest = tmp_.Sub("manifest.txt");
  auto h = Make(manifest);
  ASSERT_TRUE(h);
  WriteFile(tmp_.Sub("abc"), "abc");
  cancel_.Cancel();
  const Outcome o = Hash(h.get(), "abc");
  EXPECT_EQ(o.result, RunResult::kInterrupted);
  EXPECT_TRUE(o.sha256.empty());
  EXPECT_EQ(ReadFile(manifest), "");
}

}  // namespace
}  // namespace dropq
