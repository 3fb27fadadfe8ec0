// HttpExecutor runs a queue's HTTP handler: each job is one request, driven
// by libcurl's multi interface on dropqd's loop (daemon/curl_multi.h), up to
// `workers` at once, none holding a thread. The blocking parts of a job run
// on libuv's threadpool, never on the loop: making the file ready (Enter():
// moved into the processing area if the queue moves or deletes files, opened
// and checked to be the job's file) and reading it. The body streams from
// that checked descriptor through one small buffer per request, filled by
// pread() on the threadpool while the transfer is paused; a file that fits
// in that buffer comes whole with the first read and is sent from memory:
//
//   Accept -> waiting_ --slot free--> Enter (pool) -> kStarted
//          -> transfer on the loop <-> pread (pool) into the buffer
//          -> response classified (workers/http_request.h) -> kFinished
//
// Redirects (follow_redirects: true) are followed here, not by libcurl, so
// that a redirect to another host drops every configured header (libcurl
// keeps all but Authorization) and one from https:// never goes to http://.
//
// Thread: loop (every method, and the Sink is called there). Ownership: the
// runner owns the executor; the executor owns its requests and what they
// read; work still on the threadpool when it is destroyed finds it gone.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/job.h"
#include "config/config.h"
#include "daemon/curl_multi.h"
#include "daemon/loop.h"
#include "daemon/report_queue.h"
#include "daemon/uv_handle.h"
#include "daemon/waiting_jobs.h"
#include "workers/executor.h"
#include "workers/processing.h"

namespace dropq {

class HttpExecutor final : public Executor {
 public:
  // `q` (kind kHttp) and `loop` must outlive the executor. Files are found
  // in `q.watch` and, per `layout`, in processing area `area`; at most
  // `capacity` jobs wait for a slot.
  HttpExecutor(Loop* loop, Sink sink, const QueueConfig& q, AreaLayout layout, std::string area,
               size_t capacity);
  // Aborts requests still in flight without reporting them.
  ~HttpExecutor() override;
  HttpExecutor(const HttpExecutor&) = delete;
  HttpExecutor& operator=(const HttpExecutor&) = delete;

  void Start() override {}
  int slots() const override { return workers_; }
  size_t room() const override { return waiting_.room(); }
  size_t waiting() const override { return waiting_.size(); }
  void Accept(std::vector<Job> jobs) override;
  std::vector<Job> TakeBack() override;
  void Stop() override;
  bool stopped() const override { return stopping_ && busy_.empty() && waiting_.empty(); }
  // Aborts the requests in flight (kInterrupted); with `also_later`, every
  // job that starts from now on ends so at once.
  void Interrupt(bool also_later) override;

 private:
  struct Body;
  struct Request;
  // What the threadpool found: the file made ready, and its first bytes.
  struct Entering {
    Entered in;
    std::unique_ptr<char[]> first;  // a body buffer, filled from offset 0
    ssize_t got = 0;                // pread's result (-1: err)
    int err = 0;
  };

  // Starts waiting jobs while a slot is free, once this loop turn's other
  // work is done (pump_idle_): the jobs of every request that ended in one
  // turn enter in a few threadpool trips, not one each.
  void Pump();
  void StartWaiting();
  void OnEntered(Request* r, Entering&& e);
  // Configures r's transfer for its current URL and adds it to the multi.
  void Send(Request* r);
  void OnDone(Request* r, CURLcode rc);
  // Follows a 3xx if it may; false if the outcome stands as it is.
  bool Redirect(Request* r, long status);
  // Reports `o` for r's job and frees r.
  void Finish(Request* r, Outcome o);

  // `text` with every secret of the queue's http: settings replaced by "***",
  // cut to its last `keep` bytes (a piece of a secret the cut left at the
  // start hidden too).
  std::string Redact(std::string text, size_t keep) const;

  // libcurl callbacks (`userp` is the Request).
  static size_t OnRead(char* buf, size_t size, size_t n, void* userp) noexcept;
  static int OnSeek(void* userp, curl_off_t offset, int origin) noexcept;
  static size_t OnWrite(char* data, size_t size, size_t n, void* userp) noexcept;
  static size_t OnHeader(char* data, size_t size, size_t n, void* userp) noexcept;
  // Fills r's buffer from the file on the threadpool; unpauses r when done.
  void StartRead(Request* r);

  // Body buffers and easy handles are reused (at most `workers` kept
  // spare): a fresh 32 KiB buffer per request costs page faults to fill
  // and a trim of the heap to free, and a fresh easy handle its set-up.
  std::unique_ptr<char[]> TakeBuffer();
  void GiveBack(std::unique_ptr<char[]> buf);
  struct EasyDeleter {
    void operator()(CURL* e) const { curl_easy_cleanup(e); }
  };
  using Easy = std::unique_ptr<CURL, EasyDeleter>;
  // Null if libcurl cannot make one.
  Easy TakeEasy();

  Loop* const loop_;
  ReportQueue reports_;  // to the sink, a batch per loop turn
  const QueueConfig& q_;
  const AreaLayout layout_;
  const std::string area_;
  const int workers_;
  WaitingJobs waiting_;                     // accepted, not started
  const std::vector<std::string> secrets_;  // values to hide from records and logs, longest first
  const size_t response_keep_;              // of an answer's body, before Redact() cuts it
  CurlMulti multi_;
  UvHandle<uv_idle_t> pump_idle_;  // active while a Pump() waits for StartWaiting()
  std::unordered_map<Request*, std::unique_ptr<Request>> busy_;  // entering or in flight
  bool stopping_ = false;
  bool interrupt_all_ = false;                   // past the drain timeout: every start ends at once
  std::mt19937_64 rng_{std::random_device{}()};  // multipart boundaries
  std::vector<std::unique_ptr<char[]>> spare_buffers_;
  std::vector<Easy> spare_easy_;  // out of the multi, reset when taken
  // Cleared by the destructor: threadpool work and posts that come back
  // later must not touch the executor.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dropq
