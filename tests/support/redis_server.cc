#include "tests/support/redis_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/argv_ref.h"
#include "tests/support/wait_for.h"

extern char** environ;

namespace dropq::test {
namespace {

int FreePort() {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(s);
    return 0;
  }
  close(s);
  return ntohs(a.sin_port);
}

void AppendReply(const redisReply* r, std::vector<std::string>* out) {
  if (r == nullptr) return;
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out->emplace_back(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out->push_back(std::to_string(r->integer));
      break;
    case REDIS_REPLY_ARRAY:
      for (size_t i = 0; i < r->elements; ++i) AppendReply(r->element[i], out);
      break;
    default:
      break;
  }
}

}  // namespace

RedisServer::RedisServer(std::vector<std::string> extra_args) : extra_args_(std::move(extra_args)) {
  for (int attempt = 0; attempt < 5 && !ok(); ++attempt) {
    port_ = FreePort();
    if (port_ != 0) Launch();
  }
  if (!ok()) ADD_FAILURE() << "could not start redis-server";
}

RedisServer::~RedisServer() { Stop(true); }

bool RedisServer::Launch() {
  std::vector<std::string> args = {
      "redis-server", "--port",    std::to_string(port_), "--bind", "127.0.0.1",
      "--save",       "",          "--appendonly",        "no",     "--dir",
      dir_.path(),    "--logfile", dir_.Sub("redis.log")};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, "redis-server", nullptr, nullptr, argv.data(), environ) != 0) return false;
  const bool up = WaitFor([&] { return Cmd({"PING"}) == "PONG"; }, std::chrono::seconds(10));
  int status;
  if (!up || waitpid(pid, &status, WNOHANG) == pid) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return false;  // port lost to someone else, or the server failed to start
  }
  pid_ = pid;
  return true;
}

void RedisServer::Stop(bool hard) {
  if (pid_ <= 0) return;
  if (!hard) Cmd({"SHUTDOWN", "NOSAVE"});
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

bool RedisServer::Restart() {
  Stop(true);
  return Launch();
}

bool RedisServer::RestartWith(std::vector<std::string> extra_args) {
  extra_args_ = std::move(extra_args);
  return Restart();
}

std::string RedisServer::Cmd(const std::vector<std::string>& argv) const {
  std::vector<std::string> parts = CmdList(argv);
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out.push_back('\n');
    out += parts[i];
  }
  return out;
}

std::vector<std::string> RedisServer::CmdList(const std::vector<std::string>& argv) const {
  std::vector<std::string> out;
  struct timeval tv = {2, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr || c->err) {
    if (c) redisFree(c);
    return out;
  }
  ArgvRef ref(argv);
  auto* r = static_cast<redisReply*>(redisCommandArgv(c, ref.argc(), ref.argv(), ref.lens()));
  AppendReply(r, &out);
  if (r) freeReplyObject(r);
  redisFree(c);
  return out;
}

long long RedisServer::CmdInt(const std::vector<std::string>& argv) const {
  const std::string s = Cmd(argv);
  try {
    return s.empty() ? 0 : std::stoll(s);
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace dropq::test
