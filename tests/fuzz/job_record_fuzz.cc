// libFuzzer target: any bytes as the fields of a job hash. The first byte is
// the separator; the rest, split on it, alternates field and value (a last
// field without a value gets ""), so any byte can appear in a name or value:
//   "|name|a.png|size|12|state|failed"
// DecodeJobRecord() must decode or report every field, and what it returns
// must keep its promises (sorted unique fields, numbers in range, short
// one-line problem messages).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/job_record.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void InRange(const std::optional<int64_t>& v, int64_t lo, int64_t hi) {
  Check(!v || (*v >= lo && *v <= hi));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dropq::JobRecord;
  if (size == 0) return 0;
  const char sep = static_cast<char>(data[0]);
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string> parts;
  size_t at = 0;
  while (at <= rest.size() && !rest.empty()) {
    const size_t next = std::min(rest.find(sep, at), rest.size());
    parts.emplace_back(rest.substr(at, next - at));
    at = next + 1;
  }
  std::vector<std::pair<std::string, std::string>> fields;
  for (size_t i = 0; i < parts.size(); i += 2) {
    fields.emplace_back(parts[i], i + 1 < parts.size() ? parts[i + 1] : "");
  }

  const auto decoded = dropq::DecodeJobRecord(fields);
  Check(decoded.ok() == !fields.empty());
  if (!decoded.ok()) {
    Check(decoded.error().code == dropq::Errc::kInvalid);
    return 0;
  }
  const JobRecord& r = *decoded;
  Check(r.fields.size() <= fields.size());
  for (size_t i = 1; i < r.fields.size(); ++i) Check(r.fields[i - 1].first < r.fields[i].first);
  for (const auto& [f, v] : fields) Check(r.Find(f) != nullptr);
  for (const dropq::FieldProblem& p : r.problems) {
    // Bounded whatever the value's size: a field name is never quoted, and a
    // value at most kMaxQuotedBytes, each byte escaped to at most 4.
    Check(p.message.size() <= 4 * dropq::kMaxQuotedBytes + 120);
    Check(std::none_of(p.message.begin(), p.message.end(), [](char c) {
      const auto b = static_cast<unsigned char>(c);
      return (b < 0x20 && b != '\t') || b == 0x7f;
    }));
  }
  Check(dropq::CheckJobRecord(r).ok() == r.problems.empty());
  InRange(r.size, 0, INT64_MAX);
  for (const auto* t : {&r.enq, &r.claimed, &r.started, &r.finished, &r.due}) {
    InRange(*t, 0, dropq::kMaxRecordTimeMs);
  }
  for (const auto* c : {&r.attempt, &r.failures, &r.tempfails, &r.interrupted, &r.retried}) {
    InRange(*c, 0, UINT32_MAX);
  }
  InRange(r.exit_code, 0, 255);
  InRange(r.signal, 0, 127);
  InRange(r.http_status, 100, 599);
  if (r.name && !r.ProblemWith("name")) Check(dropq::ValidJobName(*r.name));
  for (const auto& [n, h] : r.history) Check(n >= 1 && (h.line || h.stderr_tail || h.response));
  for (const auto& [f, v] : r.fields) {
    const auto n = dropq::ParseRecordNumber(f, v);
    if (!n.ok()) Check(n.error().code == dropq::Errc::kInvalid);
  }
  return 0;
}
