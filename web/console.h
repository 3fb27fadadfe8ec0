// Console is dropq-web's HTTP server: the operator's page (web/assets/,
// compiled in) and the JSON API under /api/ that the page uses
// (docs/console-api.md). It reads Redis as dropqctl does, through the same
// operations (ctl/commands.h, ctl/job_query.h), and writes to it only for
// the actions: pause, resume, retry, delete.
//
// Every request passes AccessPolicy (web/access.h) before it is routed:
// a foreign Host is refused (403) before anything is read; an action needs
// an allowed Origin (when sent) and the token. Every response carries a
// strict Content-Security-Policy: the page runs only its own script, and
// every name, error and handler output it shows is set as text.
//
// Redis: synchronous connections, one per request being served at once
// (at most Options::threads), kept for the next request and made again
// after a failure. Every call the console makes is short (a search reads in slices,
// ctl/job_query.h); while Redis is unreachable the API answers 503 {"error": "Redis unreachable:
// ..."} and the page says so, then recovers by itself.
//
// Thread: any. The server's worker threads run the handlers; Run() blocks
// the calling thread until Stop() (from any thread, e.g. a signal thread).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "store/redis_sync.h"
#include "web/access.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace dropq::web {

class Console {
 public:
  struct Options {
    std::string listen_host = "127.0.0.1";
    int port = 8080;       // 0: any free port (port() tells)
    std::string tls_cert;  // PEM files; both set: HTTPS
    std::string tls_key;
    int threads = 4;  // requests served at once
  };

  // `cfg` and `access` are copied.
  Console(const Config& cfg, const AccessPolicy& access, Options opts);
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // Binds the listening socket (and loads the TLS certificate). Errc::kIo
  // with the reason if it cannot.
  Status Bind();
  // The bound port. REQUIRES: Bind() succeeded.
  int port() const { return port_; }
  // Serves until Stop(). REQUIRES: Bind() succeeded.
  void Run();
  // Makes Run() return once the requests in progress are answered.
  void Stop();

 private:
  void Routes();
  // Runs `fn` with a Redis connection of its own (an idle one, or a new
  // one); a lost connection answers 503 and is not kept.
  template <typename Fn>
  void WithRedis(httplib::Response& res, Fn fn);
  // Checks the token and Origin of an action; false after answering 401/403.
  bool MayAct(const httplib::Request& req, httplib::Response& res);
  // One log line per action: what, on what, how many, from where.
  void LogAction(const httplib::Request& req, const std::string& action, const std::string& queue,
                 size_t asked, size_t done);

  const Config cfg_;
  const AccessPolicy access_;
  const Options opts_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::mutex mu_;                                 // guards idle_
  std::vector<std::unique_ptr<RedisSync>> idle_;  // connections no request uses now
};

}  // namespace dropq::web
