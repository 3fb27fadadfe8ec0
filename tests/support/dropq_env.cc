#include "tests/support/dropq_env.h"

#include <dirent.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "tests/support/wait_for.h"

namespace dropq::test {

DropqEnv::DropqEnv()
    : inbox(tmp.Mkdir("inbox")), done(tmp.Mkdir("done")), failed(tmp.Mkdir("failed")) {}

DropqEnv::~DropqEnv() {
  if (daemon_ && daemon_->running()) Stop(15, std::chrono::seconds(30));
}

std::string DropqEnv::WriteConfig(const QueueSpec& q, const std::string& top_extra) {
  auto disposition = [&](const std::string& d) -> std::string {
    if (d == "done") return "{ move_to: " + done + " }";
    if (d == "failed") return "{ move_to: " + failed + " }";
    return d;
  };
  std::string y;
  y += redis_yaml.empty() ? "redis:\n  url: " + redis.url() + "\n  prefix: dropq\n"
                          : redis_yaml + "  prefix: dropq\n";
  y += "instance: test-1\nlog_level: debug\ndrain_timeout: 10s\n";
  y += top_extra;
  y += "queues:\n";
  y += "  - name: " + q.name + "\n";
  y += "    watch: " + inbox + "\n";
  y += "    workers: " + std::to_string(q.workers) + "\n";
  if (q.capacity > 0) y += "    capacity: " + std::to_string(q.capacity) + "\n";
  y += "    settle: " + q.settle + "\n";
  y += "    handler:\n";
  size_t start = 0;
  while (start <= q.handler.size()) {
    size_t nl = q.handler.find('\n', start);
    if (nl == std::string::npos) nl = q.handler.size();
    y += "      " + q.handler.substr(start, nl - start) + "\n";
    start = nl + 1;
  }
  y += "    on_success: " + disposition(q.on_success) + "\n";
  y += "    on_failure: " + disposition(q.on_failure) + "\n";
  if (!q.retry.empty()) y += "    retry: " + q.retry + "\n";
  start = 0;
  while (!q.extra.empty() && start <= q.extra.size()) {
    size_t nl = q.extra.find('\n', start);
    if (nl == std::string::npos) nl = q.extra.size();
    y += "    " + q.extra.substr(start, nl - start) + "\n";
    start = nl + 1;
  }
  config = tmp.Sub("dropq.yaml");
  WriteFile(config, y);
  return config;
}

bool DropqEnv::Start() {
  ++starts_;
  const std::string log = tmp.Sub("dropqd." + std::to_string(starts_) + ".log");
  daemon_ =
      std::make_unique<Process>(std::vector<std::string>{DROPQD_BIN, "--config", config}, log);
  return WaitFor(
      [&] { return Exists(log) && ReadFile(log).find("scan.done") != std::string::npos; },
      std::chrono::seconds(30));
}

void DropqEnv::StartWrapped(const std::vector<std::string>& launcher) {
  ++starts_;
  std::vector<std::string> argv = launcher;
  argv.insert(argv.end(), {DROPQD_BIN, "--config", config});
  daemon_ = std::make_unique<Process>(argv, tmp.Sub("dropqd." + std::to_string(starts_) + ".log"));
}

std::optional<int> DropqEnv::Stop(int sig, std::chrono::milliseconds timeout) {
  if (!daemon_) return std::nullopt;
  daemon_->Signal(sig);
  return daemon_->Wait(timeout);
}

std::string DropqEnv::DaemonLog() const { return daemon_ ? daemon_->Log() : ""; }

CommandResult DropqEnv::Ctl(std::vector<std::string> args) {
  args.insert(args.begin(), {DROPQCTL_BIN, "--config", config});
  return RunCommand(args);
}

namespace {
// True if anything but (empty) directories is below `dir`.
bool HoldsFiles(const std::string& dir) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_directory(ec) || it->is_symlink(ec)) return true;
  }
  return false;
}
}  // namespace

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    // The default processing area is listed only while it holds something,
    // so "the inbox is empty" also means "no file is left half-way".
    if (n == ".dropq-processing" && !HoldsFiles(dir + "/" + n)) continue;
    out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

long RssKiB(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

}  // namespace dropq::test
