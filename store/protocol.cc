#include "store/protocol.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "common/escape.h"
#include "store/job_fields.h"
#include "store/job_record.h"

namespace dropq {
namespace {

namespace jf = jobfield;

Error BadReply(std::string_view call, const std::string& why) {
  return Error{Errc::kRedis, std::string(call) + " reply: " + why};
}

// An error reply is Redis refusing the call: its text, as it came.
Error Refused(const Reply& r) { return Error{Errc::kRedis, r.str}; }

bool IsScalar(const Reply& e) {
  return e.type == Reply::Type::kString || e.type == Reply::Type::kInteger;
}

// A count from a record that may have been edited by hand: anything that is
// not a whole number in 0..UINT32_MAX reads as 0, as a missing field does.
uint32_t Count(std::string_view s) {
  int64_t v = -1;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) v = -1;
  return v < 0 || v > std::numeric_limits<uint32_t>::max() ? 0u : static_cast<uint32_t>(v);
}

void AppendFields(std::vector<std::string>* args, const Fields& fields) {
  args->push_back(std::to_string(fields.size()));
  for (const auto& [k, v] : fields) {
    args->push_back(k);
    args->push_back(v);
  }
}

// What CLAIM's script accepts as an id (see claim.lua): it names a directory
// in the processing area.
bool UsableId(std::string_view id) {
  return !id.empty() && id.size() <= 64 && id.find('/') == std::string_view::npos &&
         id.find('\0') == std::string_view::npos && id[0] != '.';
}

constexpr size_t kClaimWidth = 8;  // fields per job in a packed claim (lib.lua)

// A string of `n` flags, '1' or '0' (flags() in lib.lua).
Result<std::vector<bool>> DecodeFlags(std::string_view call, std::string_view s, size_t n) {
  if (s.size() != n) {
    return BadReply(call, std::to_string(s.size()) + " flags, expected " + std::to_string(n));
  }
  std::vector<bool> out;
  out.reserve(n);
  for (char c : s) {
    if (c != '0' && c != '1') return BadReply(call, "a flag that is not 0 or 1");
    out.push_back(c == '1');
  }
  return out;
}

// Jobs packed by packed_jobs() in lib.lua: NUL-ended fields, kClaimWidth per job.
Result<std::vector<ClaimedJob>> DecodePacked(std::string_view call, std::string_view s) {
  std::vector<ClaimedJob> out;
  std::string_view f[kClaimWidth];
  size_t at = 0;
  while (at < s.size()) {
    for (size_t k = 0; k < kClaimWidth; ++k) {
      const size_t end = s.find('\0', at);
      if (end == std::string_view::npos) {
        return BadReply(call, "job " + std::to_string(out.size()) + " is cut short");
      }
      f[k] = s.substr(at, end - at);
      at = end + 1;
    }
    ClaimedJob c;
    c.job.id = std::string(f[0]);
    const std::string_view recorded = f[6];
    if (recorded == "corrupt") {
      c.kind = ClaimedJob::Kind::kCorrupt;
      out.push_back(std::move(c));
      continue;
    }
    if (!recorded.empty() && recorded != jf::kDone && recorded != jf::kFailed) {
      return BadReply(call, "job " + EscapeName(c.job.id) + ": unknown outcome \"" +
                                EscapeText(recorded.substr(0, 40)) + "\"");
    }
    if (!UsableId(c.job.id)) {
      // The script refuses these itself; one here means the reply is not its.
      return BadReply(call, "unusable job id \"" + EscapeText(c.job.id.substr(0, 40)) + "\"");
    }
    c.job.name = std::string(f[1]);
    c.job.attempt = Count(f[3]);
    c.job.failures = Count(f[4]);
    c.job.tempfails = Count(f[5]);
    // An identity edited away reads as unknown (inode 0): the file is still
    // checked to be a regular file, just not to be the one enqueued.
    c.job.ident = FileIdentity::Parse(f[2]).value_or(FileIdentity{});
    if (std::string why; !ValidJobName(c.job.name, &why)) {
      c.kind = ClaimedJob::Kind::kInvalid;
      c.problem = "corrupt job record: name: " + why;
    }
    if (c.kind == ClaimedJob::Kind::kRun && !recorded.empty()) {
      c.kind = ClaimedJob::Kind::kRedispose;
      c.recorded = recorded == jf::kDone ? AckAs::kDone : AckAs::kFailed;
      c.processed = FileIdentity::Parse(f[7]).value_or(c.job.ident);
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

std::string_view AckAsName(AckAs a) {
  switch (a) {
    case AckAs::kDone:
      return jf::kDone;
    case AckAs::kFailed:
      return jf::kFailed;
    case AckAs::kScheduled:
      return jf::kScheduled;
  }
  return "?";
}

Fields OutcomeFields(const Outcome& o) {
  Fields f;
  f.reserve(12);
  f.emplace_back(jf::kResult, RunResultName(o.result));
  f.emplace_back(jf::kAttempt, std::to_string(o.job.attempt));
  f.emplace_back(jf::kMs, std::to_string(o.duration_ms));
  if (o.result == RunResult::kExit) f.emplace_back(jf::kExit, std::to_string(o.exit_code));
  if (o.signal != 0) f.emplace_back(jf::kSignal, std::to_string(o.signal));
  if (!o.error.empty()) f.emplace_back(jf::kError, o.error);
  if (!o.stderr_tail.empty()) f.emplace_back(jf::kStderr, o.stderr_tail);
  if (!o.sha256.empty()) f.emplace_back(jf::kSha256, o.sha256);
  if (o.http_status != 0) f.emplace_back(jf::kHttpStatus, std::to_string(o.http_status));
  if (!o.response.empty()) f.emplace_back(jf::kResponse, o.response);
  f.emplace_back(jf::kFailures, std::to_string(o.job.failures));
  f.emplace_back(jf::kTempfails, std::to_string(o.job.tempfails));
  if (o.result != RunResult::kOk && o.job.attempt > 0) {
    // Every failed run keeps its own line (and stderr tail): the error history.
    const std::string n = std::to_string(o.job.attempt);
    std::string line = "result=" + std::string(RunResultName(o.result));
    if (o.result == RunResult::kExit) line += " exit=" + std::to_string(o.exit_code);
    if (o.signal != 0) line += " signal=" + std::to_string(o.signal);
    if (o.http_status != 0) line += " http=" + std::to_string(o.http_status);
    line += " ms=" + std::to_string(o.duration_ms);
    if (!o.error.empty()) line += " error=" + o.error;
    f.emplace_back(std::string(jf::kAttemptPrefix) + n, std::move(line));
    if (!o.stderr_tail.empty()) f.emplace_back(std::string(jf::kStderrPrefix) + n, o.stderr_tail);
    if (!o.response.empty()) f.emplace_back(std::string(jf::kResponsePrefix) + n, o.response);
  }
  return f;
}

// ---------------------------------------------------------------- ENQUEUE

std::vector<std::string> EncodeEnqueue(int64_t now_ms, std::string_view instance, int max_claim,
                                       const std::vector<EnqueueItem>& items) {
  std::vector<std::string> args;
  args.reserve(3 + 3 * items.size());
  args.push_back(std::to_string(now_ms));
  args.emplace_back(instance);
  args.push_back(std::to_string(std::max(max_claim, 0)));
  for (const EnqueueItem& it : items) {
    args.push_back(it.id);
    args.push_back(it.name);
    args.push_back(it.ident.ToString());
  }
  return args;
}

Result<Enqueued> DecodeEnqueue(const Reply& r, size_t n) {
  constexpr std::string_view kCall = "ENQUEUE";
  if (r.is_error()) return Refused(r);
  if (r.type != Reply::Type::kArray || r.elements.size() != 3 ||
      r.elements[0].type != Reply::Type::kString || r.elements[1].type != Reply::Type::kInteger ||
      r.elements[2].type != Reply::Type::kString) {
    return BadReply(kCall, "not {flags, paused, jobs}");
  }
  auto taken = DecodeFlags(kCall, r.elements[0].str, n);
  if (!taken.ok()) return taken.error();
  auto claimed = DecodePacked(kCall, r.elements[2].str);
  if (!claimed.ok()) return claimed.error();
  Enqueued out;
  for (bool t : *taken) out.enqueued += t ? 1 : 0;
  out.paused = r.elements[1].integer != 0;
  out.claimed = std::move(*claimed);
  return out;
}

// ---------------------------------------------------------------- CLAIM

std::vector<std::string> EncodeClaim(int64_t now_ms, std::string_view instance, int max,
                                     const ClaimLimits& limits) {
  return {std::to_string(now_ms),
          std::string(instance),
          std::to_string(max),
          std::to_string(limits.rate_max),
          std::to_string(limits.rate_per_ms),
          std::to_string(limits.max_active)};
}

std::optional<ClaimHeld> DecodeClaimHeld(const Reply& r) {
  if (!r.is_error()) return std::nullopt;
  const std::string& s = r.str;
  const auto number = [&](size_t from) -> int64_t {
    int64_t v = 0;
    const char* end = s.data() + s.size();
    const auto [p, ec] = std::from_chars(s.data() + std::min(from, s.size()), end, v);
    return ec == std::errc() ? v : 0;
  };
  if (s.rfind("THROTTLED ", 0) == 0) return ClaimHeld{ClaimHeld::Kind::kThrottled, number(10)};
  if (s.rfind("LIMITED rate ", 0) == 0) return ClaimHeld{ClaimHeld::Kind::kRate, number(13)};
  if (s.rfind("LIMITED active", 0) == 0) return ClaimHeld{ClaimHeld::Kind::kActive, 0};
  return std::nullopt;
}

std::vector<std::string> EncodeThrottle(int64_t delay_ms, std::string_view reason) {
  return {std::to_string(std::max<int64_t>(delay_ms, 1)), std::string(reason)};
}

std::vector<std::string> EncodeRates(uint64_t enqueued, uint64_t done, uint64_t failed) {
  return {std::to_string(enqueued), std::to_string(done), std::to_string(failed)};
}

bool IsPausedReply(const Reply& r) { return r.is_error() && r.str.rfind("PAUSED", 0) == 0; }

bool ClaimedAny(const Reply& r) {
  if (r.is_error()) return false;  // paused, held, refused: nothing claimed
  if (r.type == Reply::Type::kString) return !r.str.empty();  // CLAIM: packed jobs
  // ENQUEUE: {flags, paused, packed jobs}.
  if (r.type == Reply::Type::kArray && r.elements.size() == 3 &&
      r.elements[2].type == Reply::Type::kString) {
    return !r.elements[2].str.empty();
  }
  return true;
}

bool IsLayoutReply(const Reply& r) { return r.is_error() && r.str.rfind("LAYOUT", 0) == 0; }

Entry SplitEntry(std::string_view entry) {
  const size_t sp = entry.find(' ');
  if (sp == std::string_view::npos) return {entry, std::nullopt};
  return {entry.substr(0, sp), entry.substr(sp + 1)};
}

Status DecodeUpgrade(const Reply& r) {
  if (r.is_error()) return Refused(r);
  if (r.type != Reply::Type::kInteger || r.integer != kLayout) {
    return BadReply("UPGRADE", "not the layout " + std::to_string(kLayout));
  }
  return {};
}

Result<std::vector<ClaimedJob>> DecodeClaim(const Reply& r) {
  if (r.is_error()) return Refused(r);
  if (r.type != Reply::Type::kString) return BadReply("CLAIM", "not a string");
  return DecodePacked("CLAIM", r.str);
}

// ---------------------------------------------------------------- per-job calls

std::vector<std::string> EncodeStarted(std::string_view instance, int64_t now_ms,
                                       const std::vector<StartedItem>& items) {
  std::vector<std::string> args;
  args.reserve(2 + 2 * items.size());
  args.emplace_back(instance);
  args.push_back(std::to_string(now_ms));
  for (const StartedItem& it : items) {
    args.push_back(it.id);
    args.push_back(std::to_string(it.attempt));
  }
  return args;
}

std::vector<std::string> EncodeRecord(std::string_view instance,
                                      const std::vector<RecordItem>& items) {
  std::vector<std::string> args;
  args.emplace_back(instance);
  for (const RecordItem& it : items) {
    Fields f = it.outcome;
    f.emplace_back(jf::kTarget, it.target.empty() ? "(delete)" : it.target);
    f.emplace_back(jf::kOutcome, AckAsName(it.as));
    f.emplace_back(jf::kPident, it.processed.ToString());
    args.push_back(it.id);
    AppendFields(&args, f);
  }
  return args;
}

std::vector<std::string> EncodeAck(std::string_view instance, int64_t now_ms, int64_t keep_done,
                                   int64_t keep_failed, const std::vector<AckItem>& items) {
  std::vector<std::string> args = {std::string(instance), std::to_string(now_ms),
                                   std::to_string(keep_done), std::to_string(keep_failed)};
  for (const AckItem& it : items) {
    args.push_back(it.id);
    args.emplace_back(AckAsName(it.as));
    args.push_back(it.files_value);
    AppendFields(&args, it.fields);
  }
  return args;
}

std::vector<std::string> EncodeRelease(std::string_view instance,
                                       const std::vector<ReleaseItem>& items) {
  std::vector<std::string> args;
  args.reserve(1 + 2 * items.size());
  args.emplace_back(instance);
  for (const ReleaseItem& it : items) {
    args.push_back(it.id);
    args.push_back(it.interrupted ? "1" : "0");
  }
  return args;
}

std::vector<std::string> EncodeDisposeFailed(std::string_view instance,
                                             const std::vector<DisposeFailedItem>& items) {
  std::vector<std::string> args;
  args.reserve(1 + 3 * items.size());
  args.emplace_back(instance);
  for (const DisposeFailedItem& it : items) {
    args.push_back(it.id);
    args.push_back(it.error);
    args.push_back(std::to_string(it.failures));
  }
  return args;
}

Result<std::vector<bool>> DecodeTaken(const Reply& r, size_t n) {
  if (r.is_error()) return Refused(r);
  if (r.type != Reply::Type::kString) return BadReply("script", "flags that are not a string");
  return DecodeFlags("script", r.str, n);
}

// ---------------------------------------------------------------- recovery and reads

std::vector<std::string> EncodeRequeue(std::string_view instance,
                                       const std::vector<std::string>& held) {
  std::vector<std::string> args;
  args.reserve(1 + held.size());
  args.emplace_back(instance);
  args.insert(args.end(), held.begin(), held.end());
  return args;
}

Result<std::vector<std::string>> DecodeIds(const Reply& r) {
  if (r.is_error()) return Refused(r);
  if (r.type != Reply::Type::kArray) return BadReply("REQUEUE", "not an array");
  std::vector<std::string> out;
  out.reserve(r.elements.size());
  for (const Reply& e : r.elements) {
    if (!IsScalar(e)) return BadReply("REQUEUE", "an id that is not a string");
    out.push_back(e.AsString());
  }
  return out;
}

std::vector<std::string> EncodePromote(int64_t now_ms, int max) {
  return {std::to_string(now_ms), std::to_string(max)};
}

Result<Promoted> DecodePromote(const Reply& r) {
  if (r.is_error()) return Refused(r);
  if (r.type != Reply::Type::kArray || r.elements.size() != 2 ||
      r.elements[0].type != Reply::Type::kInteger || !IsScalar(r.elements[1])) {
    return BadReply("PROMOTE", "not {moved, next due}");
  }
  return Promoted{r.elements[0].integer, r.elements[1].AsInt(-1)};
}

Result<std::vector<std::string>> DecodeStates(const Reply& r, size_t n) {
  if (r.is_error()) return Refused(r);
  if (r.type != Reply::Type::kArray || r.elements.size() != n) {
    return BadReply("STATES", "expected " + std::to_string(n) + " states");
  }
  std::vector<std::string> out;
  out.reserve(n);
  for (const Reply& e : r.elements) {
    if (!IsScalar(e)) return BadReply("STATES", "a state that is not a string");
    out.push_back(e.AsString());
  }
  return out;
}

Result<RetryPrepared> DecodeRetryPrepare(const Reply& r) {
  if (r.is_error()) return Refused(r);
  if (r.type != Reply::Type::kArray || r.elements.size() != 4) {
    return BadReply("RETRY_PREPARE", "not {name, disposed_to, ident, previous}");
  }
  for (const Reply& e : r.elements) {
    if (!IsScalar(e)) return BadReply("RETRY_PREPARE", "an element that is not a string");
  }
  return RetryPrepared{r.elements[0].AsString(), r.elements[1].AsString(), r.elements[2].AsString(),
                       r.elements[3].AsString()};
}

}  // namespace dropq
