#include "ctl/commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/beneath.h"
#include "common/clock.h"
#include "common/escape.h"
#include "common/job.h"
#include "common/job_id.h"
#include "common/rename.h"
#include "ctl/job_query.h"
#include "store/job_record.h"
#include "store/keys.h"
#include "store/protocol.h"
#include "store/retry_files.h"
#include "store/scripts.h"

namespace dropq::ctl {
namespace {

using nlohmann::json;

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
      "size",   "attempt",     "enq",     "claimed",  "started",   "finished", "ms",         "exit",
      "signal", "interrupted", "retried", "failures", "tempfails", "due",      "http_status"};
  return kNumeric.count(k) != 0;
}

bool IsTimeField(const std::string& k) {
  return k == "enq" || k == "claimed" || k == "started" || k == "finished" || k == "due";
}

// REQUIRES: 0 <= unix_ms <= kMaxRecordTimeMs (what DecodeJobRecord() lets through).
std::string FormatTime(int64_t unix_ms) {
  const time_t secs = unix_ms / 1000;
  struct tm tm;
  if (gmtime_r(&secs, &tm) == nullptr) return std::to_string(unix_ms);
  char buf[40];
  if (strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) == 0) return std::to_string(unix_ms);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(unix_ms % 1000));
  return out;
}

// A record that does not decode cleanly is still shown; each problem is one
// line on stderr, so stdout keeps its shape for scripts.
void WarnProblems(const std::string& id, const JobRecord& r) {
  for (const FieldProblem& p : r.problems) {
    std::fprintf(stderr, "dropqctl: warning: job %s: field `%s`: %s\n", EscapeName(id).c_str(),
                 EscapeName(p.field).c_str(), p.message.c_str());
  }
}

// The keys dropqctl adds to the JSON form itself; a record field of the same
// name (only a hand-made one can have it) is left out and reported.
bool IsOwnJsonKey(const std::string& k) {
  static const std::set<std::string> kOwn = {"id",       "queue", "path",     "name_hex",
                                             "path_hex", "inode", "mtime_ns", "problems"};
  return kOwn.count(k) != 0;
}

// Where a job lives.
struct Located {
  const QueueConfig* queue = nullptr;  // nullptr: in no configured queue
  // A job never claimed has no record (docs/redis-keys.md): its name, from
  // its :pending entry.
  std::optional<std::string> unclaimed_name;
};

Located FindJob(const Env& env, const std::string& id) {
  for (const auto& q : env.cfg->queues) {
    if (Call(env, {"EXISTS", QueueKeys(env.cfg->prefix, q.name).Job(id)}).AsInt() == 1) {
      return {&q, std::nullopt};
    }
  }
  if (id.empty() || id.find(' ') != std::string::npos) return {};
  // Its :pending entry "<id> <name>", read in slices: each call stays short
  // however long the backlog.
  constexpr int64_t kSlice = 1000;
  for (const auto& q : env.cfg->queues) {
    const std::string key = QueueKeys(env.cfg->prefix, q.name).Pending();
    for (int64_t start = 0;; start += kSlice) {
      const Reply r =
          Call(env, {"LRANGE", key, std::to_string(start), std::to_string(start + kSlice - 1)});
      for (const Reply& e : r.elements) {
        const Entry entry = SplitEntry(e.str);
        if (entry.id == id && entry.rest) return {&q, std::string(*entry.rest)};
      }
      if (static_cast<int64_t>(r.elements.size()) < kSlice) break;
    }
  }
  return {};
}

// When job `id` was enqueued: a layout 1 record's `enq` field (`enq`, may be
// null), else the time in the id; nullopt for neither (an id made by hand).
std::optional<int64_t> EnqueuedMs(const std::string& id, const std::string* enq) {
  if (enq != nullptr) {
    if (auto ms = ParseRecordNumber("enq", *enq); ms.ok()) return *ms;
  }
  return JobIdTimeMs(id);
}

// The queue named `queue`, or nullptr after a line on stderr (exit 64).
const QueueConfig* QueueOrUsage(const Env& env, const std::string& queue) {
  const QueueConfig* q = env.cfg->FindQueue(queue);
  if (q == nullptr) {
    std::fprintf(stderr, "dropqctl: no queue %s in %s\n", EscapeName(queue).c_str(),
                 env.cfg->path.c_str());
  }
  return q;
}

