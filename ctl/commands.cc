#include "ctl/commands.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/clock.h"
#include "common/escape.h"
#include "common/job.h"
#include "store/keys.h"
#include "store/scripts.h"
#include "workers/disposition.h"

namespace dropq::ctl {
namespace {

using nlohmann::json;

// A Redis call that failed at the connection level ends the command with 69.
struct RedisDown : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Reply Call(const Env& env, const std::vector<std::string>& argv) {
  auto r = env.redis->Command(argv);
  if (!r.ok()) throw RedisDown(r.error().what);
  return std::move(*r);
}

Reply Eval(const Env& env, const Script& s, const std::string& base,
           const std::vector<std::string>& args) {
  auto r = env.redis->Eval(s, base, args);
  if (!r.ok()) throw RedisDown(r.error().what);
  return std::move(*r);
}

void PrintJson(const json& j) {
  std::printf("%s\n", j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "dropqctl: %s\n", what.c_str());
  return kFailed;
}

// Fields whose values are integers in JSON.
bool IsNumericField(const std::string& k) {
  static const std::set<std::string> kNumeric = {
      "size", "attempt", "enq",         "claimed", "started",  "finished",  "ms",
      "exit", "signal",  "interrupted", "retried", "failures", "tempfails", "due"};
  return kNumeric.count(k) != 0;
}

bool IsTimeField(const std::string& k) {
  return k == "enq" || k == "claimed" || k == "started" || k == "finished" || k == "due";
}

std::string FormatTime(int64_t unix_ms) {
  const time_t secs = unix_ms / 1000;
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(unix_ms % 1000));
  return out;
}

// Where a job lives: the queue whose key holds it, or nullptr.
const QueueConfig* FindJob(const Env& env, const std::string& id) {
  for (const auto& q : env.cfg->queues) {
    if (Call(env, {"EXISTS", QueueKeys(env.cfg->prefix, q.name).Job(id)}).AsInt() == 1) return &q;
  }
  return nullptr;
}

}  // namespace

int Status(const Env& env) try {
  json queues = json::object();
  std::vector<std::vector<std::string>> rows;
  const int64_t now = NowUnixMs();
  for (const auto& q : env.cfg->queues) {
    const QueueKeys k(env.cfg->prefix, q.name);
    const int64_t pending = Call(env, {"LLEN", k.Pending()}).AsInt();
    const int64_t active = Call(env, {"ZCARD", k.Active()}).AsInt();
    const int64_t done = Call(env, {"HGET", k.Stats(), "done"}).AsInt(0);
    const int64_t failed = Call(env, {"ZCARD", k.Failed()}).AsInt();
    const int64_t scheduled = Call(env, {"ZCARD", k.Scheduled()}).AsInt();
    double oldest_s = 0;
    // LPUSH in, RPOP out: the oldest pending job is the last element.
    const Reply oldest = Call(env, {"LINDEX", k.Pending(), "-1"});
    if (!oldest.is_nil()) {
      const int64_t enq = Call(env, {"HGET", k.Job(oldest.AsString()), "enq"}).AsInt(now);
      oldest_s = static_cast<double>(std::max<int64_t>(0, now - enq)) / 1000.0;
    }
    queues[q.name] = {{"pending", pending},     {"active", active},
                      {"done", done},           {"failed", failed},
                      {"scheduled", scheduled}, {"oldest_pending_age_s", oldest_s}};
    char age[32];
    std::snprintf(age, sizeof age, "%.1fs", oldest_s);
    rows.push_back({q.name, std::to_string(pending), std::to_string(active),
                    std::to_string(scheduled), std::to_string(done), std::to_string(failed),
                    pending > 0 ? age : "-"});
  }
  if (env.json) {
    PrintJson({{"queues", queues}});
  } else {
    std::printf("%-20s %9s %8s %9s %10s %8s %16s\n", "QUEUE", "PENDING", "ACTIVE", "SCHEDULED",
                "DONE", "FAILED", "OLDEST_PENDING");
    for (const auto& r : rows) {
      std::printf("%-20s %9s %8s %9s %10s %8s %16s\n", r[0].c_str(), r[1].c_str(), r[2].c_str(),
                  r[3].c_str(), r[4].c_str(), r[5].c_str(), r[6].c_str());
    }
  }
  return kOk;
} catch (const RedisDown& e) {
  std::fprintf(stderr, "dropqctl: %s\n", e.what());
  return kUnavailable;
}

