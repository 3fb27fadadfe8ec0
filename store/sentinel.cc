#include "store/sentinel.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <sys/socket.h>

#include <memory>

#include "store/argv_ref.h"
#include "store/reply.h"

namespace dropq {
namespace {

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextFree>;

}  // namespace

Result<std::string> NumericHost(const std::string& host) {
  struct addrinfo hints = {};
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res); rc != 0) {
    return Error{Errc::kRedis, "cannot resolve " + host + ": " + gai_strerror(rc)};
  }
  char buf[INET6_ADDRSTRLEN] = {};
  const void* addr =
      res->ai_family == AF_INET6
          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr)
          : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr);
  const bool ok = inet_ntop(res->ai_family, addr, buf, sizeof buf) != nullptr;
  freeaddrinfo(res);
  if (!ok) return Error{Errc::kRedis, "cannot resolve " + host};
  return std::string(buf);
}

namespace {

Result<Context> Open(const HostPort& at, std::chrono::milliseconds timeout) {
  struct timeval tv;
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  Context c(redisConnectWithTimeout(at.host.c_str(), at.port, tv));
  if (!c) return Error{Errc::kRedis, at.Display() + ": out of memory"};
  if (c->err) return Error{Errc::kRedis, at.Display() + ": " + c->errstr};
  redisSetTimeout(c.get(), tv);
  return c;
}

Result<Reply> Call(redisContext* c, const std::vector<std::string>& argv) {
  ArgvRef ref(argv);
  auto* r = static_cast<redisReply*>(redisCommandArgv(c, ref.argc(), ref.argv(), ref.lens()));
  if (r == nullptr) return Error{Errc::kRedis, c->err ? c->errstr : "no reply"};
  Reply out = Reply::CopyOf(*r);
  freeReplyObject(r);
  return out;
}

Status Login(redisContext* c, const std::string& user, const std::string& password) {
  if (password.empty()) return OkStatus();
  std::vector<std::string> auth = {"AUTH"};
  if (!user.empty()) auth.push_back(user);
  auth.push_back(password);
  auto r = Call(c, auth);
  if (!r.ok()) return r.error();
  if (r->is_error()) return Error{Errc::kRedis, "AUTH: " + r->str};
  return OkStatus();
}

struct Answer {
  HostPort primary;
  int64_t down_after_ms = -1;
  int64_t replicas = -1;
};

// What sentinel `s` says the primary is, and its down-after-milliseconds.
Result<Answer> Ask(const RedisUrl& url, const HostPort& s, std::chrono::milliseconds timeout) {
  auto c = Open(s, timeout);
  if (!c.ok()) return c.error();
  if (Status st = Login(c->get(), url.sentinel_user, url.sentinel_password); !st) {
    return st.error();
  }
  auto r = Call(c->get(), {"SENTINEL", "get-master-addr-by-name", url.master});
  if (!r.ok()) return r.error();
  if (r->is_error()) return Error{Errc::kRedis, r->str};
  if (r->is_nil()) return Error{Errc::kRedis, "monitors no primary named " + url.master};
  if (r->type != Reply::Type::kArray || r->elements.size() != 2) {
    return Error{Errc::kRedis, "an answer that is not [host, port]"};
  }
  const int64_t port = r->elements[1].AsInt(-1);
  if (port < 1 || port > 65535) return Error{Errc::kRedis, "a bad port in its answer"};
  auto host = NumericHost(r->elements[0].AsString());
  if (!host.ok()) return host.error();
  Answer a{HostPort{*host, static_cast<int>(port)}};
  // Its timing, for the heartbeat_ttl check; a sentinel that will not say is no error.
  auto m = Call(c->get(), {"SENTINEL", "MASTER", url.master});
  if (m.ok() && m->type == Reply::Type::kArray) {
    for (size_t i = 0; i + 1 < m->elements.size(); i += 2) {
      if (m->elements[i].AsString() == "down-after-milliseconds") {
        a.down_after_ms = m->elements[i + 1].AsInt(-1);
      }
    }
  }
  // The replicas it believes up: a primary that lists fewer may have lost
  // one to a promotion (RedisConn::suspect()).
  auto reps = Call(c->get(), {"SENTINEL", "REPLICAS", url.master});
  if (reps.ok() && reps->type == Reply::Type::kArray) {
    a.replicas = 0;
    for (const Reply& rep : reps->elements) {
      for (size_t i = 0; i + 1 < rep.elements.size(); i += 2) {
        if (rep.elements[i].AsString() != "flags") continue;
        const std::string flags = rep.elements[i + 1].AsString();
        if (flags.find("down") == std::string::npos &&
            flags.find("disconnected") == std::string::npos) {
          ++a.replicas;
        }
      }
    }
  }
  return a;
}

// Whether `at` is a primary, asked with the data nodes' credentials.
Status CheckPrimary(const RedisUrl& url, const HostPort& at, std::chrono::milliseconds timeout) {
  auto c = Open(at, timeout);
  if (!c.ok()) return c.error();
  if (Status st = Login(c->get(), url.user, url.password); !st) return st.error();
  auto r = Call(c->get(), {"ROLE"});
  if (!r.ok()) return r.error();
  if (r->is_error()) return Error{Errc::kRedis, at.Display() + ": ROLE: " + r->str};
  const std::string role = r->elements.empty() ? "" : r->elements[0].AsString();
  if (role != "master") {
    return Error{Errc::kRedis, "named " + at.Display() + ", which is a " +
                                   (role.empty() ? std::string("?") : role) + " (stale answer)"};
  }
  return OkStatus();
}

}  // namespace

Result<PrimaryFound> FindPrimary(const RedisUrl& url, std::chrono::milliseconds timeout,
                                 const std::optional<HostPort>& announced) {
  PrimaryFound found;
  if (announced) {
    auto host = NumericHost(announced->host);
    Status st = host.ok() ? CheckPrimary(url, HostPort{*host, announced->port}, timeout)
                          : Status(host.error());
    if (st) {
      found.primary = HostPort{*host, announced->port};
      found.named_by = "+switch-master";
      return found;
    }
    found.misses.push_back("announced " + announced->Display() + ": " + st.error().what);
  }
  for (const HostPort& s : url.sentinels) {
    auto answer = Ask(url, s, timeout);
    if (!answer.ok()) {
      found.misses.push_back("sentinel " + s.Display() + ": " + answer.error().what);
      continue;
    }
    if (Status st = CheckPrimary(url, answer->primary, timeout); !st) {
      found.misses.push_back("sentinel " + s.Display() + ": " + st.error().what);
      continue;
    }
    found.primary = answer->primary;
    found.down_after_ms = answer->down_after_ms;
    found.replicas = answer->replicas;
    found.named_by = s.Display();
    return found;
  }
  std::string why = "no sentinel named a primary for " + url.master;
  for (const std::string& m : found.misses) why += "; " + m;
  return Error{Errc::kRedis, why};
}

}  // namespace dropq
