#include "daemon/http_executor.h"

#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "common/check.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "daemon/pool_work.h"
#include "workers/http_request.h"

namespace dropq {
namespace {

// What one request holds of its file at a time, and of libcurl's buffers:
// about 64 KiB in all, whatever the file's size.
constexpr size_t kBodyBufferBytes = 32 * 1024;
constexpr long kCurlBufferBytes = 16 * 1024;
// A response's body kept in the record, as an exec handler's stderr.
constexpr size_t kResponseTailBytes = 4096;
constexpr int kMaxRedirects = 10;
// The shortest Retry-After honoured ("0" included).
constexpr int64_t kMinRetryAfterMs = 1000;

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// "scheme://host:port" of `url` in lower case, for "same origin"; "" if it
// does not parse.
std::string Origin(const std::string& url) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
      out = std::string(scheme) + "://" + host + ":" + port;
      std::transform(out.begin(), out.end(), out.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return out;
}

// Every secret value of `h` as it may come back in a response: as read,
// and percent-encoded (as sent in the URL).
std::vector<std::string> SecretValues(const HttpConfig& h) {
  std::vector<std::string> out;
  const auto add = [&](const TextTemplate& t) {
    for (const TextTemplate::Part& p : t.parts()) {
      if (p.kind != TextTemplate::Part::Kind::kSecret || p.text.empty()) continue;
      out.push_back(p.text);
      if (std::string enc = PercentEncode(p.text); enc != p.text) out.push_back(std::move(enc));
    }
  };
  add(h.url);
  for (const auto& kv : h.headers) add(kv.second);
  for (const auto& kv : h.fields) add(kv.second);
  // Longest first: a secret that holds another is hidden whole.
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

}  // namespace

// The file being sent, shared with the pread in flight on the threadpool
// (which must find its descriptor and buffer alive however the request
// ends). The loop owns every field but `buf`, which the threadpool writes
// only while `reading`, when nothing else touches it.
struct HttpExecutor::Body {
  UniqueFd fd;
  std::string head, tail;       // a multipart body's bytes before and after the file
  size_t head_sent = 0;         // of head, given to libcurl
  size_t tail_sent = 0;         // of tail, likewise
  uint64_t size = 0;            // bytes of the file to send (the checked file's size)
  uint64_t offset = 0;          // of the next read
  std::unique_ptr<char[]> buf;  // kBodyBufferBytes
  std::string whole;            // a small multipart body, framed whole (sent from memory)
  size_t len = 0;               // bytes in buf
  size_t pos = 0;               // bytes of buf already given to libcurl
  bool reading = false;         // a pread is on the threadpool
  uint64_t generation = 0;      // bumped by a rewind: an older read's bytes are stale
  int error = 0;                // errno of a failed read (or EIO for a file that shrank)
  Request* owner = nullptr;     // cleared when the request ends
};

// One job from Enter() to its outcome. Thread: loop.
struct HttpExecutor::Request {
  HttpExecutor* exec = nullptr;
  Job job;
  int64_t started_ms = 0;
  int64_t t0_ms = 0;  // MonoMs() at the start, for the duration and the timeout
  std::string path;   // the checked file
  struct stat st {};
  std::shared_ptr<Body> body;
  HttpRequest spec;
  std::string url;            // the URL being requested (changes on a redirect)
  bool drop_headers = false;  // redirected to another origin: configured headers stay home
  int redirects = 0;
  bool paused = false;  // libcurl was told CURL_READFUNC_PAUSE
  bool in_multi = false;
  Easy easy;
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  std::string response;     // the last kResponseTailBytes of the body
  std::string retry_after;  // the final response's Retry-After
  char errbuf[CURL_ERROR_SIZE] = {};

  ~Request() {
    if (body) body->owner = nullptr;
  }
};

HttpExecutor::HttpExecutor(Loop* loop, Sink sink, const QueueConfig& q, AreaLayout layout,
                           std::string area, size_t capacity)
    : loop_(loop),
      reports_(loop, std::move(sink), [this] { return stopped(); }),
      q_(q),
      layout_(layout),
      area_(std::move(area)),
      workers_(q.runs_handlers() ? q.workers : 0),
      waiting_(capacity),
      secrets_(SecretValues(q.handler.http)),
      response_keep_(kResponseTailBytes + 2 * (secrets_.empty() ? 0 : secrets_.front().size())),
      multi_(loop->get()) {
  DROPQ_CHECK(q.handler.kind == HandlerConfig::Kind::kHttp);
  auto idle = UvHandle<uv_idle_t>::Make([&](uv_idle_t* h) { return uv_idle_init(loop->get(), h); });
  DROPQ_CHECK(idle.ok());
  pump_idle_ = std::move(*idle);
  pump_idle_.get()->data = this;
}

HttpExecutor::~HttpExecutor() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  *alive_ = false;
  for (auto& [raw, r] : busy_) {
    if (r->in_multi) multi_.Remove(r->easy.get());
  }
  busy_.clear();
}

void HttpExecutor::Accept(std::vector<Job> jobs) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  DROPQ_CHECK(!stopping_);
  waiting_.Add(std::move(jobs));  // at most room(): the runner claims no more
  Pump();
}

