// The HTTP handler end to end: the real dropqd sends files to a real HTTP(S)
// server on loopback (tests/support/http_sink.py), which records what
// arrived. Each file arrives once with its bytes; statuses, Retry-After,
// timeouts, TLS and secrets end as configured; a kill -9 mid-request re-sends.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>

#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/http_sink.h"
#include "tests/support/proc_stats.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// An http: handler map for QueueSpec::handler: `url`, then `more` lines.
std::string HttpHandler(const std::string& url, const std::string& more = "") {
  std::string h = "http:\n  url: \"" + url + "\"";
  size_t start = 0;
  while (start < more.size()) {
    size_t nl = more.find('\n', start);
    if (nl == std::string::npos) nl = more.size();
    h += "\n  " + more.substr(start, nl - start);
    start = nl + 1;
  }
  return h;
}

// Waits until `n` jobs of queue q have their first run recorded as started.
bool WaitForStarted(DropqEnv& env, int n) {
  return WaitFor(
      [&] {
        int started = 0;
        for (const std::string& id : JobIds(env.redis, "q")) {
          if (JobRecord(env.redis, "q", id)["attempt"] == "1") ++started;
        }
        return started == n;
      },
      seconds(20));
}

// Requests the sink answered, by path (without the query).
std::map<std::string, std::vector<nlohmann::json>> ByPath(const HttpSink& sink) {
  std::map<std::string, std::vector<nlohmann::json>> out;
  for (auto& r : sink.Requests()) {
    std::string p = r["path"].get<std::string>();
    out[p.substr(0, p.find('?'))].push_back(std::move(r));
  }
  return out;
}

TEST(HttpHandlerTest, TwoThousandFilesArriveOnceWithTheirBytes) {
  HttpSink sink;
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.workers = 64;
  q.handler = HttpHandler(sink.base() + "/up/{relpath}?job={job_id}",
                          "method: PUT\ncontent_type: application/pdf\n"
                          "headers: { Idempotency-Key: \"{job_id}\" }");
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start());
  constexpr int kFiles = 2000;
  std::mt19937 rng(7);
  std::map<std::string, std::string> digest;  // "/up/<name>" -> sha256
  for (int i = 0; i < kFiles; ++i) {
    const std::string name = "f" + std::to_string(i) + ".pdf";
    std::string content(rng() % 20000, '\0');
    for (char& c : content) c = static_cast<char>(rng());
    digest["/up/" + name] = Sha256Hex(content);
    WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/" + name, content);
  }
  ASSERT_TRUE(WaitForOutcomes(env.redis, kFiles, 0, seconds(120))) << env.DaemonLog();
  const auto by_path = ByPath(sink);
  ASSERT_EQ(by_path.size(), digest.size());
  for (const auto& [path, reqs] : by_path) {
    ASSERT_EQ(reqs.size(), 1u) << path << " arrived " << reqs.size() << " times";
    const nlohmann::json& r = reqs[0];
    EXPECT_EQ(r["method"], "PUT");
    EXPECT_EQ(r["sha256"], digest[path]) << path;
    EXPECT_EQ(r["headers"]["content-type"], "application/pdf");
    EXPECT_EQ(r["headers"].count("expect"), 0u);
    const std::string id = r["headers"]["idempotency-key"];
    EXPECT_EQ(r["path"].get<std::string>(), path + "?job=" + id);
    const auto rec = JobRecord(env.redis, "q", id);
    EXPECT_EQ(rec.at("state"), "done") << path;
    EXPECT_EQ(rec.at("http_status"), "200");
    EXPECT_EQ(rec.at("response"), "ok " + r["path"].get<std::string>() + "\n");
  }
  EXPECT_EQ(ListDir(env.done).size(), static_cast<size_t>(kFiles));
  EXPECT_EQ(env.Stop(), 0);
}

