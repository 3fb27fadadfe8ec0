#include "tests/support/e2e_helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "common/escape.h"
#include "common/unique_fd.h"
#include "store/protocol.h"
#include "tests/support/proc_stats.h"
#include "tests/support/wait_for.h"

namespace dropq::test {

std::string WriteScript(const std::string& path, const std::string& body) {
  WriteFile(path, "#!/bin/sh\n" + body);
  EXPECT_EQ(::chmod(path.c_str(), 0755), 0) << path << ": " << std::strerror(errno);
  return path;
}

bool SetAge(const std::string& path, std::chrono::seconds age) {
  struct timespec ts[2];
  ::clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec -= age.count();
  ts[1] = ts[0];
  if (::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    ADD_FAILURE() << "utimensat " << path << ": " << std::strerror(errno);
    return false;
  }
  return true;
}

std::chrono::milliseconds FileAge(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return std::chrono::milliseconds(0);
  struct timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  const int64_t ms =
      (now.tv_sec - st.st_mtim.tv_sec) * 1000LL + (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
  return std::chrono::milliseconds(ms);
}

void WriteAndRename(const std::string& staging, const std::string& dest,
                    const std::string& content) {
  WriteFile(staging, content);
  ASSERT_EQ(::rename(staging.c_str(), dest.c_str()), 0)
      << staging << " -> " << dest << ": " << std::strerror(errno);
}

std::vector<std::string> ReadLines(const std::string& path) { return SplitLines(ReadFile(path)); }

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t nl = s.find('\n', start);
    if (nl == std::string::npos) nl = s.size();
    out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

std::vector<std::string> SplitNul(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    const size_t end = s.find('\0', start);
    if (end == std::string::npos) break;
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

size_t Count(const std::string& haystack, const std::string& needle) {
  if (needle.empty()) return 0;
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

std::map<std::string, int> Tally(const std::vector<std::string>& lines) {
  std::map<std::string, int> out;
  for (const auto& l : lines) ++out[l];
  return out;
}

namespace {

// The jobs never claimed: "<id> <name>" entries of :pending (they have no
// record yet; docs/redis-keys.md), as id -> name.
std::map<std::string, std::string> Unclaimed(const RedisServer& redis, const std::string& queue) {
  std::map<std::string, std::string> out;
  for (const std::string& e :
       redis.CmdList({"LRANGE", DropqEnv::Key(queue, "pending"), "0", "-1"})) {
    const Entry entry = SplitEntry(e);  // "<id> <name>": a job never claimed
    if (entry.rest) out[std::string(entry.id)] = std::string(*entry.rest);
  }
  return out;
}

}  // namespace

std::vector<std::string> JobIds(const RedisServer& redis, const std::string& queue) {
  const std::string prefix = DropqEnv::Key(queue, "job:");
  std::vector<std::string> out;
  for (const std::string& key : redis.CmdList({"KEYS", prefix + "*"})) {
    out.push_back(key.substr(prefix.size()));
  }
  for (const auto& [id, name] : Unclaimed(redis, queue)) out.push_back(id);
  return out;
}

std::map<std::string, std::string> JobRecord(const RedisServer& redis, const std::string& queue,
                                             const std::string& id) {
  const std::vector<std::string> flat =
      redis.CmdList({"HGETALL", DropqEnv::Key(queue, "job:" + id)});
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < flat.size(); i += 2) out[flat[i]] = flat[i + 1];
  if (out.empty()) {
    const auto unclaimed = Unclaimed(redis, queue);
    if (auto it = unclaimed.find(id); it != unclaimed.end()) {
      out = {{"name", it->second}, {"state", "pending"}};
    }
  }
  return out;
}

std::map<std::string, std::vector<std::string>> JobIdsByName(const RedisServer& redis,
                                                             const std::string& queue) {
  std::map<std::string, std::vector<std::string>> out;
  for (const std::string& id : JobIds(redis, queue)) {
    out[JobRecord(redis, queue, id)["name"]].push_back(id);
  }
  return out;
}

std::string OnlyJobId(const RedisServer& redis, const std::string& queue, const std::string& name) {
  const auto by_name = JobIdsByName(redis, queue);
  auto it = by_name.find(name);
  return it == by_name.end() || it->second.size() != 1 ? "" : it->second[0];
}

void ExpectDaemonHealthy(DropqEnv& env, long max_hwm_kib) {
  ASSERT_NE(env.daemon(), nullptr);
  EXPECT_TRUE(env.daemon()->running()) << env.DaemonLog();
  const CommandResult st = env.Ctl({"status"});
  EXPECT_EQ(st.status, 0) << st.out << st.err;
  const long hwm = ProcStatusKiB(env.daemon()->pid(), "VmHWM");
  std::cout << "[ measure  ] dropqd VmHWM " << hwm << " KiB\n";
  EXPECT_GT(hwm, 0);
  EXPECT_LT(hwm, max_hwm_kib);
}

long long StatCounter(const RedisServer& redis, const std::string& queue,
                      const std::string& counter) {
  return redis.CmdInt({"HGET", DropqEnv::Key(queue, "counts"), counter});
}

bool WaitForOutcomes(const RedisServer& redis, long long done, long long failed,
                     std::chrono::milliseconds timeout) {
  return WaitFor(
      [&] {
        return StatCounter(redis, "q", "done") == done &&
               StatCounter(redis, "q", "failed") == failed;
      },
      timeout);
}

std::string FailingForPrefixHandler(const std::string& prefix) {
  return "exec: [\"/bin/sh\", \"-c\", \"case \\\"$1\\\" in " + prefix +
         "*) exit 65;; esac\", \"sh\", \"{name}\"]";
}

void SetDrainTimeout(DropqEnv& env, const std::string& value) {
  std::string y = ReadFile(env.config);
  const std::string from = "drain_timeout: 10s\n";
  const size_t at = y.find(from);
  ASSERT_NE(at, std::string::npos) << "the config has no " << from;
  y.replace(at, from.size(), "drain_timeout: " + value + "\n");
  WriteFile(env.config, y);
}

void DisableAsanQuarantine() {
#if DROPQ_TEST_ASAN
  const char* asan = std::getenv("ASAN_OPTIONS");
  const std::string options =
      std::string(asan != nullptr && *asan != '\0' ? std::string(asan) + ":" : "") +
      "quarantine_size_mb=0";
  ::setenv("ASAN_OPTIONS", options.c_str(), 1);
#endif
}

std::string WriteInstanceConfig(DropqEnv& env, const std::string& instance,
                                const std::string& role) {
  std::string y = ReadFile(env.config);
  const std::string from = "instance: test-1\n";
  const size_t at = y.find(from);
  EXPECT_NE(at, std::string::npos) << "the config has no " << from;
  if (at != std::string::npos) y.replace(at, from.size(), "instance: " + instance + "\n");
  if (!role.empty()) {
    const std::string line = "    role: " + role + "\n";
    const size_t old = y.find("\n    role: ");
    if (old != std::string::npos) {
      y.replace(old + 1, y.find('\n', old + 1) - old, line);
    } else {
      const size_t name = y.find("  - name: ");
      EXPECT_NE(name, std::string::npos);
      if (name != std::string::npos) y.insert(y.find('\n', name) + 1, line);
    }
  }
  const std::string path = env.tmp.Sub(instance + ".yaml");
  WriteFile(path, y);
  return path;
}

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return HexBytes(std::string_view(reinterpret_cast<const char*>(md), len));
}

bool ProcessGone(pid_t pid) {
  if (pid <= 0) return true;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;
  const char state = stat[paren + 2];
  return state == 'Z' || state == 'X';
}

pid_t ReadPid(const std::string& path) {
  const std::string s = ReadFile(path);
  if (s.empty()) return -1;
  return static_cast<pid_t>(std::atol(s.c_str()));
}

std::vector<std::string> FindNamed(const std::string& root, const std::string& name) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           root, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string f = it->path().filename().string();
    // "<job id>.<name>": the file in a flat processing area.
    const bool flat =
        f.size() == 27 + name.size() && f[26] == '.' && f.compare(27, name.size(), name) == 0;
    if (f == name || flat) out.push_back(it->path().string());
  }
  return out;
}

int FreePort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

std::pair<std::string, std::string> GetMetrics(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return {};
  const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::write(fd.get(), req.data(), req.size()) != static_cast<ssize_t>(req.size())) return {};
  std::string resp;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) > 0;) resp.append(buf, n);
  const size_t head = resp.find("\r\n\r\n");
  if (head == std::string::npos) return {};
  return {resp.substr(0, resp.find("\r\n")), resp.substr(head + 4)};
}

}  // namespace dropq::test
