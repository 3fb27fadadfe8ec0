#include "web/console.h"

#include <httplib.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/escape.h"
#include "common/log.h"
#include "ctl/commands.h"
#include "ctl/job_query.h"
#include "store/job_record.h"
#include "web/assets.h"

namespace dropq::web {
namespace {

using httplib::Request;
using httplib::Response;
using nlohmann::json;

constexpr int64_t kMaxPage = 500;      // jobs per page at most
constexpr size_t kMaxBody = 16 << 20;  // an action's ids: 50,000 ids are ~1.4 MB
constexpr int kRateMinutes = 15;       // the overview's chart
constexpr int64_t kRecentFailed = 5;   // failures the overview lists per queue

void SendJson(Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void SendError(Response& res, int status, const std::string& what) {
  SendJson(res, status, {{"error", ToValidUtf8(what)}});
}

// A duration parameter ("15m", "1h", "7d") as the time that long ago.
bool TimeParam(const Request& req, const char* name, std::optional<int64_t>* out,
               std::string* err) {
  if (!req.has_param(name)) return true;
  const std::string v = req.get_param_value(name);
  if (v.empty()) return true;
  auto d = ParseDuration(v);
  if (!d.ok()) {
    *err = std::string(name) + ": " + d.error().what;
    return false;
  }
  *out = NowUnixMs() - d->count();
  return true;
}

int64_t IntParam(const Request& req, const char* name, int64_t def, int64_t lo, int64_t hi) {
  if (!req.has_param(name)) return def;
  const std::string v = req.get_param_value(name);
  char* end = nullptr;
  const long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || end == nullptr || *end != '\0') return def;
  return std::clamp<int64_t>(n, lo, hi);
}

// A job as the queue view lists it; names that are not UTF-8 also as hex.
json SummaryJson(const JobSummary& s) {
  json j = {{"id", ToValidUtf8(s.id)}, {"time_ms", s.time_ms}};
  for (const auto& [field, v] : s.fields) {
    if (field == "attempt" || field == "exit" || field == "enq" || field == "finished" ||
        field == "due" || field == "ms") {
      if (auto n = ParseRecordNumber(field, v); n.ok()) {
        j[field] = *n;
        continue;
      }
    }
    j[field] = ToValidUtf8(v);
    if (field == "name" && !IsValidUtf8(v)) j["name_hex"] = HexBytes(v);
  }
  if (!s.problem.empty()) j["problem"] = ToValidUtf8(s.problem);
  return j;
}

// The record's error history, one entry per failed run, oldest first.
json History(const JobRecord& r) {
  json out = json::array();
  for (const auto& [n, h] : r.history) {
    json entry = {{"attempt", n}};
    if (h.line) entry["summary"] = ToValidUtf8(*h.line);
    if (h.stderr_tail) entry["stderr"] = ToValidUtf8(*h.stderr_tail);
    if (h.response) entry["response"] = ToValidUtf8(*h.response);
    out.push_back(std::move(entry));
  }
  return out;
}

// The ids of an action's body ({"ids": [...]}), or an error.
bool BodyIds(const Request& req, std::vector<std::string>* ids, json* body, std::string* err) {
  *body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (!body->is_object() || !body->contains("ids") || !(*body)["ids"].is_array()) {
    *err = "the body must be a JSON object with \"ids\": [job ids]";
    return false;
  }
  for (const json& id : (*body)["ids"]) {
    if (!id.is_string()) {
      *err = "\"ids\" must hold strings";
      return false;
    }
    ids->push_back(id.get<std::string>());
  }
  return true;
}

}  // namespace

Console::Console(const Config& cfg, const AccessPolicy& access, Options opts)
    : cfg_(cfg), access_(access), opts_(std::move(opts)) {}

Console::~Console() = default;

Status Console::Bind() {
  if (!opts_.tls_cert.empty()) {
    auto tls = std::make_unique<httplib::SSLServer>(opts_.tls_cert.c_str(), opts_.tls_key.c_str());
    if (!tls->is_valid()) {
      return Error{Errc::kIo, "cannot load the TLS certificate " + opts_.tls_cert + " and key " +
                                  opts_.tls_key};
    }
    server_ = std::move(tls);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  const int threads = std::max(opts_.threads, 1);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(kMaxBody);
  server_->set_read_timeout(10, 0);
  server_->set_write_timeout(10, 0);
  server_->set_keep_alive_max_count(100);
  Routes();
  if (opts_.port == 0) {
    port_ = server_->bind_to_any_port(opts_.listen_host);
    if (port_ <= 0) return Error{Errc::kIo, "cannot listen on " + opts_.listen_host};
  } else {
    if (!server_->bind_to_port(opts_.listen_host, opts_.port)) {
      return Error{Errc::kIo, "cannot listen on " + opts_.listen_host + " port " +
                                  std::to_string(opts_.port) + ": " + std::strerror(errno)};
    }
    port_ = opts_.port;
  }
  return OkStatus();
}

void Console::Run() { server_->listen_after_bind(); }

void Console::Stop() {
  if (server_) server_->stop();
}

template <typename Fn>
void Console::WithRedis(Response& res, Fn fn) {
  std::unique_ptr<RedisSync> redis;
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      redis = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!redis) {
    auto c = RedisSync::Connect(cfg_.redis, std::chrono::seconds(2));
    if (!c.ok()) {
      SendError(res, 503, "Redis unreachable: " + c.error().what);
      return;
    }
    redis = std::move(*c);
    // Named, so that CLIENT LIST and MONITOR tell the console's calls apart.
    (void)redis->Command({"CLIENT", "SETNAME", "dropq-web"});
  }
  const ctl::Env env{&cfg_, redis.get(), true};
  try {
    fn(env);
  } catch (const ctl::RedisDown& e) {
    SendError(res, 503, std::string("Redis unreachable: ") + e.what());
    return;  // not kept: the next request makes a new connection
  } catch (const std::exception& e) {
    SendError(res, 500, e.what());
  }
  std::lock_guard lock(mu_);
  idle_.push_back(std::move(redis));
}

bool Console::MayAct(const Request& req, Response& res) {
  switch (access_.CheckAuthorization(req.get_header_value("Authorization"))) {
    case AccessPolicy::Auth::kOk:
      return true;
    case AccessPolicy::Auth::kReadOnly:
      SendError(res, 403, "this console is read-only (started without --token-file)");
      break;
    case AccessPolicy::Auth::kMissing:
      res.set_header("WWW-Authenticate", "Bearer");
      SendError(res, 401, "an action needs the console's token (Authorization: Bearer)");
      break;
    case AccessPolicy::Auth::kWrong:
      res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      SendError(res, 401, "wrong token");
      break;
  }
  LogWarn("console.refused", {{"reason", "token"},
                              {"method", req.method},
                              {"target", req.path},
                              {"from", req.remote_addr}});
  return false;
}

void Console::LogAction(const Request& req, const std::string& action, const std::string& queue,
                        size_t asked, size_t done) {
  LogInfo("console.action", {{"action", action},
                             {"queue", queue},
                             {"asked", static_cast<uint64_t>(asked)},
                             {"done", static_cast<uint64_t>(done)},
                             {"from", req.remote_addr},
                             {"agent", req.get_header_value("User-Agent")}});
}

void Console::Routes() {
  httplib::Server& s = *server_;
  // The page may run only its own script and style, talk only to this
  // server, and be framed by nobody.
  s.set_default_headers({
      {"Content-Security-Policy",
       "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"X-Frame-Options", "DENY"},
      {"Cache-Control", "no-store"},
  });
  s.set_pre_routing_handler([this](const Request& req, Response& res) {
    const std::string host = req.get_header_value("Host");
    if (!access_.HostAllowed(host)) {
      LogWarn(
          "console.refused",
          {{"reason", "host"}, {"host", host}, {"target", req.path}, {"from", req.remote_addr}});
      SendError(res, 403, "Host not allowed: " + host + " (dropq-web --allow-host)");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != "GET" && req.method != "HEAD") {
      const std::string origin = req.get_header_value("Origin");
      if ((req.has_header("Origin") && !access_.OriginAllowed(origin)) ||
          req.get_header_value("Sec-Fetch-Site") == "cross-site") {
        LogWarn("console.refused", {{"reason", "origin"},
                                    {"origin", origin},
                                    {"target", req.path},
                                    {"from", req.remote_addr}});
        SendError(res, 403, "Origin not allowed: " + origin);
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.set_exception_handler([](const Request&, Response& res, std::exception_ptr) {
    SendError(res, 500, "internal error");
  });

  // ------------------------------------------------------------ the page
  for (const char* name : {"index.html", "app.js", "app.css"}) {
    const std::string path = std::string("/") + (std::string(name) == "index.html" ? "" : name);
    s.Get(path, [name](const Request&, Response& res) {
      const Asset a = FindAsset(name);
      res.set_content(std::string(a.body), std::string(a.type));
    });
  }

  // No icon: answered, so that the browser does not log a 404 for it.
  s.Get("/favicon.ico", [](const Request&, Response& res) { res.status = 204; });

  // ------------------------------------------------------------ reading
  s.Get("/api/session", [this](const Request& req, Response& res) {
    const auto auth = access_.CheckAuthorization(req.get_header_value("Authorization"));
    SendJson(res, 200,
             {{"read_only", access_.read_only()},
              {"authorized", auth == AccessPolicy::Auth::kOk},
              {"version", DROPQ_VERSION}});
  });

  s.Get("/api/overview", [this](const Request&, Response& res) {
    WithRedis(res, [&](const ctl::Env& env) {
      const int64_t now = NowUnixMs();
      json queues = json::array();
      for (const QueueConfig& q : cfg_.queues) {
        json j = ctl::QueueStatusJson(env, q, now);
        j["name"] = q.name;
        j["rates"] = ctl::RatesJson(env, q, kRateMinutes);
        // The last few failures, newest first: what failed, and why.
        auto recent = SearchJobs(*env.redis, QueueKeys(cfg_.prefix, q.name), "failed", JobFilter{},
                                 SearchOrder{true}, 0, kRecentFailed, false);
        if (!recent.ok()) throw ctl::RedisDown(recent.error().what);
        json failed = json::array();
        for (const JobSummary& f : recent->jobs) failed.push_back(SummaryJson(f));
        j["recent_failed"] = std::move(failed);
        queues.push_back(std::move(j));
      }
      SendJson(res, 200,
               {{"redis", "up"},
                {"now_ms", now},
                {"queues", queues},
                {"instances", ctl::InstancesJson(env, now)}});
    });
  });

  s.Get(R"(/api/queues/([^/]+)/jobs)", [this](const Request& req, Response& res) {
    const QueueConfig* q = cfg_.FindQueue(req.matches[1]);
    if (q == nullptr) return SendError(res, 404, "no queue " + std::string(req.matches[1]));
    const std::string state = req.has_param("state") ? req.get_param_value("state") : "pending";
    if (!IsSearchableState(state)) return SendError(res, 400, "no job state " + state);
    JobFilter f;
    f.match = req.get_param_value("match");
    f.id_prefix = req.get_param_value("id");
    f.error = req.get_param_value("error");
    std::string err;
    if (!TimeParam(req, "since", &f.since_ms, &err) ||
        !TimeParam(req, "until", &f.until_ms, &err)) {
      return SendError(res, 400, err);
    }
    const int64_t offset = IntParam(req, "offset", 0, 0, INT64_MAX / 2);
    const int64_t limit = IntParam(req, "limit", 50, 1, kMaxPage);
    const bool want_ids = req.get_param_value("ids") == "1";
    WithRedis(res, [&](const ctl::Env& env) {
      auto page = SearchJobs(*env.redis, QueueKeys(cfg_.prefix, q->name), state, f,
                             SearchOrder{true}, offset, limit, want_ids);
      if (!page.ok()) throw ctl::RedisDown(page.error().what);
      json jobs = json::array();
      for (const JobSummary& j : page->jobs) jobs.push_back(SummaryJson(j));
      json out = {{"queue", q->name}, {"state", state}, {"total", page->total},
                  {"offset", offset}, {"limit", limit}, {"jobs", jobs}};
      if (want_ids) {
        json ids = json::array();
        for (const std::string& id : page->all_ids) ids.push_back(ToValidUtf8(id));
        out["ids"] = std::move(ids);
      }
      SendJson(res, 200, out);
    });
  });

  s.Get(R"(/api/jobs/([^/]+))", [this](const Request& req, Response& res) {
    const std::string id = req.matches[1];
    WithRedis(res, [&](const ctl::Env& env) {
      const std::optional<ctl::LoadedJob> job = ctl::LoadJob(env, id);
      if (!job) return SendError(res, 404, "no job " + id + " in any configured queue");
      json j = ctl::JobJson(*job);
      j["history"] = History(job->record);
      // Where the file is now: where it was moved to (or "(deleted)"), else
      // its place in the watched directory.
      const std::optional<std::string>& to = job->record.disposed_to;
      if (to && !to->empty()) {
        j["file_now"] = ToValidUtf8(*to);
      } else if (job->name_ok) {
        j["file_now"] = ToValidUtf8(job->path);
      }
      SendJson(res, 200, j);
    });
  });

  // ------------------------------------------------------------ actions
  for (const bool pause : {true, false}) {
    s.Post(pause ? R"(/api/queues/([^/]+)/pause)" : R"(/api/queues/([^/]+)/resume)",
           [this, pause](const Request& req, Response& res) {
             if (!MayAct(req, res)) return;
             const QueueConfig* q = cfg_.FindQueue(req.matches[1]);
             if (q == nullptr)
               return SendError(res, 404, "no queue " + std::string(req.matches[1]));
             WithRedis(res, [&](const ctl::Env& env) {
               const json r = ctl::SetPausedJson(env, *q, pause);
               LogAction(req, pause ? "pause" : "resume", q->name, 1,
                         r["changed"].get<bool>() ? 1 : 0);
               SendJson(res, 200, r);
             });
           });
  }

  // What every action on a queue's jobs checks first: the token and Origin,
  // the queue, the ids of the body. nullptr after answering.
  const auto bulk = [this](const Request& req, Response& res, std::vector<std::string>* ids,
                           json* body) -> const QueueConfig* {
    if (!MayAct(req, res)) return nullptr;
    const QueueConfig* q = cfg_.FindQueue(req.matches[1]);
    if (q == nullptr) {
      SendError(res, 404, "no queue " + std::string(req.matches[1]));
      return nullptr;
    }
    std::string err;
    if (!BodyIds(req, ids, body, &err)) {
      SendError(res, 400, err);
      return nullptr;
    }
    return q;
  };

  s.Post(R"(/api/queues/([^/]+)/retry)", [this, bulk](const Request& req, Response& res) {
    std::vector<std::string> ids;
    json body;
    const QueueConfig* q = bulk(req, res, &ids, &body);
    if (q == nullptr) return;
    WithRedis(res, [&](const ctl::Env& env) {
      const json r = ctl::RetryIds(env, *q, ids);
      // Asked of the instance that holds the file counts as handed over.
      LogAction(req, "retry", q->name, ids.size(), r["retried"].size() + r["asked"].size());
      SendJson(res, 200, r);
    });
  });

  s.Post(R"(/api/queues/([^/]+)/delete)", [this, bulk](const Request& req, Response& res) {
    std::vector<std::string> ids;
    json body;
    const QueueConfig* q = bulk(req, res, &ids, &body);
    if (q == nullptr) return;
    const std::string state = !body.contains("state")     ? std::string("failed")
                              : body["state"].is_string() ? body["state"].get<std::string>()
                                                          : std::string("?");
    if (state != "failed" && state != "done") {
      return SendError(res, 400, "\"state\" must be \"failed\" or \"done\"");
    }
    WithRedis(res, [&](const ctl::Env& env) {
      const int64_t n = ctl::PurgeIds(env, *q, state, NowUnixMs(), ids);
      LogAction(req, "delete_" + state, q->name, ids.size(), static_cast<size_t>(n));
      SendJson(res, 200, {{"queue", q->name}, {"state", state}, {"deleted", n}});
    });
  });

  s.Post(R"(/api/jobs/([^/]+)/retry)", [this](const Request& req, Response& res) {
    if (!MayAct(req, res)) return;
    const std::string id = req.matches[1];
    WithRedis(res, [&](const ctl::Env& env) {
      const std::optional<ctl::LoadedJob> job = ctl::LoadJob(env, id);
      if (!job) return SendError(res, 404, "no job " + id + " in any configured queue");
      const json r = ctl::RetryIds(env, *job->queue, {id});
      LogAction(req, "retry", job->queue->name, 1, r["retried"].size() + r["asked"].size());
      SendJson(res, 200, r);
    });
  });
}

}  // namespace dropq::web