// Redis is unreachable: one line on stderr, exit 69.
int Down(const RedisDown& e) {
  std::fprintf(stderr, "dropqctl: %s\n", e.what());
  return kUnavailable;
}

}  // namespace

json QueueStatusJson(const Env& env, const QueueConfig& q, int64_t now) {
  const QueueKeys k(env.cfg->prefix, q.name);
  const Reply layout = Call(env, {"GET", k.Layout()});
  const bool upgraded =
      layout.type == Reply::Type::kString && layout.str == std::to_string(kLayout);
  if (!upgraded && (layout.type == Reply::Type::kString ||
                    Call(env, {"TYPE", k.base() + "stats"}).str == "hash")) {
    // Layout 1's keys not upgraded yet (no dropqd of this version has
    // connected), or a later layout: the counts below may be misread. (A
    // queue no dropqd has used has no keys at all.)
    std::fprintf(stderr,
                 "dropqctl: warning: queue %s: Redis layout %s, this dropqctl reads layout %d "
                 "(dropqd upgrades a queue when it connects; docs/redis-keys.md)\n",
                 q.name.c_str(),
                 layout.type == Reply::Type::kString ? EscapeName(layout.str).c_str() : "missing",
                 kLayout);
  }
  const int64_t pending = Call(env, {"LLEN", k.Pending()}).AsInt();
  const int64_t active = Call(env, {"ZCARD", k.Active()}).AsInt();
  const int64_t done = Call(env, {"HGET", k.Counts(), "done"}).AsInt(0);
  const int64_t failed = Call(env, {"ZCARD", k.Failed()}).AsInt();
  const int64_t scheduled = Call(env, {"ZCARD", k.Scheduled()}).AsInt();
  const Reply paused_by = Call(env, {"GET", k.Paused()});
  const bool paused = !paused_by.is_nil();
  double oldest_s = 0;
  bool age_known = true;
  // LPUSH in, RPOP out: the oldest pending job is the last element.
  const Reply oldest = Call(env, {"LINDEX", k.Pending(), "-1"});
  if (!oldest.is_nil()) {
    const Entry entry = SplitEntry(oldest.str);
    const std::string oldest_id(entry.id);
    // Enqueued when its id was made; a layout 1 record says so in `enq`.
    // A hand-edited enq is reported instead of turning into a wild age; a
    // job whose time is nowhere (a hand-pushed id) counts as just enqueued.
    int64_t enq = JobIdTimeMs(oldest_id).value_or(now);
    if (!entry.rest) {
      const Reply enq_reply = Call(env, {"HGET", k.Job(oldest_id), "enq"});
      if (enq_reply.type == Reply::Type::kString) {
        auto parsed = ParseRecordNumber("enq", enq_reply.str);
        if (parsed.ok()) {
          enq = *parsed;
        } else {
          age_known = false;
          std::fprintf(stderr, "dropqctl: warning: job %s: %s\n", EscapeName(oldest_id).c_str(),
                       parsed.error().what.c_str());
        }
      }
    }
    oldest_s = static_cast<double>(std::max<int64_t>(0, now - enq)) / 1000.0;
  }
  json jq = {{"pending", pending}, {"active", active},       {"done", done},
             {"failed", failed},   {"scheduled", scheduled}, {"oldest_pending_age_s", oldest_s},
             {"paused", paused}};
  if (!age_known) jq["oldest_pending_age_s"] = nullptr;
  if (paused) jq["paused_by"] = ToValidUtf8(paused_by.str);  // "<unix ms> <host>"
  // Limits that hold across instances, and a server's request to wait.
  // Redis' own count of what is left (its clock, not this host's).
  const int64_t left_ms = Call(env, {"PTTL", k.base() + "throttled_until"}).AsInt(-2);
  const int64_t until_ms = left_ms > 0 ? now + left_ms : 0;
  jq["throttled_until"] = nullptr;
  if (until_ms > now) {
    const Reply why = Call(env, {"GET", k.base() + "throttled_reason"});
    jq["throttled_until"] = until_ms;
    jq["throttled_reason"] = why.type == Reply::Type::kString ? ToValidUtf8(why.str) : "";
  }
  const auto count = [&](const char* field) {
    return Call(env, {"HGET", k.Counts(), field}).AsInt(0);
  };
  jq["rate_limit"] = nullptr;
  jq["max_active"] = nullptr;
  if (q.rate_max > 0) {
    jq["rate_limit"] = {
        {"max", q.rate_max}, {"per_ms", q.rate_per.count()}, {"held", count("rate_limited")}};
  }
  if (q.max_active > 0) {
    const int64_t running = Call(env, {"ZCARD", k.base() + "running"}).AsInt();
    jq["max_active"] = {
        {"max", q.max_active}, {"running", running}, {"held", count("active_limited")}};
  }
  jq["throttled"] = count("throttled");
  return jq;
}

