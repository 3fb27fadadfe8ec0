// Decoding is table-driven: every known field has one Spec saying which
// member it fills and, for numbers, the range it accepts. Fields are sorted
// first, so duplicates are adjacent and problems come out in field order.
#include "store/job_record.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

#include "common/escape.h"
#include "store/job_fields.h"

namespace dropq {
namespace {

namespace jf = jobfield;

constexpr int64_t kMaxCount = std::numeric_limits<uint32_t>::max();
constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

// How one known field decodes.
struct Spec {
  std::optional<std::string> JobRecord::*text = nullptr;  // a text field, or
  std::optional<int64_t> JobRecord::*number = nullptr;    // a number in lo..hi, or
  bool ident = false;                                     // the file identity
  int64_t lo = 0;
  int64_t hi = 0;
};

const std::map<std::string_view, Spec>& Specs() {
  using R = JobRecord;
  const auto text = [](std::optional<std::string> R::*m) { return Spec{m, nullptr, false, 0, 0}; };
  const auto num = [](std::optional<int64_t> R::*m, int64_t lo, int64_t hi) {
    return Spec{nullptr, m, false, lo, hi};
  };
  static const std::map<std::string_view, Spec> kSpecs = {
      {jf::kName, text(&R::name)},
      {jf::kState, text(&R::state)},
      {jf::kOwner, text(&R::owner)},
      {jf::kResult, text(&R::result)},
      {jf::kError, text(&R::error)},
      {jf::kStderr, text(&R::stderr_tail)},
      {jf::kSha256, text(&R::sha256)},
      {jf::kResponse, text(&R::response)},
      {jf::kPhase, text(&R::phase)},
      {jf::kTarget, text(&R::target)},
      {jf::kDisposedTo, text(&R::disposed_to)},
      {jf::kDisposeError, text(&R::dispose_error)},
      {jf::kLastResult, text(&R::last_result)},
      {jf::kIdent, Spec{nullptr, nullptr, true, 0, 0}},
      {jf::kSize, num(&R::size, 0, kMaxInt)},
      {jf::kEnq, num(&R::enq, 0, kMaxRecordTimeMs)},
      {jf::kClaimed, num(&R::claimed, 0, kMaxRecordTimeMs)},
      {jf::kStarted, num(&R::started, 0, kMaxRecordTimeMs)},
      {jf::kFinished, num(&R::finished, 0, kMaxRecordTimeMs)},
      {jf::kDue, num(&R::due, 0, kMaxRecordTimeMs)},
      {jf::kAttempt, num(&R::attempt, 0, kMaxCount)},
      {jf::kFailures, num(&R::failures, 0, kMaxCount)},
      {jf::kTempfails, num(&R::tempfails, 0, kMaxCount)},
      {jf::kInterrupted, num(&R::interrupted, 0, kMaxCount)},
      {jf::kRetried, num(&R::retried, 0, kMaxCount)},
      {jf::kExit, num(&R::exit_code, 0, 255)},
      {jf::kSignal, num(&R::signal, 0, 127)},
      {jf::kMs, num(&R::ms, 0, kMaxInt)},
      {jf::kHttpStatus, num(&R::http_status, 100, 599)},
  };
  return kSpecs;
}

// Fields every record has from its first CLAIM on (layout 1's also had size
// and enq; the size is in the ident, the enqueue time in the job id).
constexpr std::string_view kRequired[] = {jf::kName, jf::kIdent, jf::kState};

// At most kMaxQuotedBytes of `v`, quoted and escaped: safe on one line.
std::string Quote(std::string_view v) {
  std::string out = "\"" + EscapeText(v.substr(0, kMaxQuotedBytes)) + "\"";
  if (v.size() > kMaxQuotedBytes) out += "... (" + std::to_string(v.size()) + " bytes)";
  return out;
}

std::string FieldLabel(std::string_view field) { return "field `" + EscapeName(field) + "`"; }

// Parses all of `v` as a whole decimal number in lo..hi. Returns "" and sets
// *out, or returns what is wrong.
std::string ParseNumber(std::string_view v, int64_t lo, int64_t hi, int64_t* out) {
  if (v.empty()) return "empty: want a whole number";
  int64_t n = 0;
  const char* end = v.data() + v.size();
  const auto [p, ec] = std::from_chars(v.data(), end, n);
  const std::string range = " (want " + std::to_string(lo) + ".." + std::to_string(hi) + ")";
  if (ec == std::errc::result_out_of_range && p == end)
    return Quote(v) + " is out of range" + range;
  if (ec != std::errc() || p != end) return Quote(v) + " is not a whole number";
  if (n < lo || n > hi) return std::to_string(n) + " is out of range" + range;
  *out = n;
  return "";
}

// "attempt.N" / "stderr.N": the run number N (canonical decimal, >= 1), or 0.
uint32_t RunNumber(std::string_view digits) {
  if (digits.empty() || digits.front() == '0') return 0;
  uint32_t n = 0;
  const char* end = digits.data() + digits.size();
  const auto [p, ec] = std::from_chars(digits.data(), end, n);
  return ec == std::errc() && p == end ? n : 0;
}

void Decode(const std::string& field, const std::string& value, JobRecord* r) {
  const auto problem = [&](std::string message) {
    r->problems.push_back(FieldProblem{field, std::move(message)});
  };
  const auto& specs = Specs();
  if (auto it = specs.find(field); it != specs.end()) {
    const Spec& s = it->second;
    if (s.text != nullptr) {
      r->*s.text = value;  // text is always kept; name and state are checked too
      std::string why;
      if (field == jf::kName && !ValidJobName(value, &why)) problem(Quote(value) + ": " + why);
      if (field == jf::kState && std::find(std::begin(jf::kStates), std::end(jf::kStates), value) ==
                                     std::end(jf::kStates)) {
        problem("unknown state " + Quote(value));
      }
    } else if (s.number != nullptr) {
      int64_t n = 0;
      if (std::string why = ParseNumber(value, s.lo, s.hi, &n); why.empty()) {
        r->*s.number = n;
      } else {
        problem(std::move(why));
      }
    } else if (auto id = FileIdentity::Parse(value)) {
      r->ident = *id;
    } else {
      problem(Quote(value) + " is not an identity (want inode:size:mtime_ns)");
    }
    return;
  }
  for (std::string_view prefix : {jf::kAttemptPrefix, jf::kStderrPrefix, jf::kResponsePrefix}) {
    if (std::string_view(field).substr(0, prefix.size()) != prefix) continue;
    const uint32_t n = RunNumber(std::string_view(field).substr(prefix.size()));
    if (n == 0) {
      problem("not a run of the error history (want " + std::string(prefix) +
              "N, N a whole number from 1)");
    } else if (prefix == jf::kAttemptPrefix) {
      r->history[n].line = value;
    } else if (prefix == jf::kStderrPrefix) {
      r->history[n].stderr_tail = value;
    } else {
      r->history[n].response = value;
    }
    return;
  }
  // An unknown field is no problem: it is kept in `fields` and shown as it is.
}

}  // namespace

const std::string* JobRecord::Find(std::string_view field) const {
  const auto it = std::lower_bound(fields.begin(), fields.end(), field,
                                   [](const auto& kv, std::string_view f) { return kv.first < f; });
  return it != fields.end() && it->first == field ? &it->second : nullptr;
}

const FieldProblem* JobRecord::ProblemWith(std::string_view field) const {
  for (const FieldProblem& p : problems) {
    if (p.field == field) return &p;
  }
  return nullptr;
}

Result<JobRecord> DecodeJobRecord(const std::vector<std::pair<std::string, std::string>>& fields) {
  if (fields.empty()) return Error{Errc::kInvalid, "no fields: not a job record"};
  JobRecord r;
  r.fields = fields;
  // Stable: among equal names the input order stays, so the last is the latest.
  std::stable_sort(r.fields.begin(), r.fields.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t out = 0;
  for (size_t i = 0; i < r.fields.size();) {
    size_t j = i + 1;
    while (j < r.fields.size() && r.fields[j].first == r.fields[i].first) ++j;
    if (out != j - 1) r.fields[out] = std::move(r.fields[j - 1]);
    if (j - i > 1) {
      r.problems.push_back(FieldProblem{r.fields[out].first, "given " + std::to_string(j - i) +
                                                                 " times; the last value is kept"});
    }
    Decode(r.fields[out].first, r.fields[out].second, &r);
    ++out;
    i = j;
  }
  r.fields.resize(out);
  for (std::string_view f : kRequired) {
    if (r.Find(f) == nullptr) {
      r.problems.push_back(FieldProblem{std::string(f), "missing (every job record has it)"});
    }
  }
  return r;
}

Status CheckJobRecord(const JobRecord& record) {
  if (record.problems.empty()) return OkStatus();
  const FieldProblem& p = record.problems.front();
  return Error{Errc::kInvalid, FieldLabel(p.field) + ": " + p.message};
}

Result<int64_t> ParseRecordNumber(std::string_view field, std::string_view value) {
  int64_t lo = std::numeric_limits<int64_t>::min();
  int64_t hi = kMaxInt;
  const auto& specs = Specs();
  if (auto it = specs.find(field); it != specs.end() && it->second.number != nullptr) {
    lo = it->second.lo;
    hi = it->second.hi;
  }
  int64_t n = 0;
  if (std::string why = ParseNumber(value, lo, hi, &n); !why.empty()) {
    return Error{Errc::kInvalid, FieldLabel(field) + ": " + why};
  }
  return n;
}

bool ValidJobName(std::string_view name, std::string* why) {
  const auto fail = [&](const char* m) {
    if (why != nullptr) *why = m;
    return false;
  };
  if (name.empty()) return fail("empty: want a path relative to the watched directory");
  if (name.find('\0') != std::string_view::npos) return fail("holds a NUL byte");
  if (name.front() == '/') return fail("absolute: want a path relative to the watched directory");
  // Every component must name an entry below the watched directory: an
  // empty, "." or ".." one would lead elsewhere (or nowhere).
  for (size_t at = 0;;) {
    const size_t slash = name.find('/', at);
    const std::string_view c =
        name.substr(at, slash == std::string_view::npos ? std::string_view::npos : slash - at);
    if (c.empty()) return fail("an empty path component");
    if (c == "." || c == "..") return fail("a \".\" or \"..\" path component");
    if (slash == std::string_view::npos) break;
    at = slash + 1;
  }
  return true;
}

}  // namespace dropq
