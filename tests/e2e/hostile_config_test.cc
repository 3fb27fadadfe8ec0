// Config files no one should write, given to the real dropqd (and dropqctl):
// binary garbage, 100 MB of text, 100 MB of NUL bytes, invalid UTF-8 and NUL
// bytes inside a good file, /dev/zero. Each must end promptly in exit 78 with
// one line on stderr naming the file, and without the file's size showing up
// in dropqd's memory: the peak RSS of each run is measured with wait4(2).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/e2e_helpers.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace dropq::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::string_literals::operator""s;

constexpr long kMiB = 1024 * 1024;
// Far below the 100 MB a wholesale read would hold (twice, with the parser's
// stream), and above what dropqd needs with ASan and UBSan linked in.
constexpr long kMaxPeakRssKiB = 96 * 1024;

struct Measured {
  int status = -1;          // exit status; 128 + signal if killed
  std::string err;          // stderr
  long peak_rss_kib = 0;    // ru_maxrss of this one child (wait4)
  milliseconds elapsed{0};  // wall time
};

// Runs `argv` (stdout discarded, stderr captured) and measures it. A run that
// outlives `timeout` is killed (status 128 + SIGKILL).
Measured RunMeasured(const TempDir& tmp, const std::vector<std::string>& args,
                     milliseconds timeout = seconds(20)) {
  const std::string err_path = tmp.Sub("stderr");
  ::unlink(err_path.c_str());
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  Measured m;
  pid_t pid = -1;
  const auto start = std::chrono::steady_clock::now();
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_EQ(rc, 0) << "posix_spawn " << args[0];
  if (rc != 0) return m;
  int st = 0;
  struct rusage ru {};
  bool killed = false;
  for (;;) {
    const pid_t w = ::wait4(pid, &st, WNOHANG, &ru);
    if (w == pid) break;
    if (w < 0) {
      ADD_FAILURE() << "wait4 failed";
      return m;
    }
    if (!killed && std::chrono::steady_clock::now() - start > timeout) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  m.elapsed = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  m.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  // KiB on Linux. posix_spawn shares this process's memory until the exec,
  // which counts toward the child's peak: this is an upper bound of dropqd's.
  m.peak_rss_kib = ru.ru_maxrss;
  m.err = ReadFile(err_path);
  return m;
}

class HostileConfigTest : public ::testing::Test {
 protected:
  // dropqd --config, dropqd --check-config and dropqctl status all refuse
  // `path` with exit 78, one line starting "<program>: <path>" and holding
  // `message`, promptly and in bounded memory.
  void ExpectRefused(const std::string& path, const std::string& message) {
    const std::vector<std::vector<std::string>> runs = {
        {DROPQD_BIN, "--config", path},
        {DROPQD_BIN, "--check-config", "--config", path},
        {DROPQCTL_BIN, "--config", path, "status"}};
    for (const auto& argv : runs) {
      SCOPED_TRACE(argv[0] + " " + argv[1]);
      const Measured m = RunMeasured(tmp_, argv);
      const std::string program = argv[0].substr(argv[0].rfind('/') + 1);
      EXPECT_EQ(m.status, 78) << m.err;
      EXPECT_EQ(m.err.rfind(program + ": " + path, 0), 0u) << m.err;
      EXPECT_NE(m.err.find(message), std::string::npos) << m.err;
      EXPECT_EQ(Count(m.err, "\n"), 1u) << m.err;
      EXPECT_EQ(m.err.find('\0'), std::string::npos);
      EXPECT_EQ(m.err.back(), '\n');
      EXPECT_LT(m.err.size(), 1024u) << m.err.substr(0, 1024);
      EXPECT_LT(m.elapsed, seconds(5)) << m.elapsed.count() << " ms";
      EXPECT_LT(m.peak_rss_kib, kMaxPeakRssKiB);
      std::fprintf(stderr, "[ measured ] %s %s: exit %d in %lld ms, peak RSS %ld KiB\n",
                   program.c_str(), argv[1].c_str(), m.status,
                   static_cast<long long>(m.elapsed.count()), m.peak_rss_kib);
    }
  }

  // A good config (one queue watching an existing directory) with `extra`
  // appended, for the damage inside an otherwise valid file.
  std::string GoodConfig(const std::string& extra = "") {
    return "redis:\n  url: redis://127.0.0.1:1/0\ninstance: t\nqueues:\n  - name: q\n"
           "    watch: " +
           inbox_ + "\n    handler:\n      builtin: noop\n" + extra;
  }

  // Writes `mib` MiB of `chunk` repeated, in pieces: the test itself need not
  // hold the whole file.
  std::string WriteBig(const std::string& name, const std::string& head, const std::string& chunk,
                       long mib) {
    const std::string path = tmp_.Sub(name);
    std::FILE* f = std::fopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    if (f == nullptr) return path;
    std::fwrite(head.data(), 1, head.size(), f);
    std::string block;
    while (static_cast<long>(block.size()) < kMiB) block += chunk;
    block.resize(kMiB);
    for (long i = 0; i < mib; ++i) std::fwrite(block.data(), 1, block.size(), f);
    EXPECT_EQ(std::fclose(f), 0);
    return path;
  }

  TempDir tmp_;
  const std::string inbox_ = tmp_.Mkdir("inbox");
};

TEST_F(HostileConfigTest, TheGoodConfigPasses) {
  // The baseline the damaged variants below start from.
  const std::string path = tmp_.Sub("good.yaml");
  WriteFile(path, GoodConfig());
  const Measured m = RunMeasured(tmp_, {DROPQD_BIN, "--check-config", "--config", path});
  EXPECT_EQ(m.status, 0) << m.err;
  std::fprintf(stderr, "[ measured ] good config --check-config: peak RSS %ld KiB\n",
               m.peak_rss_kib);
}

TEST_F(HostileConfigTest, BinaryGarbage) {
  std::mt19937 rng(42);  // the same bytes every run
  std::string garbage(64 * 1024, '\0');
  for (char& c : garbage) c = static_cast<char>(rng() & 0xff);
  const std::string path = tmp_.Sub("garbage.yaml");
  WriteFile(path, garbage);
  ExpectRefused(path, ": ");

  // Garbage that starts like a UTF-16 and a UTF-32 byte-order mark, which
  // the YAML reader honours.
  WriteFile(path, "\xff\xfe"s + garbage);
  ExpectRefused(path, ": ");
  WriteFile(path, "\x00\x00\xfe\xff"s + garbage);
  ExpectRefused(path, ": ");
}

TEST_F(HostileConfigTest, HundredMegabytesOfText) {
  // Valid YAML all the way: a good config, then 100 MiB of comment lines.
  const std::string path =
      WriteBig("big.yaml", GoodConfig(), "# padding padding padding padding padding\n", 100);
  ExpectRefused(path, std::to_string(100 * kMiB + GoodConfig().size()) +
                          " bytes: a config larger than 1 MiB is refused");
}

TEST_F(HostileConfigTest, HundredMegabytesOfNulBytes) {
  const std::string path = tmp_.Sub("zeros.yaml");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 100 * kMiB), 0);  // sparse: costs no disk
  ::close(fd);
  ExpectRefused(path, "104857600 bytes: a config larger than 1 MiB is refused");
}