json RatesJson(const Env& env, const QueueConfig& q, int minutes) {
  const QueueKeys k(env.cfg->prefix, q.name);
  // Redis' clock names the minutes (RATES): read it, not this host's.
  const Reply t = Call(env, {"TIME"});
  const int64_t now_min = t.elements.empty() ? NowUnixMs() / 60000 : t.elements[0].AsInt() / 60;
  std::vector<std::vector<std::string>> batch;
  for (int64_t m = now_min - minutes + 1; m <= now_min; ++m) {
    batch.push_back(
        {"HMGET", k.base() + "rate:" + std::to_string(m), "enqueued", "done", "failed"});
  }
  auto replies = env.redis->Pipeline(batch);
  if (!replies.ok()) throw RedisDown(replies.error().what);
  json out = json::array();
  for (size_t i = 0; i < replies->size(); ++i) {
    const Reply& r = (*replies)[i];
    const auto at = [&r](size_t n) {
      return n < r.elements.size() ? r.elements[n].AsInt(0) : int64_t{0};
    };
    out.push_back({{"minute", now_min - minutes + 1 + static_cast<int64_t>(i)},
                   {"enqueued", at(0)},
                   {"done", at(1)},
                   {"failed", at(2)}});
  }
  return out;
}

json InstancesJson(const Env& env, int64_t now) {
  json out = json::array();
  const Reply names = Call(env, {"SMEMBERS", InstancesKey(env.cfg->prefix)});
  std::vector<std::string> sorted;
  for (const Reply& n : names.elements) sorted.push_back(n.AsString());
  std::sort(sorted.begin(), sorted.end());
  for (const std::string& name : sorted) {
    const std::string key = InstanceKey(env.cfg->prefix, name);
    const Reply info = Call(env, {"GET", key});
    json j = {{"name", ToValidUtf8(name)}, {"alive", info.type == Reply::Type::kString}};
    if (info.type == Reply::Type::kString) {
      const json beat = json::parse(info.str, nullptr, /*allow_exceptions=*/false);
      if (beat.is_object()) {
        for (const char* f : {"pid", "version", "host", "active", "roles", "started_ms"}) {
          if (beat.contains(f)) j[f] = beat[f];
        }
        // The age of the last renewal: its TTL less what is left of it.
        const int64_t left = Call(env, {"PTTL", key}).AsInt(-2);
        if (beat.contains("ttl_ms") && beat["ttl_ms"].is_number_integer() && left >= 0) {
          j["heartbeat_age_s"] =
              static_cast<double>(std::max<int64_t>(0, beat["ttl_ms"].get<int64_t>() - left)) /
              1000.0;
        }
      }
    }
    out.push_back(j);
  }
  (void)now;
  return out;
}

json StatusJson(const Env& env) {
  json queues = json::object();
  const int64_t now = NowUnixMs();
  for (const auto& q : env.cfg->queues) queues[q.name] = QueueStatusJson(env, q, now);
  return {{"queues", queues}};
}