// 64 requests of 50 MB files in flight to a server that reads nothing for
// a while: each request holds one small buffer, never its file.
TEST(HttpHandlerTest, SixtyFourBigUploadsInFlightKeepMemorySmall) {
  HttpSink::Options o;
  o.stall_s = 3;
  HttpSink sink(o);
  DisableAsanQuarantine();
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.workers = 64;
  q.on_success = "keep";
  q.handler = HttpHandler(sink.base() + "/big/{name}", "timeout: 2m");
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start());
  const long started_kib = ProcStatusKiB(env.daemon()->pid(), "VmHWM");
  constexpr off_t kSize = 50 << 20;
  for (int i = 0; i < 64; ++i) {
    // Sparse: 50 MB to send, none of it on disk.
    const std::string staging = env.tmp.Sub("staging");
    WriteFile(staging, "");
    ASSERT_EQ(::truncate(staging.c_str(), kSize), 0);
    ASSERT_EQ(::rename(staging.c_str(), (env.inbox + "/slow-" + std::to_string(i)).c_str()), 0);
  }
  ASSERT_TRUE(WaitForOutcomes(env.redis, 64, 0, seconds(120))) << env.DaemonLog();
  const auto reqs = sink.Requests();
  ASSERT_EQ(reqs.size(), 64u);
  for (const auto& r : reqs) EXPECT_EQ(r["size"].get<long>(), kSize);
  // Every request was in flight at once: each arrived before any was answered.
  double first_end = 1e18;
  double last_start = 0;
  for (const auto& r : reqs) {
    first_end = std::min(first_end, r["end"].get<double>());
    last_start = std::max(last_start, r["start"].get<double>());
  }
  EXPECT_LT(last_start, first_end);
  const long hwm_kib = ProcStatusKiB(env.daemon()->pid(), "VmHWM");
  std::printf("[ measure  ] dropqd VmHWM %ld KiB at start, %ld KiB after 64 x 50 MB in flight\n",
              started_kib, hwm_kib);
#if DROPQ_TEST_ASAN
  // ASan's shadow memory and allocator make the absolute figure meaningless:
  // the growth is what the requests cost.
  EXPECT_LT(hwm_kib - started_kib, 16 * 1024);
#else
  EXPECT_LT(hwm_kib, 24 * 1024);
#endif
  EXPECT_EQ(env.Stop(), 0);
}

TEST(HttpHandlerTest, StatusesRetryAfterAndTimeoutsEndAsConfigured) {
  HttpSink::Options o;
  o.stall_s = 4;
  o.retry_after = "2";
  HttpSink sink(o);
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.workers = 8;
  q.retry = "{ max_attempts: 3, initial_delay: 200ms, max_delay: 400ms }";
  q.handler = HttpHandler(sink.base() + "/in/{name}", "timeout: 1s");
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start());
  for (const char* n : {"s503-a", "s503-b", "r429-a", "b400-a", "stall-a", "plain-a"}) {
    WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/" + n, n);
  }
  ASSERT_TRUE(WaitForOutcomes(env.redis, 4, 2, seconds(60))) << env.DaemonLog();
  const auto id = [&](const std::string& n) { return OnlyJobId(env.redis, "q", n); };
  const auto by_path = ByPath(sink);

  // 503 twice: two attempts used, done at the third, each failure in the history.
  for (const char* n : {"s503-a", "s503-b"}) {
    const auto rec = JobRecord(env.redis, "q", id(n));
    EXPECT_EQ(rec.at("state"), "done") << n;
    EXPECT_EQ(rec.at("attempt"), "3");
    EXPECT_EQ(rec.at("failures"), "2");
    EXPECT_EQ(rec.at("http_status"), "200");
    EXPECT_NE(rec.at("attempt.1").find("result=http http=503"), std::string::npos)
        << rec.at("attempt.1");
    EXPECT_EQ(rec.at("response.2"), "error 503\n");
    EXPECT_EQ(by_path.at(std::string("/in/") + n).size(), 3u);
  }
  // 429 with Retry-After: 2: retried after two seconds, no attempt used up.
  {
    const auto rec = JobRecord(env.redis, "q", id("r429-a"));
    EXPECT_EQ(rec.at("state"), "done");
    EXPECT_EQ(rec.at("failures"), "0");
    EXPECT_EQ(rec.at("tempfails"), "1");
    EXPECT_NE(rec.at("attempt.1").find("http=429"), std::string::npos);
    const auto& reqs = by_path.at("/in/r429-a");
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_GE(reqs[1]["start"].get<double>() - reqs[0]["end"].get<double>(), 1.9);
  }
  // 400: failed at once, one request, the answer kept.
  {
    const auto rec = JobRecord(env.redis, "q", id("b400-a"));
    EXPECT_EQ(rec.at("state"), "failed");
    EXPECT_EQ(rec.at("attempt"), "1");
    EXPECT_EQ(rec.at("result"), "http");
    EXPECT_EQ(rec.at("http_status"), "400");
    EXPECT_EQ(rec.at("response"), "error 400\n");
    EXPECT_EQ(by_path.at("/in/b400-a").size(), 1u);
    EXPECT_TRUE(Exists(env.failed + "/b400-a"));
  }
  // Past the timeout three times: failed, each run a timeout.
  {
    const auto rec = JobRecord(env.redis, "q", id("stall-a"));
    EXPECT_EQ(rec.at("state"), "failed");
    EXPECT_EQ(rec.at("result"), "timeout");
    EXPECT_EQ(rec.at("attempt"), "3");
    for (const char* f : {"attempt.1", "attempt.2", "attempt.3"}) {
      EXPECT_NE(rec.at(f).find("result=timeout"), std::string::npos) << rec.at(f);
    }
  }
  // dropqctl show prints the status and the answer.
  const CommandResult show = env.Ctl({"show", id("b400-a")});
  EXPECT_EQ(show.status, 0);
  EXPECT_NE(show.out.find("http_status: 400"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("response:\n  | error 400"), std::string::npos) << show.out;
  EXPECT_EQ(env.Stop(), 0);
}