std::vector<Job> HttpExecutor::TakeBack() {
  std::vector<Job> out = waiting_.TakeAll();
  if (stopped()) reports_.Schedule();  // the sink hears `stopped` on a later turn
  return out;
}

void HttpExecutor::Stop() {
  if (stopping_) return;
  stopping_ = true;
  Pump();
  // Never from inside Stop(): the sink hears it on a later turn, as always.
  if (stopped()) reports_.Schedule();
}

void HttpExecutor::Interrupt(bool also_later) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (also_later) interrupt_all_ = true;
  std::vector<Request*> running;
  for (auto& [raw, r] : busy_) {
    if (r->in_multi) running.push_back(raw);
  }
  for (Request* r : running) {
    multi_.Remove(r->easy.get());
    r->in_multi = false;
    Outcome o;
    o.result = RunResult::kInterrupted;
    o.error = "interrupted while the request was in flight";
    Finish(r, std::move(o));
  }
}

void HttpExecutor::Pump() {
  if (waiting_.empty() || static_cast<int>(busy_.size()) >= workers_) return;
  // An active idle handle runs at the start of the next turn, and the loop
  // does not block in poll meanwhile.
  uv_idle_start(pump_idle_.get(), [](uv_idle_t* h) {
    uv_idle_stop(h);
    static_cast<HttpExecutor*>(h->data)->StartWaiting();
  });
}

void HttpExecutor::StartWaiting() {
  // One job's way into the threadpool trip, and what it found there.
  struct Entry {
    Request* r;
    Job job;
    std::shared_ptr<Entering> entering;
  };
  const bool reads = q_.handler.http.body != HttpConfig::Body::kJson;
  std::vector<Entry> starting;
  while (!waiting_.empty() && static_cast<int>(busy_.size()) < workers_) {
    auto owned = std::make_unique<Request>();
    Request* r = owned.get();
    r->exec = this;
    r->job = waiting_.Pop();
    busy_.emplace(r, std::move(owned));
    auto entering = std::make_shared<Entering>();
    if (reads) entering->first = TakeBuffer();
    starting.push_back(Entry{r, r->job, std::move(entering)});
  }
  // Spread over the threadpool's threads, a few jobs per trip: each trip
  // costs a wake-up of a thread and of the loop, and one slow file delays
  // only the others of its trip.
  constexpr size_t kThreads = 4, kMaxPerTrip = 8;
  const size_t per =
      std::clamp<size_t>((starting.size() + kThreads - 1) / kThreads, 1, kMaxPerTrip);
  for (size_t at = 0; at < starting.size(); at += per) {
    auto trip = std::make_shared<std::vector<Entry>>(
        std::make_move_iterator(starting.begin() + static_cast<std::ptrdiff_t>(at)),
        std::make_move_iterator(starting.begin() +
                                static_cast<std::ptrdiff_t>(std::min(at + per, starting.size()))));
    const int rc = QueueWork(
        loop_->get(),
        [trip, reads, layout = layout_, watch = q_.watch, area = area_] {
          for (Entry& en : *trip) {
            Entering& e = *en.entering;
            e.in = Enter(layout, watch, area, en.job, /*open=*/true);
            if (!reads || e.in.result != RunResult::kOk || e.in.st.st_size == 0) continue;
            // The first buffer in the same trip: most files need no other.
            // Never past the size checked: a file that grew meanwhile is
            // sent as it was judged complete (Content-Length says so).
            const size_t want =
                std::min<uint64_t>(kBodyBufferBytes, static_cast<uint64_t>(e.in.st.st_size));
            do {
              e.got = pread(e.in.fd.get(), e.first.get(), want, 0);
            } while (e.got < 0 && errno == EINTR);
            e.err = e.got < 0 ? errno : 0;
          }
        },
        [this, alive = alive_, trip] {
          if (!*alive) return;
          for (Entry& en : *trip) OnEntered(en.r, std::move(*en.entering));
        });
    if (rc < 0) {
      for (Entry& en : *trip) {
        Outcome o;
        o.result = RunResult::kError;
        o.error = std::string("threadpool: ") + uv_strerror(rc);
        o.started_ms = NowUnixMs();
        Finish(en.r, std::move(o));
      }
    }
  }
}