int Status(const Env& env) try {
  const json status = StatusJson(env);
  if (env.json) {
    PrintJson(status);
    return kOk;
  }
  std::printf("%-20s %9s %8s %9s %10s %8s %16s\n", "QUEUE", "PENDING", "ACTIVE", "SCHEDULED",
              "DONE", "FAILED", "OLDEST_PENDING");
  std::vector<std::string> notes;  // limits and throttles, one line per queue below the table
  for (const auto& q : env.cfg->queues) {
    const json& jq = status["queues"][q.name];
    const auto n = [&jq](const char* f) { return std::to_string(jq[f].get<int64_t>()); };
    std::string age = "?";
    if (jq["pending"].get<int64_t>() == 0) {
      age = "-";
    } else if (jq["oldest_pending_age_s"].is_number()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1fs", jq["oldest_pending_age_s"].get<double>());
      age = buf;
    }
    std::printf("%-20s %9s %8s %9s %10s %8s %16s\n",
                (q.name + (jq["paused"].get<bool>() ? " (paused)" : "")).c_str(),
                n("pending").c_str(), n("active").c_str(), n("scheduled").c_str(),
                n("done").c_str(), n("failed").c_str(), age.c_str());
    std::string note;
    const auto add = [&note](const std::string& part) {
      note += (note.empty() ? "" : "; ") + part;
    };
    if (jq["throttled_until"].is_number()) {
      std::string t = "throttled until " + FormatTime(jq["throttled_until"].get<int64_t>());
      const std::string why = jq.value("throttled_reason", "");
      if (!why.empty()) t += " (" + EscapeText(why) + ")";
      add(t);
    }
    if (jq["rate_limit"].is_object()) {
      const json& r = jq["rate_limit"];
      add("rate_limit " + std::to_string(r["max"].get<int64_t>()) + " per " +
          std::to_string(r["per_ms"].get<int64_t>()) +
          " ms (claims held back: " + std::to_string(r["held"].get<int64_t>()) + ")");
    }
    if (jq["max_active"].is_object()) {
      const json& m = jq["max_active"];
      add("max_active " + std::to_string(m["max"].get<int64_t>()) + " (running " +
          std::to_string(m["running"].get<int64_t>()) +
          ", claims held back: " + std::to_string(m["held"].get<int64_t>()) + ")");
    }
    if (!note.empty()) notes.push_back(q.name + ": " + note);
  }
  for (const std::string& line : notes) std::printf("%s\n", line.c_str());
  return kOk;
} catch (const RedisDown& e) {
  return Down(e);
}

std::optional<LoadedJob> LoadJob(const Env& env, const std::string& id) {
  const Located where = FindJob(env, id);
  const QueueConfig* q = where.queue;
  if (q == nullptr) return std::nullopt;
  const QueueKeys k(env.cfg->prefix, q->name);
  std::vector<std::pair<std::string, std::string>> pairs;
  bool record = !where.unclaimed_name;
  if (where.unclaimed_name) {
    // No record: what its entries hold, as the record CLAIM makes.
    pairs = {{"name", *where.unclaimed_name}, {"state", "pending"}};
    const Reply file = Call(env, {"HGET", k.Files(), *where.unclaimed_name});
    const Entry entry = SplitEntry(file.type == Reply::Type::kString ? file.str : "");
    if (entry.id == id && entry.rest) {
      pairs.emplace_back("ident", *entry.rest);
    } else if (entry.id == id) {
      record = true;  // claimed meanwhile: its record is the truth now
    }
  }
  if (record) {
    const Reply all = Call(env, {"HGETALL", k.Job(id)});
    pairs.clear();
    pairs.reserve(all.elements.size() / 2 + 2);
    for (size_t i = 0; i + 1 < all.elements.size(); i += 2) {
      pairs.emplace_back(all.elements[i].AsString(), all.elements[i + 1].AsString());
    }
  }
  // Empty: the record went away meanwhile (purged), reported as no job.
  // Otherwise the size and enqueue time that layout 1 kept in the record
  // are shown from the ident and the id.
  if (!pairs.empty()) {
    const auto has = [&pairs](std::string_view f) {
      return std::any_of(pairs.begin(), pairs.end(), [f](const auto& p) { return p.first == f; });
    };
    const auto ident =
        std::find_if(pairs.begin(), pairs.end(), [](const auto& p) { return p.first == "ident"; });
    if (!has("size") && ident != pairs.end()) {
      if (auto fi = FileIdentity::Parse(ident->second)) {
        pairs.emplace_back("size", std::to_string(fi->size));
      }
    }
    if (!has("enq")) {
      if (auto ms = JobIdTimeMs(id)) pairs.emplace_back("enq", std::to_string(*ms));
    }
  }
  auto decoded = DecodeJobRecord(pairs);
  if (!decoded.ok()) return std::nullopt;
  LoadedJob job{id, q, std::move(*decoded), "", "", false};
  // The path only for a name that is one of the watched directory: a
  // hand-made "../x" must not be shown as if it were there.
  job.name_ok = job.record.name && ValidJobName(*job.record.name);
  job.name = job.record.name.value_or("");
  job.path = q->watch + "/" + job.name;
  return job;
}