TEST(HttpHandlerTest, RetryAfterIsCappedByMaxRetryAfter) {
  HttpSink::Options o;
  o.retry_after = "31536000";  // a year
  HttpSink sink(o);
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = HttpHandler(sink.base() + "/in/{name}", "max_retry_after: 1s");
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start());
  WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/r429-year", "x");
  ASSERT_TRUE(WaitForOutcomes(env.redis, 1, 0, seconds(20))) << env.DaemonLog();
  const auto reqs = ByPath(sink).at("/in/r429-year");
  ASSERT_EQ(reqs.size(), 2u);
  const double gap = reqs[1]["start"].get<double>() - reqs[0]["end"].get<double>();
  EXPECT_GE(gap, 0.9);
  EXPECT_LT(gap, 5);
  EXPECT_EQ(env.Stop(), 0);
}

// A 429 with Retry-After holds the whole queue back, not only its job.
TEST(HttpHandlerTest, RetryAfterThrottlesTheQueue) {
  HttpSink::Options o;
  o.retry_after = "3";
  HttpSink sink(o);
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = HttpHandler(sink.base() + "/t/{name}");
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start());
  WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/r429-first", "x");
  nlohmann::json st;
  ASSERT_TRUE(WaitFor(
      [&] {
        st = CtlStatus(env, "q");
        return st.is_object() && st["throttled_until"].is_number();
      },
      seconds(10)))
      << env.DaemonLog();
  EXPECT_EQ(st["throttled_reason"], "HTTP 429 Retry-After 3s");
  const CommandResult human = env.Ctl({"status"});
  EXPECT_NE(human.out.find("q: throttled until "), std::string::npos) << human.out;
  WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/plain-second", "y");
  ASSERT_TRUE(WaitForOutcomes(env.redis, 2, 0, seconds(20))) << env.DaemonLog();
  const auto by_path = ByPath(sink);
  const double refused_at = by_path.at("/t/r429-first")[0]["end"].get<double>();
  const double second_at = by_path.at("/t/plain-second")[0]["start"].get<double>();
  EXPECT_GE(second_at - refused_at, 2.9);  // it waited out the throttle too
  EXPECT_TRUE(CtlStatus(env, "q")["throttled_until"].is_null());
  EXPECT_EQ(StatCounter(env.redis, "q", "throttled"), 1);
  EXPECT_EQ(env.Stop(), 0);
}