void HttpExecutor::OnEntered(Request* r, Entering&& e) {
  Entered& in = e.in;
  if (in.result != RunResult::kOk) {
    if (e.first) GiveBack(std::move(e.first));
    Outcome o;
    o.result = in.result;
    o.error = std::move(in.error);
    o.started_ms = NowUnixMs();
    if (in.result == RunResult::kError && S_ISREG(in.st.st_mode)) {
      o.ident = FileIdentity::FromStat(in.st);
    }
    return Finish(r, std::move(o));
  }
  // Count the attempt before the request starts: `attempt` is the number of
  // runs started, and a request that dropqd loses mid-way still counts.
  r->job.attempt += 1;
  r->started_ms = NowUnixMs();
  r->t0_ms = MonoMs();
  r->path = std::move(in.path);
  r->st = in.st;
  RunReport started{RunReport::Kind::kStarted, {}};
  started.outcome.job = r->job;
  reports_.Add(std::move(started));
  if (LogEnabled(LogLevel::kDebug)) {
    LogDebug("job.start", {{"queue", q_.name},
                           {"job", r->job.id},
                           {"path", q_.watch + "/" + r->job.name},
                           {"attempt", r->job.attempt}});
  }
  if (interrupt_all_) {
    Outcome o;
    o.result = RunResult::kInterrupted;
    o.error = "interrupted before the request was sent";
    return Finish(r, std::move(o));
  }
  r->body = std::make_shared<Body>();
  r->body->fd = std::move(in.fd);
  r->body->size = static_cast<uint64_t>(in.st.st_size);
  r->body->owner = r;
  if (q_.handler.http.body != HttpConfig::Body::kJson) {
    Body& b = *r->body;
    b.buf = std::move(e.first);
    if (e.got > 0) {
      b.len = static_cast<size_t>(e.got);
      b.offset = b.len;
    } else if (e.got < 0) {
      b.error = e.err;
    } else if (b.size > 0) {
      b.error = EIO;  // shorter than it was when checked
    }
  }
  std::string boundary;
  if (q_.handler.http.body == HttpConfig::Body::kMultipart) {
    char hex[48];
    std::snprintf(hex, sizeof hex, "dropq-%016llx%016llx", static_cast<unsigned long long>(rng_()),
                  static_cast<unsigned long long>(rng_()));
    boundary = hex;
  }
  r->spec = BuildHttpRequest(q_, r->job, r->path, r->body->size, boundary);
  r->url = r->spec.url;
  Send(r);
}

