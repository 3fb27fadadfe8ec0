// dropqd under systemd with stderr connected to the journal: each event is a
// structured journald entry (MESSAGE=, PRIORITY=, DROPQ_QUEUE=, DROPQ_JOB_ID=,
// DROPQ_PATH=...), so that `journalctl DROPQ_QUEUE=q` finds a queue's lines.
//
// libsystemd sends entries to the fixed path /run/systemd/journal/socket. The
// test runs dropqd in a mount namespace of its own (unshare(1)) where /run is
// an empty tmpfs and /run/systemd/journal is a directory of the test's holding
// its own datagram socket: the test stands where journald would, and reads the
// native protocol (systemd's "Native Journal Protocol" document). The host's
// journal, if there is one, is never touched.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;
using Entry = std::map<std::string, std::string>;

// Parses one datagram of the native protocol: fields "NAME=value\n", or
// "NAME\n" + 64-bit little-endian length + value + "\n" for values holding a
// newline. nullopt if it is malformed.
std::optional<Entry> ParseNative(const std::string& d) {
  Entry e;
  size_t i = 0;
  while (i < d.size()) {
    const size_t nl = d.find('\n', i);
    if (nl == std::string::npos) return std::nullopt;
    const size_t eq = d.find('=', i);
    if (eq != std::string::npos && eq < nl) {
      e[d.substr(i, eq - i)] = d.substr(eq + 1, nl - eq - 1);
      i = nl + 1;
      continue;
    }
    const std::string name = d.substr(i, nl - i);
    if (nl + 1 + 8 > d.size()) return std::nullopt;
    uint64_t len = 0;
    for (int b = 7; b >= 0; --b) len = (len << 8) | static_cast<unsigned char>(d[nl + 1 + b]);
    const size_t at = nl + 1 + 8;
    if (at + len + 1 > d.size() || d[at + len] != '\n') return std::nullopt;
    e[name] = d.substr(at, len);
    i = at + len + 1;
  }
  return e;
}

// The journal's socket, read by a thread of its own so that dropqd never
// waits on a full socket buffer while the test is busy elsewhere.
class FakeJournal {
 public:
  explicit FakeJournal(const std::string& path) {
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) return;  // would be cut: not ok()
    path.copy(a.sun_path, sizeof a.sun_path - 1);
    ok_ = fd_.get() >= 0 && ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (ok_) reader_ = std::thread([this] { Read(); });
  }
  ~FakeJournal() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
  }
  bool ok() const { return ok_; }

  std::vector<Entry> Entries() {
    std::lock_guard lock(mu_);
    return entries_;
  }
  int malformed() {
    std::lock_guard lock(mu_);
    return malformed_;
  }
  // Entries whose DROPQ_EVENT is `event`.
  std::vector<Entry> Events(const std::string& event) {
    std::vector<Entry> out;
    for (Entry& e : Entries()) {
      if (e["DROPQ_EVENT"] == event) out.push_back(e);
    }
    return out;
  }

 private:
  void Read() {
    std::vector<char> buf(256 * 1024);
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) continue;
      const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
      if (n <= 0) continue;
      std::optional<Entry> e = ParseNative(std::string(buf.data(), static_cast<size_t>(n)));
      std::lock_guard lock(mu_);
      if (e)
        entries_.push_back(std::move(*e));
      else
        ++malformed_;
    }
  }

  UniqueFd fd_;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::thread reader_;
  std::mutex mu_;
  std::vector<Entry> entries_;  // guarded by mu_
  int malformed_ = 0;           // guarded by mu_
};

// Runs "$@" in a new mount namespace whose /run is empty but for
// /run/systemd/journal, bound to `journal_dir`, with JOURNAL_STREAM naming
// the stderr it is given, as systemd sets it for a service whose
// StandardError= is the journal. unshare needs CAP_SYS_ADMIN (root), or,
// failing that, an unprivileged user namespace: the first that works here.
std::vector<std::string> InJournalNamespace(const std::string& journal_dir) {
  const char* script =
      "set -e\n"
      "mount -t tmpfs -o mode=0755 tmpfs /run\n"
      "mkdir -p /run/systemd/journal\n"
      "mount --bind \"$0\" /run/systemd/journal\n"
      "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2)\n"
      "export JOURNAL_STREAM\n"
      "exec \"$@\"\n";
  std::vector<std::string> argv = {"unshare", "--mount", "--propagation", "private"};
  if (::geteuid() != 0 || RunCommand({"unshare", "--mount", "true"}).status != 0) {
    argv.push_back("--map-root-user");
  }
  argv.insert(argv.end(), {"/bin/sh", "-c", script, journal_dir});
  return argv;
}