TEST(HttpHandlerTest, PrivateCaIsTrustedOnlyWithCaFile) {
  TempDir ca_dir;
  const TestCa ca = MakeTestCa(ca_dir.path());
  ASSERT_FALSE(ca.ca_cert.empty());
  HttpSink::Options o;
  o.cert = ca.server_cert;
  o.key = ca.server_key;
  HttpSink sink(o);
  for (const bool trusted : {true, false}) {
    SCOPED_TRACE(trusted ? "with ca_file" : "without ca_file");
    DropqEnv env;
    ASSERT_TRUE(env.redis.ok());
    QueueSpec q;
    q.handler = HttpHandler(sink.base() + "/tls/{name}", trusted ? "ca_file: " + ca.ca_cert : "");
    env.WriteConfig(q);
    ASSERT_TRUE(env.Start());
    const std::string name = trusted ? "trusted.bin" : "untrusted.bin";
    WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/" + name, "secret bytes");
    ASSERT_TRUE(WaitForOutcomes(env.redis, trusted ? 1 : 0, trusted ? 0 : 1, seconds(20)))
        << env.DaemonLog();
    const auto rec = JobRecord(env.redis, "q", OnlyJobId(env.redis, "q", name));
    if (trusted) {
      EXPECT_EQ(rec.at("http_status"), "200");
      EXPECT_EQ(ByPath(sink).count("/tls/" + name), 1u);
    } else {
      EXPECT_EQ(rec.at("result"), "error");
      EXPECT_NE(rec.at("error").find("certificate"), std::string::npos) << rec.at("error");
      EXPECT_EQ(ByPath(sink).count("/tls/" + name), 0u);
    }
    EXPECT_EQ(env.Stop(), 0);
  }
}

TEST(HttpHandlerTest, MultipartAndJsonBodies) {
  HttpSink sink;
  for (const std::string body : {"multipart", "json"}) {
    SCOPED_TRACE(body);
    DropqEnv env;
    ASSERT_TRUE(env.redis.ok());
    QueueSpec q;
    q.on_success = "keep";
    q.handler =
        HttpHandler(sink.base() + "/" + body + "/{name}",
                    body == "multipart" ? "method: POST\nbody: multipart\nfile_field: document\n"
                                          "fields: { job: \"{job_id}\", kind: scan }"
                                        : "method: POST\nbody: json");
    env.WriteConfig(q);
    ASSERT_TRUE(env.Start());
    WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/doc.pdf", "%PDF-1.4 body");
    ASSERT_TRUE(WaitForOutcomes(env.redis, 1, 0, seconds(20))) << env.DaemonLog();
    const auto reqs = ByPath(sink).at("/" + body + "/doc.pdf");
    ASSERT_EQ(reqs.size(), 1u);
    const std::string ct = reqs[0]["headers"]["content-type"];
    EXPECT_EQ(reqs[0]["method"], "POST");
    if (body == "multipart") {
      ASSERT_EQ(ct.rfind("multipart/form-data; boundary=", 0), 0u) << ct;
      const std::string b = ct.substr(30);
      const std::string id = OnlyJobId(env.redis, "q", "doc.pdf");
      const std::string form =
          "--" + b + "\r\nContent-Disposition: form-data; name=\"job\"\r\n\r\n" + id + "\r\n" +
          "--" + b + "\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nscan\r\n" + "--" +
          b +
          "\r\nContent-Disposition: form-data; name=\"document\"; filename=\"doc.pdf\"\r\n"
          "Content-Type: application/octet-stream\r\n\r\n%PDF-1.4 body\r\n--" +
          b + "--\r\n";
      EXPECT_EQ(reqs[0]["sha256"], Sha256Hex(form));
    } else {
      EXPECT_EQ(ct, "application/json");
      const std::string id = OnlyJobId(env.redis, "q", "doc.pdf");
      const std::string doc = "{\"queue\":\"q\",\"job_id\":\"" + id +
                              "\",\"relpath\":\"doc.pdf\",\"name\":\"doc.pdf\",\"size\":13,"
                              "\"attempt\":1}";
      EXPECT_EQ(reqs[0]["sha256"], Sha256Hex(doc));
    }
    EXPECT_EQ(env.Stop(), 0);
  }
}