void HttpExecutor::Send(Request* r) {
  const HttpConfig& h = q_.handler.http;
  if (!r->easy) r->easy = TakeEasy();
  CURL* e = r->easy.get();
  if (e == nullptr) {
    Outcome o;
    o.result = RunResult::kError;
    o.error = "curl_easy_init failed";
    return Finish(r, std::move(o));
  }
  curl_easy_reset(e);
  r->response.clear();
  r->retry_after.clear();
  r->errbuf[0] = '\0';
  r->paused = false;
  Body& b = *r->body;
  if (r->redirects > 0) {
    // A redirect sends the whole body again.
    b.generation += 1;
    b.offset = 0;
    b.len = b.pos = 0;
    b.head_sent = b.tail_sent = 0;
    b.error = 0;
  }

  const int64_t elapsed = MonoMs() - r->t0_ms;
  const int64_t left = std::max<int64_t>(1, q_.handler.timeout.count() - elapsed);
  curl_easy_setopt(e, CURLOPT_URL, r->url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  // Ending a transfer still resolving a name must not wait on the loop for
  // the resolver thread (a DNS server that stopped answering).
  curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(h.connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(left));
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &HttpExecutor::OnWrite);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &HttpExecutor::OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "dropq/" DROPQ_VERSION);
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, kCurlBufferBytes);
  curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, kCurlBufferBytes);
  if (!h.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, h.ca_file.c_str());

  curl_slist* list = nullptr;
  for (const std::string& line : r->spec.headers) {
    const bool configured = strncasecmp(line.c_str(), "Content-Type:", 13) != 0;
    if (r->drop_headers && configured) continue;
    if (line.size() >= 2 && line.compare(line.size() - 2, 2, ": ") == 0) {
      // libcurl drops "Name:" with nothing after it; "Name;" sends it empty.
      list = curl_slist_append(list, (line.substr(0, line.size() - 2) + ";").c_str());
    } else {
      list = curl_slist_append(list, line.c_str());
    }
  }
  // No "Expect: 100-continue" round trip before the body.
  list = curl_slist_append(list, "Expect:");
  r->headers.reset(list);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);

  if (h.body == HttpConfig::Body::kJson) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->spec.json.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r->spec.json.size()));
  } else {
    if (h.body == HttpConfig::Body::kMultipart) {
      // The form is framed here and streamed like a file body: libcurl's
      // own mime reader stays paused for good when a part's callback
      // pauses before the transfer is under way.
      std::vector<std::pair<std::string, std::string>> fields;
      for (size_t i = 0; i < r->spec.fields.size(); ++i) {
        // A secret was meant for the configured host only.
        if (r->drop_headers && h.fields[i].second.has_secret()) continue;
        fields.push_back(r->spec.fields[i]);
      }
      MultipartFrame f = FrameMultipart(fields, h.file_field, r->spec.filename, r->spec.boundary);
      b.head = std::move(f.head);
      b.tail = std::move(f.tail);
    }
    const uint64_t total = b.head.size() + b.size + b.tail.size();
    if (b.error == 0 && b.offset == b.size && b.len == b.size) {
      // The whole file came with the first read: libcurl sends it from
      // memory, in one write with the request's head where it fits.
      const char* data = b.buf.get();
      if (!b.head.empty() || !b.tail.empty()) {
        b.whole = b.head;
        b.whole.append(b.buf.get(), b.len);
        b.whole += b.tail;
        data = b.whole.data();
      }
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, data);
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(total));
    } else {
      curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(total));
      curl_easy_setopt(e, CURLOPT_READFUNCTION, &HttpExecutor::OnRead);
      curl_easy_setopt(e, CURLOPT_READDATA, r);
      curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, &HttpExecutor::OnSeek);
      curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
    }
  }
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, h.method.c_str());
  if (Status s = multi_.Add(e,
                            [this](CURL* easy, CURLcode rc) {
                              Request* req = nullptr;
                              curl_easy_getinfo(easy, CURLINFO_PRIVATE, &req);
                              req->in_multi = false;
                              OnDone(req, rc);
                            });
      !s) {
    Outcome o;
    o.result = RunResult::kError;
    o.error = s.error().what;
    return Finish(r, std::move(o));
  }
  r->in_multi = true;
}

void HttpExecutor::OnDone(Request* r, CURLcode rc) {
  const HttpConfig& h = q_.handler.http;
  long status = 0;
  curl_easy_getinfo(r->easy.get(), CURLINFO_RESPONSE_CODE, &status);
  Outcome o;
  if (rc == CURLE_OK && status >= 300 && status <= 399 && h.follow_redirects &&
      Redirect(r, status)) {
    return;
  }
  const std::string detail = r->errbuf[0] != '\0' ? std::string(": ") + r->errbuf : "";
  if (rc == CURLE_OK) {
    o.http_status = static_cast<int>(status);
    o.response = std::move(r->response);
    switch (ClassifyStatus(h, status)) {
      case HttpClass::kSuccess:
        o.result = RunResult::kOk;
        break;
      case HttpClass::kRetry:
        o.result = RunResult::kHttp;
        o.error = "HTTP " + std::to_string(status);
        if (HonoursRetryAfter(status) && !r->retry_after.empty()) {
          if (auto ms = ParseRetryAfter(r->retry_after, NowUnixMs())) {
            o.fail_class = FailClass::kTempfail;
            // 0 or a past date: still a pause, not a burst of instant retries.
            o.retry_after_ms = std::min<int64_t>(std::max<int64_t>(*ms, kMinRetryAfterMs),
                                                 std::max<int64_t>(h.max_retry_after.count(), 1));
            o.error += " (Retry-After: " + std::to_string(o.retry_after_ms / 1000) + "s)";
          }
        }
        break;
      case HttpClass::kPermanent:
        o.result = RunResult::kHttp;
        o.fail_class = FailClass::kPermanent;
        o.error = "HTTP " + std::to_string(status);
        break;
    }
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    o.result = RunResult::kTimeout;
    o.error = "timed out after " + std::to_string(MonoMs() - r->t0_ms) + " ms" + detail;
    o.http_status = static_cast<int>(status);
  } else if ((rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_READ_ERROR) && r->body &&
             r->body->error != 0) {
    o.result = RunResult::kError;
    o.error = "read " + r->path + ": " + std::strerror(r->body->error);
  } else {
    o.result = RunResult::kError;
    o.error = std::string(curl_easy_strerror(rc)) + detail;
  }
  Finish(r, std::move(o));
}

