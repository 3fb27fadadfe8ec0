// HttpSink runs tests/support/http_sink.py, a real HTTP(S) server on
// loopback whose answers depend on the file name (see the script), and reads
// back what it received: every request's arrival, end, headers and body
// digest. MakeTestCa() makes a private CA and a certificate for 127.0.0.1
// with the openssl command. Thread: owner (the test).
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace dropq::test {

struct TestCa {
  std::string ca_cert;      // the CA's certificate (for ca_file)
  std::string server_cert;  // a certificate for IP 127.0.0.1 signed by the CA
  std::string server_key;
};
// Makes a CA and a server certificate in `dir`. Adds a test failure and
// returns empty paths if openssl fails.
TestCa MakeTestCa(const std::string& dir);

class HttpSink {
 public:
  struct Options {
    int delay_ms = 0;               // every plain request waits this long before its answer
    double stall_s = 5.0;           // stall-* (answer late) and slow-* (read late) requests
    std::string retry_after = "2";  // r429-*
    std::string redirect_to;        // redir-*: "http://127.0.0.1:<port>" of another sink
    std::string cert, key;          // TLS
  };
  // Starts the server; waits until it listens (adds a test failure if not).
  explicit HttpSink(Options opts);
  HttpSink() : HttpSink(Options{}) {}
  ~HttpSink();
  HttpSink(const HttpSink&) = delete;
  HttpSink& operator=(const HttpSink&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:<port>" (https:// with TLS).
  std::string base() const;
  // Every request answered so far, in the order answered.
  std::vector<nlohmann::json> Requests() const;

 private:
  TempDir dir_;
  std::string log_;
  bool tls_ = false;
  int port_ = -1;
  std::unique_ptr<Process> server_;
};

}  // namespace dropq::test