json JobJson(const LoadedJob& job) {
  const JobRecord& r = job.record;
  json j = json::object();
  json problems = json::array();
  for (const auto& [key, v] : r.fields) {
    if (IsOwnJsonKey(key)) {
      problems.push_back({{"field", key}, {"message", "hidden by dropqctl's own key"}});
      continue;
    }
    if (IsNumericField(key)) {
      if (auto n = ParseRecordNumber(key, v); n.ok()) {
        j[key] = *n;
        continue;
      }
    }
    j[key] = ToValidUtf8(v);
  }
  for (const FieldProblem& p : r.problems) {
    problems.push_back({{"field", p.field}, {"message", p.message}});
  }
  j["id"] = job.id;
  j["queue"] = job.queue->name;
  if (job.name_ok) {
    j["path"] = ToValidUtf8(job.path);
    if (!IsValidUtf8(job.name)) {
      j["name_hex"] = HexBytes(job.name);  // the exact bytes beside the readable form
      j["path_hex"] = HexBytes(job.path);
    }
  }
  if (r.ident) {
    j["inode"] = r.ident->ino;
    j["mtime_ns"] = r.ident->mtime_ns;
  }
  if (!problems.empty()) j["problems"] = problems;
  return j;
}

int Show(const Env& env, const std::string& id) try {
  const std::optional<LoadedJob> job = LoadJob(env, id);
  if (!job) return Fail("no job " + EscapeName(id) + " in any configured queue");
  const JobRecord& r = job->record;
  const QueueConfig* q = job->queue;
  WarnProblems(id, r);
  const bool name_ok = job->name_ok;
  const std::string& name = job->name;
  const std::string& path = job->path;
  if (env.json) {
    PrintJson(JobJson(*job));
    return kOk;
  }
  // Human form: one "key: value" per line, names escaped as in the logs and
  // the manifest, times readable, the stderr tail last and indented.
  std::printf("%-12s %s\n", "id:", EscapeName(id).c_str());
  std::printf("%-12s %s\n", "queue:", q->name.c_str());
  std::printf("%-12s %s\n", "state:", EscapeName(r.state.value_or("")).c_str());
  std::printf("%-12s %s\n", "name:", EscapeName(name).c_str());
  if (name_ok) std::printf("%-12s %s\n", "path:", EscapeName(path).c_str());
  for (const auto& [key, v] : r.fields) {
    if (key == "state" || key == "name" || key == "stderr" || key == "response") continue;
    std::string shown = EscapeName(v);
    if (IsTimeField(key)) {
      if (auto t = ParseRecordNumber(key, v); t.ok()) shown = FormatTime(*t) + " (" + v + ")";
    }
    std::printf("%-12s %s\n", (EscapeName(key) + ":").c_str(), shown.c_str());
  }
  // The handler's own words last, one indented line each.
  const auto block = [](const char* label, const std::optional<std::string>& text) {
    if (!text || text->empty()) return;
    std::printf("%s:\n", label);
    std::string line;
    for (char c : *text) {
      if (c == '\n') {
        std::printf("  | %s\n", EscapeText(line).c_str());
        line.clear();
      } else {
        line.push_back(c);
      }
    }
    if (!line.empty()) std::printf("  | %s\n", EscapeText(line).c_str());
  };
  block("response", r.response);
  block("stderr", r.stderr_tail);
  return kOk;
} catch (const RedisDown& e) {
  return Down(e);
}

