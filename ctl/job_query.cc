#include "ctl/job_query.h"

#include <fnmatch.h>

#include <algorithm>
#include <set>

#include "common/job_id.h"
#include "common/path_glob.h"
#include "store/protocol.h"

namespace dropq {

const std::vector<std::string> kSummaryFields = {
    "name", "state", "attempt", "result", "exit", "error", "owner", "enq", "finished", "due", "ms"};

namespace {

// One id read from the state's list or set.
struct Item {
  std::string id;
  std::optional<std::string> name;  // from a never-claimed :pending entry
  int64_t time_ms = 0;
};

bool IsZset(std::string_view state) { return state != "pending"; }

std::string StateKey(const QueueKeys& k, std::string_view state) {
  if (state == "pending") return k.Pending();
  if (state == "active") return k.Active();
  if (state == "scheduled") return k.Scheduled();
  if (state == "done") return k.Done();
  return k.Failed();
}

std::string ScoreBound(const std::optional<int64_t>& v, const char* open) {
  return v ? std::to_string(*v) : std::string(open);
}

bool ContainsIgnoringCase(std::string_view hay, std::string_view needle) {
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                     [&](char a, char b) { return lower(a) == lower(b); }) != hay.end();
}

}  // namespace

std::string FailureText(const std::map<std::string, std::string>& fields) {
  std::string text;
  const auto add = [&](const char* field, const char* label) {
    const auto it = fields.find(field);
    if (it == fields.end() || it->second.empty()) return;
    if (!text.empty()) text += ' ';
    text += label;
    text += it->second;
  };
  add("result", "");
  add("exit", "exit ");
  add("signal", "signal ");
  add("http_status", "http ");
  add("error", "");
  add("stderr", "");
  return text;
}

namespace {

// Where a sorted set's slices start: the rank of the first id within the
// time range, in the search's order (ZCOUNT, O(log N)). Slices are then
// read by rank (Z(REV)RANGE start stop), O(log N + slice) each: an offset
// into ZRANGEBYSCORE ... LIMIT would walk every id before it, which over a
// whole search of N ids costs N^2 / slice.
Result<int64_t> RankBase(RedisSync& redis, const std::string& key, const JobFilter& f,
                         SearchOrder order) {
  const std::optional<int64_t>& near = order.newest_first ? f.until_ms : f.since_ms;
  if (!near) return int64_t{0};
  auto r = order.newest_first ? redis.Command({"ZCOUNT", key, "(" + std::to_string(*near), "+inf"})
                              : redis.Command({"ZCOUNT", key, "-inf", "(" + std::to_string(*near)});
  if (!r.ok()) return r.error();
  if (r->is_error()) return Error{Errc::kRedis, key + ": " + r->str};
  return r->AsInt();
}

// Reads `count` ids from position `pos` of the state, in the search's order
// (for a sorted set, `base` ranks after its first id in the time range).
// Sets *end when the slice reached the end of the time range.
Result<std::vector<Item>> ReadSlice(RedisSync& redis, const std::string& key,
                                    std::string_view state, const JobFilter& f, SearchOrder order,
                                    int64_t base, int64_t pos, int64_t count, bool* end) {
  std::vector<Item> items;
  if (IsZset(state)) {
    const std::string start = std::to_string(base + pos);
    const std::string stop = std::to_string(base + pos + count - 1);
    auto r = redis.Command(
        {order.newest_first ? "ZREVRANGE" : "ZRANGE", key, start, stop, "WITHSCORES"});
    if (!r.ok()) return r.error();
    if (r->is_error()) return Error{Errc::kRedis, key + ": " + r->str};
    for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
      const auto ms = static_cast<int64_t>(std::atof(r->elements[i + 1].str.c_str()));
      // Past the far end of the time range: nothing further can match.
      if ((order.newest_first && f.since_ms && ms < *f.since_ms) ||
          (!order.newest_first && f.until_ms && ms > *f.until_ms)) {
        *end = true;
        break;
      }
      items.push_back({r->elements[i].AsString(), std::nullopt, ms});
    }
    return items;
  }
  // :pending takes LPUSH: index 0 is the newest, -1 the next to start.
  auto r =
      order.newest_first
          ? redis.Command({"LRANGE", key, std::to_string(pos), std::to_string(pos + count - 1)})
          : redis.Command(
                {"LRANGE", key, std::to_string(-(pos + count)), std::to_string(-(pos + 1))});
  if (!r.ok()) return r.error();
  if (r->is_error()) return Error{Errc::kRedis, key + ": " + r->str};
  if (!order.newest_first) std::reverse(r->elements.begin(), r->elements.end());
  for (const Reply& e : r->elements) {
    const Entry entry = SplitEntry(e.str);
    Item item{std::string(entry.id), std::nullopt, JobIdTimeMs(entry.id).value_or(0)};
    if (entry.rest) item.name = std::string(*entry.rest);
    items.push_back(std::move(item));
  }
  return items;
}

