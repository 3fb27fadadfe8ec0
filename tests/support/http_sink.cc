#include "tests/support/http_sink.h"

#include <gtest/gtest.h>

#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {

TestCa MakeTestCa(const std::string& dir) {
  const std::string script =
      "set -e; cd '" + dir +
      "'\n"
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
      "  -subj /CN=dropq-test-ca 2>/dev/null\n"
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
      "  -subj /CN=127.0.0.1 2>/dev/null\n"
      "printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf\n"
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
      "  -out server.pem -days 2 -extfile ext.cnf 2>/dev/null\n";
  const CommandResult r = RunCommand({"/bin/sh", "-c", script});
  if (r.status != 0) {
    ADD_FAILURE() << "openssl failed: " << r.out << r.err;
    return {};
  }
  return {dir + "/ca.pem", dir + "/server.pem", dir + "/server.key"};
}

HttpSink::HttpSink(Options opts) : log_(dir_.Sub("requests.jsonl")), tls_(!opts.cert.empty()) {
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   std::string(DROPQ_SOURCE_DIR) + "/tests/support/http_sink.py",
                                   "--port-file",
                                   dir_.Sub("port"),
                                   "--log",
                                   log_,
                                   "--delay-ms",
                                   std::to_string(opts.delay_ms),
                                   "--stall-s",
                                   std::to_string(opts.stall_s),
                                   "--retry-after",
                                   opts.retry_after};
  if (!opts.redirect_to.empty()) {
    argv.push_back("--redirect-to");
    argv.push_back(opts.redirect_to);
  }
  if (tls_) {
    argv.insert(argv.end(), {"--cert", opts.cert, "--key", opts.key});
  }
  server_ = std::make_unique<Process>(argv, dir_.Sub("server.log"));
  EXPECT_TRUE(
      WaitFor([&] { return !ReadFile(dir_.Sub("port")).empty(); }, std::chrono::seconds(20)))
      << "http_sink.py did not start: " << ReadFile(dir_.Sub("server.log"));
  port_ = std::atoi(ReadFile(dir_.Sub("port")).c_str());
}

HttpSink::~HttpSink() = default;  // Process SIGKILLs the server

std::string HttpSink::base() const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

std::vector<nlohmann::json> HttpSink::Requests() const {
  std::vector<nlohmann::json> out;
  for (const std::string& line : ReadLines(log_)) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) out.push_back(std::move(j));  // a line being written
  }
  return out;
}

}  // namespace dropq::test
