// dropq-web: the operator's console, a web page over the queues of one dropq
// configuration. See web/console.h and dropq-web(8).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "common/log.h"
#include "config/config.h"
#include "web/access.h"
#include "web/console.h"

namespace {

constexpr int kUsage = 64;
constexpr int kUnavailable = 69;
constexpr int kConfigError = 78;

// "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8080" -> host and port.
bool SplitListen(const std::string& listen, std::string* host, int* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = listen.substr(0, colon);
  if (host->front() == '[') {
    if (host->back() != ']') return false;
    *host = host->substr(1, host->size() - 2);
  }
  const std::string p = listen.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  *port = std::stoi(p);
  return *port <= 65535 && !host->empty();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dropq;
  CLI::App app{"dropq-web: the operator's console for dropq queues"};
  app.footer(
      "Exit status: 0 stopped, 64 usage, 69 cannot listen, 78 bad config.\n"
      "Without --token-file the console is read-only.");
  std::string config_path = "/etc/dropq/dropq.yaml";
  std::string listen = "127.0.0.1:8080";
  std::string token_file, tls_cert, tls_key;
  std::vector<std::string> allow_hosts;
  bool behind_proxy = false;
  int threads = 4;
  app.add_option("-c,--config", config_path, "dropq config file")->capture_default_str();
  app.add_option("--listen", listen, "address and port (HOST:PORT; port 0: any free port)")
      ->capture_default_str();
  app.add_option("--token-file", token_file, "file holding the token that enables actions");
  app.add_option("--tls-cert", tls_cert, "PEM certificate: serve HTTPS");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  app.add_flag("--behind-tls-proxy", behind_proxy,
               "a TLS reverse proxy sits in front: allow a non-loopback --listen without TLS");
  app.add_option("--allow-host", allow_hosts, "another host name the console is reached by");
  app.add_option("--threads", threads, "requests served at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.set_version_flag("-V,--version", std::string("dropq-web ") + DROPQ_VERSION);

  std::string host;
  int port = 0;
  try {
    app.parse(argc, argv);
    if (!SplitListen(listen, &host, &port)) {
      throw CLI::ValidationError("--listen", "want HOST:PORT, e.g. 127.0.0.1:8080");
    }
    if (tls_cert.empty() != tls_key.empty()) {
      throw CLI::ValidationError("--tls-cert", "--tls-cert and --tls-key go together");
    }
    if ((host == "0.0.0.0" || host == "::") && allow_hosts.empty()) {
      // The Host check would then refuse every request.
      throw CLI::ValidationError(
          "--listen", host +
                          " is no name a browser uses: give --allow-host NAME for each name "
                          "the console is reached by");
    }
    if (!web::IsLoopback(host) && tls_cert.empty() && !behind_proxy) {
      throw CLI::ValidationError(
          "--listen", host +
                          " is reachable from other machines: give --tls-cert and --tls-key, "
                          "or --behind-tls-proxy if a TLS reverse proxy is in front");
    }
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsage;
  }

  std::string token;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in) {
      std::fprintf(stderr, "dropq-web: cannot read --token-file %s\n", token_file.c_str());
      return kConfigError;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    token = ss.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' ||
                              token.back() == '\t')) {
      token.pop_back();
    }
    if (token.size() < 16) {
      std::fprintf(stderr, "dropq-web: --token-file %s: the token must be at least 16 characters\n",
                   token_file.c_str());
      return kConfigError;
    }
    struct stat st;
    if (stat(token_file.c_str(), &st) == 0 && (st.st_mode & S_IROTH) != 0) {
      LogWarn("console.token_readable", {{"file", token_file}, {"hint", "chmod o-r"}});
    }
  }

  // Redis' secrets only: the console runs no handler.
  auto cfg = LoadConfig(config_path, LoadOptions{.handler_secrets = false});
  if (!cfg.ok()) {
    std::fprintf(stderr, "dropq-web: %s\n", cfg.error().what.c_str());
    return kConfigError;
  }
  SetLogLevel(cfg->log_level);

  // Signals are taken by one thread with sigwait(); the server's threads,
  // started after this, inherit the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  web::Console console(*cfg, web::AccessPolicy(host, allow_hosts, token),
                       web::Console::Options{host, port, tls_cert, tls_key, threads});
  if (Status s = console.Bind(); !s.ok()) {
    std::fprintf(stderr, "dropq-web: %s\n", s.error().what.c_str());
    return kUnavailable;
  }
  LogInfo("console.listening", {{"address", host},
                                {"port", console.port()},
                                {"tls", tls_cert.empty() ? (behind_proxy ? "proxy" : "no") : "yes"},
                                {"actions", token.empty() ? "off" : "token"}});
  std::atomic<bool> stopping = false;
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    stopping = true;
    LogInfo("console.stopping", {{"signal", sig}});
    console.Stop();
  });
  console.Run();
  // Run() can also end on its own (the socket failed): wake the waiter.
  if (!stopping) kill(getpid(), SIGTERM);
  waiter.join();
  return 0;
}