// The HMGET of `fields` for each item that has a record, one round trip.
// Items with a name from their entry get their fields from it.
struct RecordFields {
  std::map<std::string, std::string> values;
  std::string problem;  // the key is not a hash (made by hand): Redis' error
};

Result<std::vector<RecordFields>> ReadFields(RedisSync& redis, const QueueKeys& k,
                                             const std::vector<const Item*>& items,
                                             const std::vector<std::string>& fields) {
  std::vector<std::vector<std::string>> batch;
  for (const Item* item : items) {
    if (item->name) continue;
    std::vector<std::string> argv = {"HMGET", k.Job(item->id)};
    argv.insert(argv.end(), fields.begin(), fields.end());
    batch.push_back(std::move(argv));
  }
  std::vector<Reply> replies;
  if (!batch.empty()) {
    auto r = redis.Pipeline(batch);
    if (!r.ok()) return r.error();
    replies = std::move(*r);
  }
  std::vector<RecordFields> out;
  out.reserve(items.size());
  size_t next = 0;
  for (const Item* item : items) {
    RecordFields got;
    std::map<std::string, std::string>& m = got.values;
    if (item->name) {
      m["name"] = *item->name;
      m["state"] = "pending";
    } else {
      const Reply& r = replies[next++];
      if (r.is_error()) got.problem = r.str;
      for (size_t i = 0; i < fields.size() && i < r.elements.size(); ++i) {
        if (!r.elements[i].is_nil()) m[fields[i]] = r.elements[i].AsString();
      }
    }
    out.push_back(std::move(got));
  }
  return out;
}

}  // namespace

bool IsSearchableState(std::string_view s) {
  return s == "pending" || s == "active" || s == "scheduled" || s == "failed" || s == "done";
}

bool NameMatches(const JobFilter& f, std::string_view name) {
  if (f.match.empty()) return true;
  if (f.match.find_first_of("*?[") == std::string::npos) {
    return name.find(f.match) != std::string_view::npos;
  }
  if (f.match.find('/') != std::string::npos) return PathGlobMatch(f.match, name);
  const std::string whole(name);
  if (fnmatch(f.match.c_str(), whole.c_str(), 0) == 0) return true;
  const size_t slash = whole.rfind('/');
  return slash != std::string::npos && fnmatch(f.match.c_str(), whole.c_str() + slash + 1, 0) == 0;
}