TEST_F(HostileConfigTest, JustOverAndUnderTheCap) {
  const std::string over = WriteBig("over.yaml", GoodConfig(), "#\n", 1);
  ExpectRefused(over, "a config larger than 1 MiB is refused");
  // 1 MiB exactly is read (and here it is valid).
  std::string text = GoodConfig();
  text += std::string(static_cast<size_t>(kMiB) - text.size() - 1, '#') + "\n";
  const std::string path = tmp_.Sub("cap.yaml");
  WriteFile(path, text);
  const Measured m = RunMeasured(tmp_, {DROPQD_BIN, "--check-config", "--config", path});
  EXPECT_EQ(m.status, 0) << m.err;
}

TEST_F(HostileConfigTest, EndlessDevice) {
  // No size to look at: reading stops at the cap.
  ExpectRefused("/dev/zero", "a config larger than 1 MiB is refused");
}

TEST_F(HostileConfigTest, InvalidUtf8AndNulBytesInAGoodFile) {
  const std::string path = tmp_.Sub("bytes.yaml");
  // Invalid UTF-8 in a value that must be a name.
  WriteFile(path, "instance: t\xff\xfe\xc0\n" + GoodConfig().substr(GoodConfig().find("queues:")));
  ExpectRefused(path, ":");
  // ... in a key.
  WriteFile(path, GoodConfig("    wor\xffkers: 2\n"));
  ExpectRefused(path, ":");
  // ... in a path.
  WriteFile(path, GoodConfig("    on_success: { move_to: /nonexistent/\xff\xfe }\n"));
  ExpectRefused(path, ":");
  // A NUL byte inside a value, inside a key, and ending the file.
  WriteFile(path, GoodConfig("    workers: 2\0\n"s));
  ExpectRefused(path, ":");
  WriteFile(path, GoodConfig("    work\0ers: 2\n"s));
  ExpectRefused(path, ":");
  WriteFile(path, GoodConfig() + "\0"s);
  ExpectRefused(path, ":");
  WriteFile(path, "\0"s + GoodConfig());
  ExpectRefused(path, ":");
}

}  // namespace
}  // namespace dropq::test
