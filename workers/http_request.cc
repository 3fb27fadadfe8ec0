#include "workers/http_request.h"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/escape.h"
#include "common/placeholders.h"
#include "common/text_template.h"

namespace dropq {
namespace {

bool Listed(const std::vector<int>& statuses, long status) {
  return std::find(statuses.begin(), statuses.end(), status) != statuses.end();
}

}  // namespace

HttpRequest BuildHttpRequest(const QueueConfig& q, const Job& job, const std::string& path,
                             uint64_t size, const std::string& boundary) {
  const HttpConfig& h = q.handler.http;
  std::string_view reldir, name, stem, ext;
  SplitRelPath(job.name, &reldir, &name);
  SplitName(name, &stem, &ext);
  const std::string attempt = std::to_string(job.attempt);
  const PlaceholderValues v{path,   name,   stem,    ext,      q.watch,
                            q.name, job.id, attempt, job.name, reldir};
  HttpRequest r;
  r.url = h.url.Expand(v, PercentEncode, PercentEncode);
  r.headers.reserve(h.headers.size() + 1);
  for (const auto& [key, value] : h.headers) {
    r.headers.push_back(key + ": " + value.Expand(v, PercentEncode, Verbatim));
  }
  switch (h.body) {
    case HttpConfig::Body::kFile:
      r.headers.push_back("Content-Type: " + h.content_type);
      break;
    case HttpConfig::Body::kMultipart:
      for (const auto& [key, value] : h.fields) {
        r.fields.emplace_back(key, value.Expand(v, PercentEncode, Verbatim));
      }
      r.filename = std::string(name);
      r.boundary = boundary;
      r.headers.push_back("Content-Type: multipart/form-data; boundary=" + boundary);
      break;
    case HttpConfig::Body::kJson:
      r.headers.push_back("Content-Type: application/json");
      r.json = "{\"queue\":" + JsonQuote(q.name) + ",\"job_id\":" + JsonQuote(job.id) +
               ",\"relpath\":" + JsonQuote(job.name) + ",\"name\":" + JsonQuote(name) +
               ",\"size\":" + std::to_string(size) + ",\"attempt\":" + attempt + "}";
      break;
  }
  return r;
}

namespace {

std::string FormQuote(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '"') {
      out += "%22";
    } else if (c == '\r') {
      out += "%0D";
    } else if (c == '\n') {
      out += "%0A";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

MultipartFrame FrameMultipart(const std::vector<std::pair<std::string, std::string>>& fields,
                              const std::string& file_field, const std::string& filename,
                              const std::string& boundary) {
  MultipartFrame f;
  for (const auto& [name, value] : fields) {
    f.head += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + FormQuote(name) +
              "\"\r\n\r\n" + value + "\r\n";
  }
  f.head += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" +
            FormQuote(file_field) + "\"; filename=\"" + FormQuote(filename) +
            "\"\r\nContent-Type: application/octet-stream\r\n\r\n";
  f.tail = "\r\n--" + boundary + "--\r\n";
  return f;
}

HttpClass ClassifyStatus(const HttpConfig& h, long status) {
  if (status >= 200 && status <= 299) return HttpClass::kSuccess;
  if (Listed(h.permanent_statuses, status)) return HttpClass::kPermanent;
  if (Listed(h.retry_statuses, status)) return HttpClass::kRetry;
  if (status == 408 || status == 425 || status == 429 || (status >= 500 && status <= 599)) {
    return HttpClass::kRetry;
  }
  return HttpClass::kPermanent;
}

bool HonoursRetryAfter(long status) { return status == 429 || status == 503; }

std::optional<int64_t> ParseRetryAfter(std::string_view value, int64_t now_unix_ms) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front())) != 0) {
    value.remove_prefix(1);
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())) != 0) {
    value.remove_suffix(1);
  }
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
    int64_t seconds = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    // Past about 292 years in ms an int64 overflows: any such value is "very long".
    if (ec == std::errc::result_out_of_range || seconds > INT64_MAX / 1000) return INT64_MAX;
    if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
    return seconds * 1000;
  }
  // IMF-fixdate, the form RFC 9110 requires senders to use.
  const std::string text(value);
  struct tm tm {};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const time_t at = timegm(&tm);
  if (at == static_cast<time_t>(-1)) return std::nullopt;
  const int64_t delta = static_cast<int64_t>(at) * 1000 - now_unix_ms;
  return std::max<int64_t>(delta, 0);
}

void AppendTail(std::string* tail, std::string_view data, size_t cap) {
  if (data.size() >= cap) {
    tail->assign(data.substr(data.size() - cap));
    return;
  }
  const size_t total = tail->size() + data.size();
  if (total > cap) tail->erase(0, total - cap);
  tail->append(data);
}

}  // namespace dropq