Result<JobPage> SearchJobs(RedisSync& redis, const QueueKeys& k, std::string_view state,
                           const JobFilter& f, SearchOrder order, int64_t offset, int64_t limit,
                           bool want_all_ids) {
  if (!IsSearchableState(state)) {
    return Error{Errc::kInvalid, "no job state " + std::string(state)};
  }
  offset = std::max<int64_t>(offset, 0);
  limit = std::max<int64_t>(limit, 0);
  const std::string key = StateKey(k, state);
  JobPage page;
  std::vector<Item> shown;
  // Without a filter on what the records hold (and, for pending, on time)
  // the count comes from Redis and the page is read from its offset on.
  const bool counted =
      f.NeedsNoRecord() && !want_all_ids && (IsZset(state) || (!f.since_ms && !f.until_ms));
  int64_t matched = 0;
  int64_t pos = 0;
  if (counted) {
    auto n = IsZset(state) ? redis.Command({"ZCOUNT", key, ScoreBound(f.since_ms, "-inf"),
                                            ScoreBound(f.until_ms, "+inf")})
                           : redis.Command({"LLEN", key});
    if (!n.ok()) return n.error();
    if (n->is_error()) return Error{Errc::kRedis, key + ": " + n->str};
    page.total = n->AsInt();
    matched = pos = offset;
  }
  int64_t base = 0;
  if (IsZset(state)) {
    auto b = RankBase(redis, key, f, order);
    if (!b.ok()) return b.error();
    base = *b;
  }
  // A job that moves while the search reads (a failed job retried, a new
  // one failing) shifts the slices: an id is counted once, never twice.
  std::set<std::string> seen;
  bool end = false;
  const bool read_records = !f.match.empty() || !f.error.empty();
  std::vector<std::string> filter_fields = {"name"};
  if (!f.error.empty()) {
    filter_fields.insert(filter_fields.end(),
                         {"result", "exit", "signal", "http_status", "error", "stderr"});
  }
  for (;;) {
    if (counted && static_cast<int64_t>(shown.size()) >= limit) break;
    // Counted, every id read is shown: read no more than the page needs.
    const int64_t want =
        counted ? std::min(kSearchSlice, limit - static_cast<int64_t>(shown.size())) : kSearchSlice;
    auto slice = ReadSlice(redis, key, state, f, order, base, pos, want, &end);
    if (!slice.ok()) return slice.error();
    pos += static_cast<int64_t>(slice->size());
    std::vector<const Item*> candidates;
    for (const Item& item : *slice) {
      if (!seen.insert(item.id).second) continue;
      if (!f.id_prefix.empty() && item.id.compare(0, f.id_prefix.size(), f.id_prefix) != 0) {
        continue;
      }
      if ((f.since_ms && item.time_ms < *f.since_ms) ||
          (f.until_ms && item.time_ms > *f.until_ms)) {
        continue;
      }
      candidates.push_back(&item);
    }
    std::vector<RecordFields> fields;
    if (read_records) {
      auto got = ReadFields(redis, k, candidates, filter_fields);
      if (!got.ok()) return got.error();
      fields = std::move(*got);
    }
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (read_records) {
        const auto& m = fields[i].values;
        const auto name = m.find("name");
        if (!f.match.empty() && (name == m.end() || !NameMatches(f, name->second))) continue;
        if (!f.error.empty() && !ContainsIgnoringCase(FailureText(m), f.error)) continue;
      }
      if (matched >= offset && static_cast<int64_t>(shown.size()) < limit) {
        shown.push_back(*candidates[i]);
      }
      if (want_all_ids) page.all_ids.push_back(candidates[i]->id);
      ++matched;
    }
    if (end || static_cast<int64_t>(slice->size()) < want) break;
  }
  if (!counted) page.total = matched;
  std::vector<const Item*> ptrs;
  for (const Item& item : shown) ptrs.push_back(&item);
  auto summaries = ReadFields(redis, k, ptrs, kSummaryFields);
  if (!summaries.ok()) return summaries.error();
  for (size_t i = 0; i < shown.size(); ++i) {
    RecordFields& got = (*summaries)[i];
    page.jobs.push_back(
        {shown[i].id, shown[i].time_ms, std::move(got.values), std::move(got.problem)});
  }
  return page;
}

}  // namespace dropq