bool HttpExecutor::Redirect(Request* r, long status) {
  char* location = nullptr;
  curl_easy_getinfo(r->easy.get(), CURLINFO_REDIRECT_URL, &location);
  if (location == nullptr || status == 304) return false;
  const std::string next = location;
  const std::string from = Origin(r->url);
  const std::string to = Origin(next);
  const auto fail = [&](const std::string& why) {
    Outcome o;
    o.result = RunResult::kHttp;
    o.fail_class = FailClass::kPermanent;
    o.http_status = static_cast<int>(status);
    o.response = std::move(r->response);
    o.error = "HTTP " + std::to_string(status) + ": " + why;
    Finish(r, std::move(o));
    return true;
  };
  if (to.empty()) return fail("redirect to an unusable URL");
  if (from.rfind("https:", 0) == 0 && to.rfind("https:", 0) != 0) {
    return fail("redirect from https:// to " + to.substr(0, to.find(':')) + ":// refused");
  }
  if (++r->redirects > kMaxRedirects) return fail("more than 10 redirects");
  if (to != from) r->drop_headers = true;  // the configured headers were meant for one origin
  r->url = next;
  Send(r);
  return true;
}

std::string HttpExecutor::Redact(std::string text, size_t keep) const {
  for (const std::string& secret : secrets_) {
    for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
      text.replace(at, secret.size(), "***");
    }
  }
  if (text.size() > keep) text.erase(0, text.size() - keep);
  // What the cut left of a secret at the start: its end.
  for (const std::string& secret : secrets_) {
    for (size_t n = std::min(secret.size() - 1, text.size()); n >= 4; --n) {
      if (text.compare(0, n, secret, secret.size() - n, n) == 0) {
        text.replace(0, n, "***");
        break;
      }
    }
  }
  return text;
}

void HttpExecutor::Finish(Request* r, Outcome o) {
  // A server may echo what it got (a URL, a header) in its answer or an
  // error: no secret goes on into the job record or the log.
  o.response = Redact(std::move(o.response), kResponseTailBytes);
  o.error = Redact(std::move(o.error), SIZE_MAX);
  auto it = busy_.find(r);
  DROPQ_CHECK(it != busy_.end());
  std::unique_ptr<Request> owned = std::move(it->second);
  busy_.erase(it);
  if (owned->in_multi) multi_.Remove(owned->easy.get());
  if (owned->started_ms != 0) {
    o.started_ms = owned->started_ms;
    o.duration_ms = MonoMs() - owned->t0_ms;
    o.ident = FileIdentity::FromStat(owned->st);
    o.work_path = owned->path;
  } else if (o.started_ms == 0) {
    o.started_ms = NowUnixMs();
  }
  if (owned->easy) {
    // Reset when taken again: until then libcurl never calls it.
    if (spare_easy_.size() < static_cast<size_t>(workers_)) {
      spare_easy_.push_back(std::move(owned->easy));
    }
  }
  // The descriptor closes now, or when a read still on the threadpool
  // returns (the buffer then goes with the Body).
  if (owned->body && !owned->body->reading) {
    owned->body->fd.Reset();
    if (owned->body->buf) GiveBack(std::move(owned->body->buf));
  }
  o.job = std::move(owned->job);
  owned.reset();
  reports_.Add(RunReport{RunReport::Kind::kFinished, std::move(o)});
  Pump();
}

std::unique_ptr<char[]> HttpExecutor::TakeBuffer() {
  if (spare_buffers_.empty()) return std::make_unique_for_overwrite<char[]>(kBodyBufferBytes);
  std::unique_ptr<char[]> buf = std::move(spare_buffers_.back());
  spare_buffers_.pop_back();
  return buf;
}

void HttpExecutor::GiveBack(std::unique_ptr<char[]> buf) {
  if (spare_buffers_.size() < static_cast<size_t>(workers_)) {
    spare_buffers_.push_back(std::move(buf));
  }
}