int Show(const Env& env, const std::string& id) try {
  const QueueConfig* q = FindJob(env, id);
  if (q == nullptr) return Fail("no job " + EscapeName(id) + " in any configured queue");
  const QueueKeys k(env.cfg->prefix, q->name);
  const Reply all = Call(env, {"HGETALL", k.Job(id)});
  std::map<std::string, std::string> f;
  for (size_t i = 0; i + 1 < all.elements.size(); i += 2) {
    f[all.elements[i].AsString()] = all.elements[i + 1].AsString();
  }
  const std::string name = f["name"];
  if (env.json) {
    json j = {{"id", id}, {"queue", q->name}};
    for (const auto& [key, v] : f) {
      if (IsNumericField(key)) {
        try {
          j[key] = std::stoll(v);
          continue;
        } catch (const std::exception&) {
        }
      }
      j[key] = ToValidUtf8(v);
    }
    j["path"] = ToValidUtf8(q->watch + "/" + name);
    if (!IsValidUtf8(name)) {
      j["name_hex"] = HexBytes(name);  // the exact bytes beside the readable form
      j["path_hex"] = HexBytes(q->watch + "/" + name);
    }
    if (auto ident = FileIdentity::Parse(f["ident"])) {
      j["inode"] = ident->ino;
      j["mtime_ns"] = ident->mtime_ns;
    }
    PrintJson(j);
    return kOk;
  }
  // Human form: one "key: value" per line, names escaped as in the logs and
  // the manifest, times readable, the stderr tail last and indented.
  std::printf("%-12s %s\n", "id:", id.c_str());
  std::printf("%-12s %s\n", "queue:", q->name.c_str());
  std::printf("%-12s %s\n", "state:", f["state"].c_str());
  std::printf("%-12s %s\n", "name:", EscapeName(name).c_str());
  std::printf("%-12s %s\n", "path:", EscapeName(q->watch + "/" + name).c_str());
  for (const auto& [key, v] : f) {
    if (key == "state" || key == "name" || key == "stderr") continue;
    std::string shown = EscapeName(v);
    if (IsTimeField(key)) {
      try {
        shown = FormatTime(std::stoll(v)) + " (" + v + ")";
      } catch (const std::exception&) {
      }
    }
    std::printf("%-12s %s\n", (key + ":").c_str(), shown.c_str());
  }
  if (!f["stderr"].empty()) {
    std::printf("stderr:\n");
    std::string line;
    for (char c : f["stderr"]) {
      if (c == '\n') {
        std::printf("  | %s\n", EscapeText(line).c_str());
        line.clear();
      } else {
        line.push_back(c);
      }
    }
    if (!line.empty()) std::printf("  | %s\n", EscapeText(line).c_str());
  }
  return kOk;
} catch (const RedisDown& e) {
  std::fprintf(stderr, "dropqctl: %s\n", e.what());
  return kUnavailable;
}

namespace {

// One retry: RETRY_PREPARE (the name is taken, so the watcher will not make
// a second job), put the file back, RETRY_COMMIT (pending, attempts reset).
// A failure after PREPARE is undone with RETRY_ABORT. Returns "" or the error.
std::string RetryOne(const Env& env, const QueueConfig& q, const std::string& id) {
  const QueueKeys k(env.cfg->prefix, q.name);
  const Reply prep = Eval(env, RetryPrepareScript(), k.base(), {id});
  if (prep.is_error()) {
    const std::string& e = prep.str;
    const size_t sp = e.find(' ');
    return sp == std::string::npos ? e : e.substr(sp + 1);
  }
  const std::string name = prep.elements.at(0).AsString();
  const std::string where = prep.elements.at(1).AsString();
  const std::string previous = prep.elements.at(3).AsString();
  const std::string home = q.watch + "/" + name;
  struct stat st;
  std::string err;
  if (!where.empty() && where != "(deleted)" && where != home) {
    if (lstat(where.c_str(), &st) != 0) {
      if (lstat(home.c_str(), &st) != 0) err = "file not found at " + EscapeName(where);
      // else: an earlier retry already moved it back
    } else if (int rc = RenameNoReplace(where, home); rc != 0) {
      err = "cannot move " + EscapeName(where) + " back to " + EscapeName(home) + ": " +
            std::strerror(rc);
    }
  } else if (lstat(home.c_str(), &st) != 0) {
    err = "file not found at " + EscapeName(home);
  }
  if (!err.empty()) {
    // What :files said before (e.g. the marker of a newer file kept under
    // this name) goes back; our own id never stays there.
    Eval(env, RetryAbortScript(), k.base(), {id, previous == id ? "" : previous});
    return err;
  }
  const Reply commit = Eval(env, RetryCommitScript(), k.base(), {id, std::to_string(NowUnixMs())});
  if (commit.is_error()) return commit.str;
  return "";
}

}  // namespace

int Retry(const Env& env, const std::string& id) try {
  const QueueConfig* q = FindJob(env, id);
  if (q == nullptr) return Fail("no job " + EscapeName(id) + " in any configured queue");
  const std::string err = RetryOne(env, *q, id);
  if (env.json) {
    PrintJson({{"retried", err.empty() ? json::array({id}) : json::array()},
               {"errors", err.empty() ? json::object() : json{{id, err}}}});
  } else if (err.empty()) {
    std::printf("%s: requeued\n", id.c_str());
  }
  if (!err.empty()) return Fail(id + ": " + err);
  return kOk;
} catch (const RedisDown& e) {
  std::fprintf(stderr, "dropqctl: %s\n", e.what());
  return kUnavailable;
}

int RetryAllFailed(const Env& env, const std::string& queue) try {
  const QueueConfig* q = env.cfg->FindQueue(queue);
  if (q == nullptr) {
    std::fprintf(stderr, "dropqctl: no queue %s in %s\n", EscapeName(queue).c_str(),
                 env.cfg->path.c_str());
    return kUsage;
  }
  const Reply ids = Call(env, {"ZRANGE", QueueKeys(env.cfg->prefix, q->name).Failed(), "0", "-1"});
  json retried = json::array();
  json errors = json::object();
  for (const auto& e : ids.elements) {
    const std::string id = e.AsString();
    const std::string err = RetryOne(env, *q, id);
    if (err.empty()) {
      retried.push_back(id);
    } else {
      errors[id] = err;
      std::fprintf(stderr, "dropqctl: %s: %s\n", id.c_str(), err.c_str());
    }
  }
  if (env.json) {
    PrintJson({{"retried", retried}, {"errors", errors}});
  } else {
    std::printf("%zu requeued, %zu failed\n", retried.size(), errors.size());
  }
  return errors.empty() ? kOk : kFailed;
} catch (const RedisDown& e) {
  std::fprintf(stderr, "dropqctl: %s\n", e.what());
  return kUnavailable;
}

}  // namespace dropq::ctl
