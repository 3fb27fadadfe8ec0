#include "tests/support/sentinels.h"

#include <gtest/gtest.h>

#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {

namespace {

std::string SentinelCmd(int port, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"redis-cli", "-p", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  const CommandResult r = RunCommand(argv, std::chrono::seconds(10));
  return r.out;
}

}  // namespace

Sentinels::Sentinels(int down_after_ms, int failover_timeout_ms) {
  a_ = std::make_unique<RedisServer>(
      std::vector<std::string>{"--appendonly", "yes", "--appendfsync", "always"});
  if (!a_->ok()) return;
  b_ = std::make_unique<RedisServer>(
      std::vector<std::string>{"--appendonly", "yes", "--appendfsync", "always", "--replicaof",
                               "127.0.0.1", std::to_string(a_->port())});
  if (!b_->ok()) return;
  if (!WaitFor(
          [&] {
            return b_->Cmd({"INFO", "replication"}).find("master_link_status:up") !=
                   std::string::npos;
          },
          std::chrono::seconds(20))) {
    ADD_FAILURE() << "the replica did not sync";
    return;
  }
  for (int i = 0; i < 3; ++i) {
    const int port = FreePort();
    const std::string conf = dir_.Sub("sentinel-" + std::to_string(i) + ".conf");
    WriteFile(conf, "port " + std::to_string(port) + "\nbind 127.0.0.1\ndir " + dir_.path() +
                        "\nsentinel monitor dropq 127.0.0.1 " + std::to_string(a_->port()) +
                        " 2\nsentinel down-after-milliseconds dropq " +
                        std::to_string(down_after_ms) + "\nsentinel failover-timeout dropq " +
                        std::to_string(failover_timeout_ms) +
                        "\n"
                        "sentinel parallel-syncs dropq 1\n");
    sentinels_.push_back(
        std::make_unique<Process>(std::vector<std::string>{"redis-sentinel", conf},
                                  dir_.Sub("sentinel-" + std::to_string(i) + ".log")));
    ports_.push_back(port);
  }
  // Every sentinel answers, and knows the replica and the other sentinels.
  ok_ = WaitFor(
      [&] {
        for (int port : ports_) {
          const std::string m = SentinelCmd(port, {"SENTINEL", "master", "dropq"});
          if (m.find("num-other-sentinels\n2") == std::string::npos ||
              m.find("num-slaves\n1") == std::string::npos) {
            return false;
          }
        }
        return true;
      },
      std::chrono::seconds(30));
  if (!ok_) ADD_FAILURE() << "the sentinels did not settle";
}

std::string Sentinels::RedisYaml(const std::vector<int>& first_ports) const {
  std::string list;
  for (int port : first_ports) list += "\"127.0.0.1:" + std::to_string(port) + "\", ";
  for (size_t i = 0; i < ports_.size(); ++i) {
    list += (i ? ", " : "") + std::string("\"127.0.0.1:") + std::to_string(ports_[i]) + "\"";
  }
  return "redis:\n  sentinels: [" + list + "]\n  master: dropq\n";
}

RedisServer* Sentinels::Primary() {
  std::string addr;
  for (int port : ports_) {
    const std::string a = SentinelCmd(port, {"SENTINEL", "get-master-addr-by-name", "dropq"});
    if (a.empty()) continue;
    if (!addr.empty() && a != addr) return nullptr;
    addr = a;
  }
  for (RedisServer* s : {a_.get(), b_.get()}) {
    if (s->pid() > 0 && addr == "127.0.0.1\n" + std::to_string(s->port()) + "\n") return s;
  }
  return nullptr;
}

RedisServer* Sentinels::Replica() {
  RedisServer* p = Primary();
  return p == a_.get() ? b_.get() : p == b_.get() ? a_.get() : nullptr;
}

bool Sentinels::WaitForPrimary(RedisServer* server, std::chrono::milliseconds timeout) {
  return WaitFor(
      [&] { return Primary() == server && server->Cmd({"ROLE"}).rfind("master", 0) == 0; },
      timeout);
}

bool Sentinels::WaitForReplica(RedisServer* server, std::chrono::milliseconds timeout) {
  const std::string me = "name\n127.0.0.1:" + std::to_string(server->port()) + "\n";
  return WaitFor(
      [&] {
        const std::string info = server->Cmd({"INFO", "replication"});
        if (info.find("role:slave") == std::string::npos ||
            info.find("master_link_status:up") == std::string::npos) {
          return false;
        }
        for (int port : ports_) {
          const std::string r = SentinelCmd(port, {"SENTINEL", "replicas", "dropq"});
          const size_t at = r.find(me);
          if (at == std::string::npos) return false;
          // Its flags say only "slave": not s_down, not disconnected.
          const size_t flags = r.find("\nflags\n", at);
          if (flags == std::string::npos || r.compare(flags, 13, "\nflags\nslave\n") != 0) {
            return false;
          }
        }
        return true;
      },
      timeout, std::chrono::milliseconds(200));
}

bool Sentinels::Failover() {
  RedisServer* next = Replica();
  if (next == nullptr) return false;
  if (SentinelCmd(ports_[0], {"SENTINEL", "FAILOVER", "dropq"}).find("OK") == std::string::npos) {
    return false;
  }
  return WaitForPrimary(next, std::chrono::seconds(30));
}

}  // namespace dropq::test