HttpExecutor::Easy HttpExecutor::TakeEasy() {
  if (spare_easy_.empty()) return Easy(curl_easy_init());
  Easy e = std::move(spare_easy_.back());
  spare_easy_.pop_back();
  return e;
}

void HttpExecutor::StartRead(Request* r) {
  std::shared_ptr<Body> b = r->body;
  b->reading = true;
  const uint64_t want = std::min<uint64_t>(kBodyBufferBytes, b->size - b->offset);
  auto got = std::make_shared<ssize_t>(0);
  auto err = std::make_shared<int>(0);
  const int rc = QueueWork(
      loop_->get(),
      [b, want, off = b->offset, got, err] {
        // Only this work touches b->buf while b->reading is set.
        ssize_t n;
        do {
          n = pread(b->fd.get(), b->buf.get(), want, static_cast<off_t>(off));
        } while (n < 0 && errno == EINTR);
        *got = n;
        *err = n < 0 ? errno : 0;
      },
      [alive = alive_, b, gen = b->generation, got, err] {
        b->reading = false;
        if (!*alive) return;
        Request* owner = b->owner;
        if (owner == nullptr) {
          b->fd.Reset();  // the request ended while this read ran
          return;
        }
        if (gen == b->generation) {
          if (*got < 0) {
            b->error = *err;
          } else if (*got == 0) {
            b->error = EIO;  // shorter than it was when checked: it was changed under us
          } else {
            b->len = static_cast<size_t>(*got);
            b->pos = 0;
            b->offset += static_cast<uint64_t>(*got);
          }
        }
        // A rewound body (a redirect, a retried connection) reads anew from 0.
        if (owner->paused && owner->in_multi) {
          owner->paused = false;
          curl_easy_pause(owner->easy.get(), CURLPAUSE_CONT);
        }
      });
  if (rc < 0) {
    b->reading = false;
    b->error = EAGAIN;
  }
}

size_t HttpExecutor::OnRead(char* buf, size_t size, size_t n, void* userp) noexcept {
  auto* r = static_cast<Request*>(userp);
  Body& b = *r->body;
  const size_t room = size * n;
  const auto copy = [&](const std::string& from, size_t* sent) {
    const size_t k = std::min(room, from.size() - *sent);
    std::memcpy(buf, from.data() + *sent, k);
    *sent += k;
    return k;
  };
  if (b.head_sent < b.head.size()) return copy(b.head, &b.head_sent);
  if (b.pos < b.len) {
    const size_t k = std::min(room, b.len - b.pos);
    std::memcpy(buf, b.buf.get() + b.pos, k);
    b.pos += k;
    // Drained: fill it again while libcurl sends what it has.
    if (b.pos == b.len && b.offset < b.size && !b.reading && b.error == 0) r->exec->StartRead(r);
    return k;
  }
  if (b.error != 0) return CURL_READFUNC_ABORT;
  if (b.offset >= b.size && !b.reading) {  // the whole file is sent
    if (b.tail_sent < b.tail.size()) return copy(b.tail, &b.tail_sent);
    return 0;
  }
  if (!b.reading) r->exec->StartRead(r);
  if (b.error != 0) return CURL_READFUNC_ABORT;
  r->paused = true;
  return CURL_READFUNC_PAUSE;
}

int HttpExecutor::OnSeek(void* userp, curl_off_t offset, int origin) noexcept {
  auto* r = static_cast<Request*>(userp);
  if (origin != SEEK_SET || offset != 0) return CURL_SEEKFUNC_CANTSEEK;
  Body& b = *r->body;
  // A read in flight belongs to the old stream: its bytes are dropped.
  b.generation += 1;
  b.offset = 0;
  b.len = b.pos = 0;
  b.head_sent = b.tail_sent = 0;
  return CURL_SEEKFUNC_OK;
}

size_t HttpExecutor::OnWrite(char* data, size_t size, size_t n, void* userp) noexcept {
  auto* r = static_cast<Request*>(userp);
  AppendTail(&r->response, std::string_view(data, size * n), r->exec->response_keep_);
  return size * n;
}

size_t HttpExecutor::OnHeader(char* data, size_t size, size_t n, void* userp) noexcept {
  auto* r = static_cast<Request*>(userp);
  const std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after a 100 Continue, say): only the final one counts.
    r->retry_after.clear();
    r->response.clear();
  } else if (line.size() > 12 && strncasecmp(line.data(), "Retry-After:", 12) == 0) {
    r->retry_after = std::string(line.substr(12));
  }
  return size * n;
}

}  // namespace dropq