TEST(JournalTest, EventsAreStructuredEntriesWithTheirFields) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: sha256";
  env.WriteConfig(q);  // log_level: debug, so job.start and job.done are logged
  const std::string jdir = env.tmp.Mkdir("journal");
  FakeJournal journal(jdir + "/socket");
  ASSERT_TRUE(journal.ok());

  env.StartWrapped(InJournalNamespace(jdir));
  ASSERT_TRUE(WaitFor([&] { return !journal.Events("scan.done").empty(); }, seconds(30)))
      << "no scan.done entry (can this machine make a mount namespace?); dropqd's output: "
      << env.DaemonLog();

  // A name with a newline travels in the binary form of the protocol.
  const std::string odd = "two\nlines.txt";
  WriteFile(env.inbox + "/hello world.txt", "hello");
  WriteFile(env.inbox + "/" + odd, "odd");
  ASSERT_TRUE(WaitFor([&] { return journal.Events("job.done").size() == 2; }, seconds(30)))
      << env.DaemonLog();

  const std::string id = OnlyJobId(env.redis, "q", "hello world.txt");
  ASSERT_FALSE(id.empty());
  const std::string path = env.inbox + "/hello world.txt";
  int seen = 0;
  for (Entry& e : journal.Events("job.done")) {
    if (e["DROPQ_JOB_ID"] != id) continue;
    ++seen;
    EXPECT_EQ(e["DROPQ_QUEUE"], "q");
    EXPECT_EQ(e["DROPQ_PATH"], path);
    EXPECT_EQ(e["DROPQ_ATTEMPT"], "1");
    EXPECT_EQ(e["PRIORITY"], "7");  // debug
    EXPECT_EQ(e["SYSLOG_IDENTIFIER"], "dropqd");
    // MESSAGE= is the line an operator reads, values escaped as in the text log.
    EXPECT_EQ(e["MESSAGE"].rfind("job.done queue=q job=" + id + " path=", 0), 0U) << e["MESSAGE"];
  }
  EXPECT_EQ(seen, 1);
  // job.start came first, with the same fields.
  int started = 0;
  for (Entry& e : journal.Events("job.start")) {
    if (e["DROPQ_JOB_ID"] == id && e["DROPQ_PATH"] == path) ++started;
  }
  EXPECT_EQ(started, 1);

  // The raw name in DROPQ_PATH (journalctl matches it as it is on disk); an
  // escaped one in MESSAGE, which stays one line.
  const std::string odd_id = OnlyJobId(env.redis, "q", odd);
  ASSERT_FALSE(odd_id.empty());
  int odd_seen = 0;
  for (Entry& e : journal.Events("job.done")) {
    if (e["DROPQ_JOB_ID"] != odd_id) continue;
    ++odd_seen;
    EXPECT_EQ(e["DROPQ_PATH"], env.inbox + "/" + odd);
    EXPECT_EQ(e["MESSAGE"].find('\n'), std::string::npos) << e["MESSAGE"];
  }
  EXPECT_EQ(odd_seen, 1);

  // Every entry has a priority and an event; info lines say "6".
  for (Entry& e : journal.Entries()) {
    EXPECT_FALSE(e["PRIORITY"].empty());
    EXPECT_FALSE(e["DROPQ_EVENT"].empty()) << e["MESSAGE"];
    EXPECT_EQ(e.count("CODE_FILE"), 0U) << "dropqd's own source location is noise here";
  }
  ASSERT_FALSE(journal.Events("redis.up").empty());
  EXPECT_EQ(journal.Events("redis.up")[0]["PRIORITY"], "6");
  EXPECT_EQ(journal.malformed(), 0);

  EXPECT_EQ(env.Stop(SIGTERM), 0);
  // The reader thread may still be catching up with the last datagrams.
  EXPECT_TRUE(WaitFor([&] { return !journal.Events("dropqd.exit").empty(); }, seconds(10)));
  // Nothing went to stderr as well: each event was written once.
  EXPECT_EQ(env.DaemonLog().find("job.done"), std::string::npos) << env.DaemonLog();
}

TEST(JournalTest, WithoutAJournalSocketLinesCarryAPriorityPrefix) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  env.WriteConfig(q);
  // The directory exists but nothing listens in it: journald is not there.
  const std::string jdir = env.tmp.Mkdir("journal");
  env.StartWrapped(InJournalNamespace(jdir));
  ASSERT_TRUE(WaitFor([&] { return env.DaemonLog().find("<6>scan.done") != std::string::npos; },
                      seconds(30)))
      << env.DaemonLog();
  WriteFile(env.inbox + "/a.txt", "a");
  ASSERT_TRUE(WaitFor([&] { return env.DaemonLog().find("<7>job.done") != std::string::npos; },
                      seconds(30)))
      << env.DaemonLog();
  EXPECT_EQ(env.Stop(SIGTERM), 0);
  // Every line carries a prefix and no timestamp: the journal adds its own.
  for (const std::string& line : SplitLines(env.DaemonLog())) {
    ASSERT_GE(line.size(), 3U);
    EXPECT_EQ(line[0], '<') << line;
    EXPECT_EQ(line[2], '>') << line;
  }
}

TEST(JournalTest, AJournalStreamThatIsNotStderrIsIgnored) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  env.WriteConfig(q);
  // Inherited from a parent whose stderr was the journal, but this stderr is
  // a file: lines stay text with timestamps.
  ::setenv("JOURNAL_STREAM", "1:1", 1);
  const bool started = env.Start();
  ::unsetenv("JOURNAL_STREAM");
  ASSERT_TRUE(started) << env.DaemonLog();
  EXPECT_EQ(env.DaemonLog().find("<6>"), std::string::npos) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("Z info  scan.done"), std::string::npos) << env.DaemonLog();
  EXPECT_EQ(env.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace dropq::test