// One retry: RETRY_PREPARE (the name is taken, so the watcher will not make
// a second job), put the file back, RETRY_COMMIT (pending, attempts reset).
// A failure after PREPARE is undone with RETRY_ABORT. Returns "" or the error.
std::string RetryOne(const Env& env, const QueueConfig& q, const std::string& id,
                     std::string* asked) {
  const QueueKeys k(env.cfg->prefix, q.name);
  // A file this process cannot see (moved on another host, or into a
  // directory its user cannot read) is put back by the instance that moved
  // it: asked through Redis (store/retry_files.h).
  const Reply f = Call(env, {"HMGET", k.Job(id), "state", "name", "disposed_to", "owner"});
  // `retrying`: a retry that stopped half-way (its commit's answer lost) is taken up again.
  if (f.elements.size() == 4 &&
      (f.elements[0].str == "failed" || f.elements[0].str == "retrying") &&
      !f.elements[1].is_nil()) {
    const std::string name = f.elements[1].str;
    const std::string where = f.elements[2].str;
    const std::string owner = f.elements[3].str;
    if (SeeRetryFile(q, name, where) == RetryFileSeen::kElsewhere) {
      if (owner.empty()) return "file not found at " + EscapeName(where);
      if (Call(env, {"EXISTS", InstanceKey(env.cfg->prefix, owner)}).AsInt() != 1) {
        return "the file is at " + EscapeName(where) + ", which this process cannot see, and " +
               EscapeName(owner) +
               " (the instance that moved it) is not running: retry it where the file is";
      }
      for (const Reply& w : {Call(env, {"HDEL", k.Job(id), "retry_error"}),
                             Call(env, {"LPUSH", k.RetryRequests(owner), id})}) {
        if (w.is_error()) return "cannot ask " + EscapeName(owner) + ": " + w.str;
      }
      if (asked != nullptr) *asked = owner;
      return "";
    }
  }
  const Reply prep = Eval(env, RetryPrepareScript(), k.base(), {id});
  if (prep.is_error()) {
    const std::string& e = prep.str;
    const size_t sp = e.find(' ');
    return sp == std::string::npos ? e : e.substr(sp + 1);
  }
  auto prepared = DecodeRetryPrepare(prep);
  if (!prepared.ok()) return prepared.error().what;
  const std::string err = MoveBackForRetry(q, prepared->name, prepared->disposed_to);
  if (!err.empty()) {
    // What :files said before (e.g. the marker of a newer file kept under
    // this name) goes back; our own id never stays there.
    const std::string& previous = prepared->previous;
    Eval(env, RetryAbortScript(), k.base(), {id, previous == id ? "" : previous});
    return err;
  }
  const Reply commit = Eval(env, RetryCommitScript(), k.base(), {id, std::to_string(NowUnixMs())});
  if (commit.is_error()) return commit.str;
  return "";
}

namespace {

// After asking `owner` to retry job `id`: waits up to `timeout` for the job
// to leave `failed` (requeued) or for the reason it could not. Returns "" or why.
std::string AwaitAsked(const Env& env, const QueueConfig& q, const std::string& id,
                       const std::string& owner, std::chrono::milliseconds timeout) {
  const QueueKeys k(env.cfg->prefix, q.name);
  const int64_t deadline = NowUnixMs() + timeout.count();
  for (;;) {
    const Reply f = Call(env, {"HMGET", k.Job(id), "state", "retry_error"});
    if (f.elements.size() == 2) {
      if (f.elements[0].is_nil()) return "the job's record went away";
      if (!f.elements[1].is_nil()) return owner + " could not: " + f.elements[1].str;
      if (f.elements[0].str != "failed" && f.elements[0].str != "retrying") return "";
    }
    if (NowUnixMs() >= deadline) {
      return "asked " + owner + " (which holds the file); not done within " +
             std::to_string(timeout.count() / 1000) + "s: see `dropqctl show " + id + "`";
    }
    usleep(100 * 1000);
  }
}

}  // namespace

int Retry(const Env& env, const std::string& id) try {
  const QueueConfig* q = FindJob(env, id).queue;
  if (q == nullptr) return Fail("no job " + EscapeName(id) + " in any configured queue");
  std::string asked;
  std::string err = RetryOne(env, *q, id, &asked);
  // The instance that moved the file checks its requests every few seconds.
  if (err.empty() && !asked.empty()) err = AwaitAsked(env, *q, id, asked, std::chrono::seconds(20));
  if (env.json) {
    json j = {{"retried", err.empty() ? json::array({id}) : json::array()},
              {"errors", err.empty() ? json::object() : json{{id, err}}}};
    if (!asked.empty()) j["asked"] = {{id, asked}};
    PrintJson(j);
  } else if (err.empty()) {
    std::printf("%s: requeued%s\n", id.c_str(), asked.empty() ? "" : (" by " + asked).c_str());
  }
  if (!err.empty()) return Fail(id + ": " + err);
  return kOk;
} catch (const RedisDown& e) {
  return Down(e);
}

json RetryIds(const Env& env, const QueueConfig& q, const std::vector<std::string>& ids) {
  json retried = json::array();
  json asked = json::object();
  json errors = json::object();
  for (const std::string& id : ids) {
    std::string instance;
    const std::string err = RetryOne(env, q, id, &instance);
    if (!err.empty()) {
      errors[ToValidUtf8(id)] = ToValidUtf8(err);
    } else if (!instance.empty()) {
      asked[ToValidUtf8(id)] = ToValidUtf8(instance);
    } else {
      retried.push_back(ToValidUtf8(id));
    }
  }
  return {{"retried", retried}, {"asked", asked}, {"errors", errors}};
}