// Every value Redis holds, read by type: what a secret must never be in.
std::string EveryRedisValue(const RedisServer& redis) {
  std::string all;
  for (const std::string& key : redis.CmdList({"KEYS", "*"})) {
    const std::string type = redis.Cmd({"TYPE", key});
    std::vector<std::string> v;
    if (type == "string") v = {redis.Cmd({"GET", key})};
    if (type == "hash") v = redis.CmdList({"HGETALL", key});
    if (type == "list") v = redis.CmdList({"LRANGE", key, "0", "-1"});
    if (type == "set") v = redis.CmdList({"SMEMBERS", key});
    if (type == "zset") v = redis.CmdList({"ZRANGE", key, "0", "-1", "WITHSCORES"});
    if (type == "stream") v = redis.CmdList({"XRANGE", key, "-", "+"});
    all += key + "\n";
    for (const std::string& x : v) all += x + "\n";
  }
  return all;
}

TEST(HttpHandlerTest, SecretsReachTheServerAndNothingElse) {
  HttpSink sink;
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  // dropqd runs as an unprivileged user, and so do its handlers: what one of
  // them can read of dropqd is what any handler of dropq's user could.
  constexpr uid_t kDropq = 65534;
  ASSERT_EQ(::chmod(env.tmp.path().c_str(), 0755), 0);
  const std::string exec_inbox = env.tmp.Mkdir("exec-inbox");
  const std::string creds = env.tmp.Mkdir("creds");
  for (const std::string& d : {env.inbox, env.done, env.failed, exec_inbox, creds}) {
    ASSERT_EQ(::chown(d.c_str(), kDropq, kDropq), 0);
  }
  const std::string env_token = "env-tok-5f1d2c";
  const std::string file_token = "file-tok-a83b91";
  const std::string cred_token = "cred-tok-77e0c4";
  WriteFile(env.tmp.Sub("token"), file_token + "\n");
  WriteFile(creds + "/api", cred_token);
  for (const std::string& f : {env.tmp.Sub("token"), creds + "/api"}) {
    ASSERT_EQ(::chown(f.c_str(), kDropq, kDropq), 0);
    ASSERT_EQ(::chmod(f.c_str(), 0600), 0);
  }
  const int metrics_port = FreePort();
  QueueSpec q;
  q.handler = HttpHandler(sink.base() + "/s/{name}?k=${env:DROPQ_TEST_API_TOKEN}",
                          "headers:\n"
                          "  X-Env: \"Bearer ${env:DROPQ_TEST_API_TOKEN}\"\n"
                          "  X-File: \"${file:" +
                              env.tmp.Sub("token") +
                              "}\"\n"
                              "  X-Cred: \"${cred:api}\"\n"
                              "  X-Name: \"{name}\"");
  env.WriteConfig(q, "metrics: { listen: \"127.0.0.1:" + std::to_string(metrics_port) + "\" }\n");
  // A second queue whose exec handler looks for the token where a handler could.
  // It writes what it found outside any watched directory.
  const std::string out = env.tmp.Mkdir("probe-out");
  ASSERT_EQ(::chown(out.c_str(), kDropq, kDropq), 0);
  const std::string probe = WriteScript(
      env.tmp.Sub("probe.sh"), "env > " + out + "/env\n" + "cat /proc/$PPID/environ > " + out +
                                   "/proc 2>/dev/null || echo denied > " + out + "/proc\n");
  std::string yaml = ReadFile(env.config);
  yaml += "  - name: e\n    watch: " + exec_inbox + "\n    handler:\n      exec: [\"" + probe +
          "\"]\n    processing_dir: \"off\"\n";
  WriteFile(env.config, yaml);
  ASSERT_EQ(::chmod(env.config.c_str(), 0644), 0);
  ASSERT_EQ(setenv("DROPQ_TEST_API_TOKEN", env_token.c_str(), 1), 0);
  ASSERT_EQ(setenv("CREDENTIALS_DIRECTORY", creds.c_str(), 1), 0);
  env.StartWrapped({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all"});
  unsetenv("DROPQ_TEST_API_TOKEN");
  unsetenv("CREDENTIALS_DIRECTORY");
  ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "scan.done") >= 2; }, seconds(20)))
      << env.DaemonLog();

  const std::string injected = "a\r\nX-Injected: 1";
  WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/" + injected, "x");
  WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/plain.txt", "y");
  WriteAndRename(env.tmp.Sub("staging"), exec_inbox + "/probe", "z");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 2; }, seconds(20)))
      << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "e", "done") == 1; }, seconds(20)))
      << env.DaemonLog();

  // The server got all three, and no header a file name made.
  const auto reqs = sink.Requests();
  ASSERT_EQ(reqs.size(), 2u);
  for (const auto& r : reqs) {
    EXPECT_EQ(r["headers"]["x-env"], "Bearer " + env_token);
    EXPECT_EQ(r["headers"]["x-file"], file_token);
    EXPECT_EQ(r["headers"]["x-cred"], cred_token);
    EXPECT_EQ(r["headers"].count("x-injected"), 0u) << r.dump();
    EXPECT_NE(r["path"].get<std::string>().find("?k=" + env_token), std::string::npos);
  }
  std::set<std::string> names;
  for (const auto& r : reqs) names.insert(r["headers"]["x-name"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"a%0D%0AX-Injected%3A%201", "plain.txt"}));

  // Nowhere else: the log at debug level, Redis, /metrics, dropqctl show,
  // the handler's environment and what it can read of dropqd's.
  const std::string id = OnlyJobId(env.redis, "q", "plain.txt");
  const CommandResult show = env.Ctl({"show", id});
  EXPECT_EQ(show.status, 0) << show.err;
  const CommandResult show_json = env.Ctl({"show", "--json", id});
  const std::string handler_env = ReadFile(out + "/env");
  const std::string handler_proc = ReadFile(out + "/proc");
  EXPECT_NE(handler_env.find("DROPQ_JOB_ID="), std::string::npos) << handler_env;
  EXPECT_EQ(handler_proc, "denied\n");
  const std::map<std::string, std::string> places = {
      {"log", env.DaemonLog()},
      {"redis", EveryRedisValue(env.redis)},
      {"metrics", GetMetrics(metrics_port).second},
      {"dropqctl show", show.out + show.err + show_json.out},
      {"handler environment", handler_env},
      {"/proc/<dropqd>/environ", handler_proc}};
  for (const auto& [where, text] : places) {
    EXPECT_FALSE(text.empty()) << where;
    for (const std::string& secret : {env_token, file_token, cred_token}) {
      EXPECT_EQ(text.find(secret), std::string::npos) << secret << " found in " << where;
    }
  }
  EXPECT_EQ(GetMetrics(metrics_port).first.find("200"), 9u);

  // dropqctl needs none of the handler's secrets.
  const CommandResult status = env.Ctl({"status"});
  EXPECT_EQ(status.status, 0) << status.err;
  EXPECT_EQ(env.Stop(), 0);
}

