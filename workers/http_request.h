// The protocol of an HTTP handler, apart from the transfer itself
// (daemon/http_executor.h drives that with libcurl): what request a job
// makes, and what its response means for the job.
//
//   request   url and header values expanded from the queue's http: templates
//             (placeholders percent-encoded, so a name holding CR, LF or any
//             byte cannot end a URL or add a header; secrets percent-encoded
//             in the URL, verbatim in headers), the body the file (body:
//             file), a form holding it (multipart), or a JSON document about
//             the job (json)
//   response  2xx: done. 408, 425, 429, 5xx and `retry_statuses`: retried
//             with the queue's backoff; a 429 or 503 with Retry-After waits
//             that long instead (at most `max_retry_after`) without using up
//             an attempt. Other 3xx and 4xx and `permanent_statuses`: failed
//             at once.
//
// Pure functions; thread: any.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/job.h"
#include "config/config.h"

namespace dropq {

// One request of one job, ready for the transfer.
struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value", configured ones first
  std::string json;                  // body: json: the document
  // body: multipart: the form fields beside the file, in the order written.
  std::vector<std::pair<std::string, std::string>> fields;
  std::string filename;  // body: multipart: the file part's file name (the job's last component)
  std::string boundary;  // body: multipart: what separates the parts
};

// Builds the request job `job` makes for file `path` of `size` bytes (its
// attempt is this run's number) under queue `q`'s http: settings; a
// multipart body uses `boundary` (random, so that no content holds it).
HttpRequest BuildHttpRequest(const QueueConfig& q, const Job& job, const std::string& path,
                             uint64_t size, const std::string& boundary = "");

// The bytes around the file in a multipart/form-data body (RFC 7578):
// `head` holds each of `fields` and the file part's headers, `tail` the
// closing boundary. In names and the file name, '"', CR and LF are written
// %22, %0D and %0A (as browsers do); values are sent as they are.
struct MultipartFrame {
  std::string head;
  std::string tail;
};
MultipartFrame FrameMultipart(const std::vector<std::pair<std::string, std::string>>& fields,
                              const std::string& file_field, const std::string& filename,
                              const std::string& boundary);

// What a status means for the job.
enum class HttpClass {
  kSuccess,    // 2xx
  kRetry,      // retried with the queue's backoff (or after Retry-After)
  kPermanent,  // failed at once
};
HttpClass ClassifyStatus(const HttpConfig& h, long status);

// True for the statuses whose Retry-After is honoured (429 and 503).
bool HonoursRetryAfter(long status);

// Parses a Retry-After value: delta-seconds ("120") or an HTTP date ("Wed,
// 21 Oct 2026 07:28:00 GMT"), relative to `now_unix_ms`. The delay in ms (0
// for a date in the past); nullopt if malformed.
std::optional<int64_t> ParseRetryAfter(std::string_view value, int64_t now_unix_ms);

// Appends `data` to `tail`, keeping only its last `cap` bytes (a response's
// last 4 KiB).
void AppendTail(std::string* tail, std::string_view data, size_t cap);

}  // namespace dropq