int64_t PurgeIds(const Env& env, const QueueConfig& q, const std::string& state, int64_t before,
                 const std::vector<std::string>& ids) {
  const QueueKeys k(env.cfg->prefix, q.name);
  int64_t purged = 0;
  for (size_t i = 0; i < ids.size(); i += kSearchSlice) {
    std::vector<std::string> args = {state, std::to_string(before), std::to_string(kSearchSlice)};
    args.insert(args.end(), ids.begin() + i, ids.begin() + std::min(ids.size(), i + kSearchSlice));
    const Reply r = Eval(env, PurgeScript(), k.base(), args);
    if (r.is_error()) throw std::runtime_error(r.str);
    purged += r.AsInt(0);
  }
  return purged;
}

int RetryMatching(const Env& env, const std::string& queue, const JobFilter& filter) try {
  const QueueConfig* q = QueueOrUsage(env, queue);
  if (q == nullptr) return kUsage;
  auto page = SearchJobs(*env.redis, QueueKeys(env.cfg->prefix, q->name), "failed", filter,
                         SearchOrder{false}, 0, 0, /*want_all_ids=*/true);
  if (!page.ok()) throw RedisDown(page.error().what);
  const json result = RetryIds(env, *q, page->all_ids);
  for (const auto& [id, err] : result["errors"].items()) {
    std::fprintf(stderr, "dropqctl: %s: %s\n", id.c_str(), err.get<std::string>().c_str());
  }
  if (env.json) {
    PrintJson(result);
  } else {
    std::printf("%zu requeued, %zu asked of the instance holding the file, %zu failed\n",
                result["retried"].size(), result["asked"].size(), result["errors"].size());
  }
  return result["errors"].empty() ? kOk : kFailed;
} catch (const RedisDown& e) {
  return Down(e);
}

int List(const Env& env, const std::string& queue, const std::string& state, int64_t limit,
         const JobFilter& filter) try {
  const QueueConfig* q = QueueOrUsage(env, queue);
  if (q == nullptr) return kUsage;
  const QueueKeys k(env.cfg->prefix, q->name);
  // Pending in the order jobs will start; active and scheduled by claim or
  // due time; done and failed newest first.
  const bool newest_first = state == "done" || state == "failed";
  auto page = SearchJobs(*env.redis, k, state, filter, SearchOrder{newest_first}, 0,
                         std::max<int64_t>(limit, 1), /*want_all_ids=*/false);
  if (!page.ok()) {
    if (page.error().code == Errc::kRedis) throw RedisDown(page.error().what);
    return Fail(page.error().what);
  }
  json jobs = json::array();
  std::vector<std::vector<std::string>> rows;
  for (const JobSummary& s : page->jobs) {
    const std::string& id = s.id;
    if (!s.problem.empty()) {  // a hand-made key of another type
      jobs.push_back({{"id", ToValidUtf8(id)}, {"problem", ToValidUtf8(s.problem)}});
      rows.push_back({id, "?", "?", "?", s.problem});
      continue;
    }
    json j = {{"id", ToValidUtf8(id)}};
    const std::map<std::string, std::string>& got = s.fields;
    for (const auto& [field, v] : got) {
      if (IsNumericField(field)) {
        if (auto num = ParseRecordNumber(field, v); num.ok()) {
          j[field] = *num;
          continue;
        }
      }
      j[field] = ToValidUtf8(v);
    }
    if (!j.contains("enq")) {
      if (auto ms = JobIdTimeMs(id)) j["enq"] = *ms;  // layout 2 keeps it in the id only
    }
    jobs.push_back(j);
    std::string when = "-";
    for (const char* t : {"finished", "due"}) {
      if (auto it = got.find(t); it != got.end()) {
        if (auto ms = ParseRecordNumber(t, it->second); ms.ok()) when = FormatTime(*ms);
        break;
      }
    }
    if (when == "-" && !got.count("finished") && !got.count("due")) {
      const auto it = got.find("enq");
      if (auto ms = EnqueuedMs(id, it == got.end() ? nullptr : &it->second)) when = FormatTime(*ms);
    }
    const auto field = [&got](const char* f) {
      const auto it = got.find(f);
      return it == got.end() ? std::string() : it->second;
    };
    std::string what = field("result");
    if (got.count("exit")) what += " " + field("exit");
    if (got.count("error")) what += (what.empty() ? "" : ": ") + field("error");
    rows.push_back({id, got.count("attempt") ? field("attempt") : "0", when,
                    EscapeName(got.count("name") ? field("name") : "(no record)"),
                    EscapeText(what.substr(0, 80))});
  }
  if (env.json) {
    PrintJson({{"queue", q->name}, {"state", state}, {"total", page->total}, {"jobs", jobs}});
  } else {
    std::printf("%-26s %7s %-24s %s\n", "JOB_ID", "ATTEMPT", "TIME", "NAME  RESULT");
    for (const auto& r : rows) {
      std::printf("%-26s %7s %-24s %s%s%s\n", r[0].c_str(), r[1].c_str(), r[2].c_str(),
                  r[3].c_str(), r[4].empty() ? "" : "  ", r[4].c_str());
    }
    if (page->total > static_cast<int64_t>(rows.size())) {
      std::printf("(%zu of %lld shown; --limit for more)\n", rows.size(),
                  static_cast<long long>(page->total));
    }
  }
  return kOk;
} catch (const RedisDown& e) {
  return Down(e);
}