TEST(HttpHandlerTest, RedirectsToAnotherOriginCarryNoConfiguredHeader) {
  HttpSink other;  // another port: another origin
  HttpSink::Options o;
  o.redirect_to = other.base();
  HttpSink first(o);
  for (const bool follow : {true, false}) {
    SCOPED_TRACE(follow ? "follow_redirects: true" : "follow_redirects: false");
    DropqEnv env;
    ASSERT_TRUE(env.redis.ok());
    QueueSpec q;
    const std::string name = follow ? "redir-follow" : "redir-stay";
    q.handler = HttpHandler(first.base() + "/r/{name}",
                            std::string("follow_redirects: ") + (follow ? "true" : "false") +
                                "\nheaders: { X-Token: abc123, X-Job: \"{job_id}\" }");
    env.WriteConfig(q);
    ASSERT_TRUE(env.Start());
    WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/" + name, "payload");
    ASSERT_TRUE(WaitForOutcomes(env.redis, follow ? 1 : 0, follow ? 0 : 1, seconds(20)))
        << env.DaemonLog();
    const auto at_first = ByPath(first)["/r/" + name];
    ASSERT_EQ(at_first.size(), 1u);
    EXPECT_EQ(at_first[0]["headers"]["x-token"], "abc123");
    const auto rec = JobRecord(env.redis, "q", OnlyJobId(env.redis, "q", name));
    if (follow) {
      const auto at_other = ByPath(other)["/r/" + name];
      ASSERT_EQ(at_other.size(), 1u);
      EXPECT_EQ(at_other[0]["headers"].count("x-token"), 0u) << at_other[0].dump();
      EXPECT_EQ(at_other[0]["headers"].count("x-job"), 0u);
      EXPECT_EQ(at_other[0]["sha256"], Sha256Hex("payload"));  // the body follows
      EXPECT_EQ(rec.at("http_status"), "200");
    } else {
      EXPECT_EQ(ByPath(other).count("/r/" + name), 0u);
      EXPECT_EQ(rec.at("state"), "failed");
      EXPECT_EQ(rec.at("http_status"), "307");
      EXPECT_EQ(rec.at("attempt"), "1");  // a 3xx not followed is final
    }
    EXPECT_EQ(env.Stop(), 0);
  }
}