int Purge(const Env& env, const std::string& queue, const std::string& state, int64_t older_than_ms,
          const JobFilter& filter) try {
  const QueueConfig* q = QueueOrUsage(env, queue);
  if (q == nullptr) return kUsage;
  const QueueKeys k(env.cfg->prefix, q->name);
  const int64_t before = NowUnixMs() - std::max<int64_t>(older_than_ms, 0);
  int64_t purged = 0;
  if (filter.NeedsNoRecord() && !filter.since_ms && !filter.until_ms) {
    for (;;) {  // in slices, so Redis never blocks long on a big history
      const Reply r = Eval(env, PurgeScript(), k.base(), {state, std::to_string(before), "1000"});
      if (r.is_error()) return Fail(r.str);
      purged += r.AsInt(0);
      if (r.AsInt(0) < 1000) break;
    }
  } else {
    // The filter's matches, then those ids in slices (each checked again).
    JobFilter f = filter;
    f.until_ms = f.until_ms ? std::min(*f.until_ms, before) : before;
    auto page = SearchJobs(*env.redis, k, state, f, SearchOrder{false}, 0, 0, true);
    if (!page.ok()) throw RedisDown(page.error().what);
    purged = PurgeIds(env, *q, state, before, page->all_ids);
  }
  if (env.json) {
    PrintJson({{"queue", q->name}, {"state", state}, {"purged", purged}});
  } else {
    std::printf("%lld %s job records purged from %s\n", static_cast<long long>(purged),
                state.c_str(), q->name.c_str());
  }
  return kOk;
} catch (const RedisDown& e) {
  return Down(e);
}

json SetPausedJson(const Env& env, const QueueConfig& q, bool paused) {
  const QueueKeys k(env.cfg->prefix, q.name);
  bool changed = false;
  if (paused) {
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    const std::string by = std::to_string(NowUnixMs()) + " " + host;
    const Reply r = Call(env, {"SET", k.Paused(), by, "NX"});
    if (r.is_error()) throw std::runtime_error(k.Paused() + ": " + r.str);
    changed = !r.is_nil();
  } else {
    const Reply r = Call(env, {"DEL", k.Paused()});
    if (r.is_error()) throw std::runtime_error(k.Paused() + ": " + r.str);
    changed = r.AsInt() == 1;
  }
  return {{"queue", q.name}, {"paused", paused}, {"changed", changed}};
}

int SetPaused(const Env& env, const std::string& queue, bool paused) try {
  const QueueConfig* q = QueueOrUsage(env, queue);
  if (q == nullptr) return kUsage;
  const json result = SetPausedJson(env, *q, paused);
  if (env.json) {
    PrintJson(result);
  } else {
    std::printf("%s: %s%s\n", q->name.c_str(), paused ? "paused" : "resumed",
                result["changed"].get<bool>() ? "" : " (already)");
  }
  return kOk;
} catch (const RedisDown& e) {
  return Down(e);
}

}  // namespace dropq::ctl