// SIGTERM: requests in flight get drain_timeout, then are aborted and their
// jobs released as interrupted; jobs not started go back untouched.
TEST(HttpHandlerTest, ShutdownAbortsRequestsPastTheDrainTimeout) {
  HttpSink::Options o;
  o.delay_ms = 20000;
  HttpSink sink(o);
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.workers = 2;
  q.handler = HttpHandler(sink.base() + "/d/{name}");
  env.WriteConfig(q);
  SetDrainTimeout(env, "1s");
  ASSERT_TRUE(env.Start());
  for (int i = 0; i < 5; ++i) {
    WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/d" + std::to_string(i), "d");
  }
  ASSERT_TRUE(WaitForStarted(env, 2)) << env.DaemonLog();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(env.Stop(), 0) << env.DaemonLog();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(10));
  int interrupted = 0;
  int untouched = 0;
  for (const std::string& id : JobIds(env.redis, "q")) {
    const auto rec = JobRecord(env.redis, "q", id);
    EXPECT_EQ(rec.at("state"), "pending") << id;
    if (rec.count("interrupted") != 0 && rec.at("interrupted") == "1") ++interrupted;
    if (rec.count("attempt") == 0 || rec.at("attempt") == "0") ++untouched;
  }
  EXPECT_EQ(interrupted, 2);
  EXPECT_EQ(untouched, 3);
  EXPECT_EQ(env.redis.CmdInt({"LLEN", "dropq:{q}:pending"}), 5);
}

TEST(HttpHandlerTest, KillDuringThirtyTwoRequestsResendsThemMarkedInterrupted) {
  HttpSink::Options o;
  o.delay_ms = 2000;
  HttpSink sink(o);
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.workers = 32;
  q.handler = HttpHandler(sink.base() + "/k/{name}");
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start());
  for (int i = 0; i < 32; ++i) {
    WriteAndRename(env.tmp.Sub("staging"), env.inbox + "/k" + std::to_string(i), "k");
  }
  // Every job started (its attempt recorded), none answered yet.
  ASSERT_TRUE(WaitForStarted(env, 32)) << env.DaemonLog();
  EXPECT_TRUE(sink.Requests().empty());
  ::kill(env.daemon()->pid(), SIGKILL);
  env.daemon()->Wait(seconds(10));
  ASSERT_TRUE(env.Start());
  ASSERT_TRUE(WaitForOutcomes(env.redis, 32, 0, seconds(60))) << env.DaemonLog();
  const auto by_path = ByPath(sink);
  EXPECT_EQ(by_path.size(), 32u);
  for (const std::string& id : JobIds(env.redis, "q")) {
    const auto rec = JobRecord(env.redis, "q", id);
    EXPECT_EQ(rec.at("state"), "done");
    EXPECT_EQ(rec.at("interrupted"), "1") << rec.at("name");
    EXPECT_EQ(rec.at("attempt"), "2");
  }
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
