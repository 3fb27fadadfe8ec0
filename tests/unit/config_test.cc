// LoadConfig / ParseConfig: every default, every error with its file, line and key.
#include "config/config.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace dropq {
namespace {

constexpr char kPath[] = "/etc/dropq/test.yaml";

// Joins lines with '\n' so that a test reads its line numbers off the list:
// element i is line i + 1.
std::string Lines(std::initializer_list<std::string> lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

class ConfigTest : public ::testing::Test {
 protected:
  ConfigTest()
      : inbox_(tmp_.Mkdir("inbox")), done_(tmp_.Mkdir("done")), failed_(tmp_.Mkdir("failed")) {}

  Result<Config> Parse(const std::string& yaml) { return ParseConfig(yaml, kPath); }

  // A valid single-queue config whose queue holds `extra` (lines indented by 4).
  // Lines: 1 queues:, 2 - name: q, 3 watch, 4 handler:, 5 builtin: noop, 6... extra.
  std::string Queue(std::initializer_list<std::string> extra = {}) {
    std::string out = Lines(
        {"queues:", "  - name: q", "    watch: " + inbox_, "    handler:", "      builtin: noop"});
    for (const std::string& l : extra) out += "    " + l + "\n";
    return out;
  }

  // Asserts that `yaml` fails with "<kPath>:<line>: <key>: ..." holding `part`.
  void ExpectError(const std::string& yaml, int line, const std::string& key,
                   const std::string& part = "") {
    const auto c = Parse(yaml);
    ASSERT_FALSE(c.ok()) << "accepted:\n" << yaml;
    EXPECT_EQ(c.error().code, Errc::kConfig);
    const std::string prefix = std::string(kPath) + ":" + std::to_string(line) + ": " + key + ": ";
    EXPECT_EQ(c.error().what.substr(0, prefix.size()), prefix)
        << "got: " << c.error().what << "\nyaml:\n"
        << yaml;
    EXPECT_NE(c.error().what.find(part), std::string::npos) << "got: " << c.error().what;
    EXPECT_EQ(c.error().what.find('\n'), std::string::npos) << "got: " << c.error().what;
  }

  test::TempDir tmp_;
  std::string inbox_, done_, failed_;
};

std::string Hostname() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

// --- defaults ---------------------------------------------------------------

TEST_F(ConfigTest, MinimalConfigGetsEveryDefault) {
  const auto c = Parse(Queue());
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->path, kPath);
  EXPECT_FALSE(c->redis.unix_socket);
  EXPECT_EQ(c->redis.host, "127.0.0.1");
  EXPECT_EQ(c->redis.port, 6379);
  EXPECT_EQ(c->redis.db, 0);
  EXPECT_EQ(c->redis.password, "");
  EXPECT_EQ(c->redis_url_text, "redis://127.0.0.1:6379/0");
  EXPECT_EQ(c->prefix, "dropq");
  EXPECT_EQ(c->instance, Hostname());
  EXPECT_EQ(c->log_level, LogLevel::kInfo);
  EXPECT_EQ(c->drain_timeout, Millis(30000));
  ASSERT_EQ(c->queues.size(), 1u);
  const QueueConfig& q = c->queues[0];
  EXPECT_EQ(q.name, "q");
  EXPECT_EQ(q.watch, inbox_);
  EXPECT_EQ(q.include, std::vector<std::string>{"*"});
  EXPECT_TRUE(q.exclude.empty());
  EXPECT_EQ(q.settle, Millis(0));
  EXPECT_EQ(q.workers, 2);
  EXPECT_EQ(q.capacity, 128);  // 64 x workers for a builtin
  EXPECT_EQ(q.handler.kind, HandlerConfig::Kind::kNoop);
  EXPECT_TRUE(q.handler.argv.empty());
  EXPECT_EQ(q.handler.manifest, "");
  EXPECT_EQ(q.handler.timeout, Millis(10 * 60 * 1000));
  EXPECT_EQ(q.on_success.kind, Disposition::Kind::kKeep);
  EXPECT_EQ(q.on_failure.kind, Disposition::Kind::kKeep);
  EXPECT_EQ(q.keep_done, 10000);
}

TEST_F(ConfigTest, RetryAndHousekeepingDefaults) {
  const auto c = Parse(Queue());
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->heartbeat_ttl, Millis(15 * 1000));
  const QueueConfig& q = c->queues[0];
  EXPECT_EQ(q.keep_failed, -1);
  EXPECT_EQ(q.rescan_interval, Millis(5 * 60 * 1000));
  EXPECT_EQ(q.retry.max_attempts, 5);
  EXPECT_EQ(q.retry.initial_delay, Millis(1000));
  EXPECT_EQ(q.retry.max_delay, Millis(10 * 60 * 1000));
  EXPECT_EQ(q.retry.permanent_exit_codes, std::vector<int>{65});
  EXPECT_EQ(q.retry.tempfail_exit_codes, std::vector<int>{75});

  // An empty retry map keeps every default too.
  const auto d = Parse(Queue({"retry: {}"}));
  ASSERT_TRUE(d.ok()) << d.error().what;
  EXPECT_EQ(d->queues[0].retry.max_attempts, 5);
  EXPECT_EQ(d->queues[0].retry.permanent_exit_codes, std::vector<int>{65});
  EXPECT_EQ(d->queues[0].retry.tempfail_exit_codes, std::vector<int>{75});
}

TEST_F(ConfigTest, ProcessingDirIsAutoOffOrAnAbsolutePath) {
  const auto dflt = Parse(Queue());
  ASSERT_TRUE(dflt.ok()) << dflt.error().what;
  EXPECT_EQ(dflt->queues[0].processing_dir, inbox_ + "/.dropq-processing");
  EXPECT_TRUE(dflt->queues[0].processing_auto);
  const auto automatic = Parse(Queue({"processing_dir: auto"}));
  ASSERT_TRUE(automatic.ok()) << automatic.error().what;
  EXPECT_EQ(automatic->queues[0], dflt->queues[0]);
  const auto off = Parse(Queue({"processing_dir: off"}));
  ASSERT_TRUE(off.ok()) << off.error().what;
  EXPECT_EQ(off->queues[0].processing_dir, "");
  EXPECT_FALSE(off->queues[0].processing_auto);
  const auto path = Parse(Queue({"processing_dir: " + inbox_ + "/.work/"}));
  ASSERT_TRUE(path.ok()) << path.error().what;
  EXPECT_EQ(path->queues[0].processing_dir, inbox_ + "/.work");
  EXPECT_FALSE(path->queues[0].processing_auto);
  ExpectError(Queue({"processing_dir: work"}), 6, "queues[0].processing_dir",
              "not an absolute path (or auto, or off)");
}

TEST_F(ConfigTest, RetryAndHousekeepingKeysAreRead) {
  const auto c =
      Parse(Lines({"heartbeat_ttl: 1s"}) +
            Queue({"keep_failed: 0", "rescan_interval: 0s", "retry:", "  max_attempts: 1000",
                   "  initial_delay: 250ms", "  max_delay: 2h",
                   "  permanent_exit_codes: [1, 2, 255]", "  tempfail_exit_codes: []"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->heartbeat_ttl, Millis(1000));
  const QueueConfig& q = c->queues[0];
  EXPECT_EQ(q.keep_failed, 0);
  EXPECT_EQ(q.rescan_interval, Millis(0));
  EXPECT_EQ(q.retry.max_attempts, 1000);
  EXPECT_EQ(q.retry.initial_delay, Millis(250));
  EXPECT_EQ(q.retry.max_delay, Millis(2 * 3600 * 1000));
  EXPECT_EQ(q.retry.permanent_exit_codes, (std::vector<int>{1, 2, 255}));
  EXPECT_TRUE(q.retry.tempfail_exit_codes.empty());

  const auto d = Parse(Lines({"heartbeat_ttl: 2m"}) +
                       Queue({"keep_failed: 500", "rescan_interval: 1s",
                              "retry: {max_attempts: 1, initial_delay: 30s, max_delay: 30s, "
                              "permanent_exit_codes: [75], tempfail_exit_codes: [65]}"}));
  ASSERT_TRUE(d.ok()) << d.error().what;
  EXPECT_EQ(d->heartbeat_ttl, Millis(2 * 60 * 1000));
  const QueueConfig& r = d->queues[0];
  EXPECT_EQ(r.keep_failed, 500);
  EXPECT_EQ(r.rescan_interval, Millis(1000));
  EXPECT_EQ(r.retry.max_attempts, 1);
  EXPECT_EQ(r.retry.initial_delay, Millis(30 * 1000));
  EXPECT_EQ(r.retry.max_delay, Millis(30 * 1000));  // equal to initial_delay is fine
  EXPECT_EQ(r.retry.permanent_exit_codes, std::vector<int>{75});
  EXPECT_EQ(r.retry.tempfail_exit_codes, std::vector<int>{65});

  // A max_delay alone only has to reach the default initial_delay (1s), and an
  // initial_delay alone may go up to the default max_delay (10m).
  const auto e = Parse(Queue({"retry:", "  max_delay: 1s"}));
  ASSERT_TRUE(e.ok()) << e.error().what;
  EXPECT_EQ(e->queues[0].retry.max_delay, Millis(1000));
  const auto f = Parse(Queue({"retry: {initial_delay: 10m}"}));
  ASSERT_TRUE(f.ok()) << f.error().what;
  EXPECT_EQ(f->queues[0].retry.initial_delay, Millis(10 * 60 * 1000));
}

TEST_F(ConfigTest, CapacityDefaultsByHandlerKind) {
  auto c = Parse(Queue({"workers: 5"}));  // builtin: noop
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].workers, 5);
  EXPECT_EQ(c->queues[0].capacity, 320);
  c = Parse(Lines({"queues:", "  - workers: 5", "    name: q", "    watch: " + inbox_,
                   "    handler: {exec: [/bin/true]}"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].capacity, 20);
  c = Parse(Queue({"workers: 1024"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].capacity, 65536);
  // Whatever the order of the keys.
  c = Parse(Lines({"queues:", "  - capacity: 3", "    workers: 7", "    name: q",
                   "    watch: " + inbox_, "    handler: {builtin: noop}"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].capacity, 3);
  EXPECT_EQ(c->queues[0].workers, 7);
}

TEST_F(ConfigTest, RecursiveKeysAndTheirDefaults) {
  auto c = Parse(Queue());
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_FALSE(c->queues[0].recursive);
  EXPECT_EQ(c->queues[0].max_depth, 32);
  EXPECT_EQ(c->queues[0].poll_interval, Millis(10000));
  EXPECT_EQ(c->queues[0].prune_empty_dirs, Millis(0));
  c = Parse(Queue({"recursive: true", "max_depth: 6", "exclude_dirs: [tmp, \"*.partial\"]",
                   "poll_interval: 2s", "prune_empty_dirs: 1h", "include: [\"**/*.pdf\"]"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  const QueueConfig& q = c->queues[0];
  EXPECT_TRUE(q.recursive);
  EXPECT_EQ(q.max_depth, 6);
  EXPECT_EQ(q.exclude_dirs, (std::vector<std::string>{"tmp", "*.partial"}));
  EXPECT_EQ(q.poll_interval, Millis(2000));
  EXPECT_EQ(q.prune_empty_dirs, Millis(3600 * 1000));
  EXPECT_TRUE(NameSelected(q, "alice/2026/a.pdf"));
  EXPECT_FALSE(NameSelected(q, "alice/2026/a.png"));
}

// A queue whose handler is `http:` with `keys` (indented by 8); line 6 is
// the first of them.
std::string HttpQueue(const std::string& inbox, std::initializer_list<std::string> keys) {
  std::string out =
      Lines({"queues:", "  - name: q", "    watch: " + inbox, "    handler:", "      http:"});
  for (const std::string& l : keys) out += "        " + l + "\n";
  return out;
}

TEST_F(ConfigTest, HttpHandlerKeysAndDefaults) {
  setenv("DROPQ_TEST_TOKEN", "t0k", 1);
  test::WriteFile(tmp_.Sub("secret"), "from-file\n");
  auto c = Parse(HttpQueue(
      inbox_, {"url: \"https://api.example.com/v1/{relpath}?job={job_id}\"",
               "headers:", "  Authorization: \"Bearer ${env:DROPQ_TEST_TOKEN}\"",
               "  X-Key: \"${file:" + tmp_.Sub("secret") + "}\"", "  X-Name: \"{name}\""}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  const QueueConfig& q = c->queues[0];
  ASSERT_EQ(q.handler.kind, HandlerConfig::Kind::kHttp);
  const HttpConfig& h = q.handler.http;
  EXPECT_EQ(h.method, "PUT");
  EXPECT_EQ(h.body, HttpConfig::Body::kFile);
  EXPECT_EQ(h.content_type, "application/octet-stream");
  EXPECT_EQ(h.connect_timeout, Millis(10000));
  EXPECT_EQ(h.max_retry_after, Millis(600000));
  EXPECT_FALSE(h.follow_redirects);
  EXPECT_EQ(q.capacity, 8);  // 4 x workers, as for a program
  EXPECT_EQ(h.url.Redacted(), "https://api.example.com/v1/{relpath}?job={job_id}");
  ASSERT_EQ(h.headers.size(), 3u);
  EXPECT_EQ(h.headers[0].first, "Authorization");
  EXPECT_EQ(h.headers[0].second.Expand({}, PercentEncode, Verbatim), "Bearer t0k");
  EXPECT_EQ(h.headers[0].second.Redacted(), "Bearer ***");
  EXPECT_EQ(h.headers[1].second.Expand({}, PercentEncode, Verbatim), "from-file");
  EXPECT_TRUE(c->has_secrets);
  EXPECT_EQ(c->secret_env, std::vector<std::string>{"DROPQ_TEST_TOKEN"});

  // dropqctl reads no handler secret: a missing one is no error there.
  unsetenv("DROPQ_TEST_TOKEN");
  const std::string yaml = HttpQueue(
      inbox_, {"url: https://api.example.com/", "headers: { A: \"${env:DROPQ_TEST_TOKEN}\" }"});
  ExpectError(yaml, 7, "queues[0].handler.http.headers.A",
              "environment variable DROPQ_TEST_TOKEN is not set");
  c = ParseConfig(yaml, kPath, LoadOptions{.handler_secrets = false});
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_TRUE(c->has_secrets);
}

TEST_F(ConfigTest, BadHttpHandlers) {
  ExpectError(HttpQueue(inbox_, {"method: PUT"}), 5, "queues[0].handler.http.url",
              "required key missing");
  ExpectError(HttpQueue(inbox_, {"url: ftp://h/x"}), 6, "queues[0].handler.http.url",
              "http or https");
  ExpectError(HttpQueue(inbox_, {"url: \"https://{name}.example.com/\""}), 6,
              "queues[0].handler.http.url", "host written out");
  ExpectError(HttpQueue(inbox_, {"url: \"https://user:pw@h/\""}), 6, "queues[0].handler.http.url",
              "user:password@");
  ExpectError(HttpQueue(inbox_, {"url: \"https://h/{nope}\""}), 6, "queues[0].handler.http.url",
              "unknown placeholder {nope}");
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "method: GET"}), 7,
              "queues[0].handler.http.method", "PUT or POST");
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "body: form"}), 7,
              "queues[0].handler.http.body", "file, multipart or json");
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "file_field: doc"}), 7,
              "queues[0].handler.http.file_field", "only for body: multipart");
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "body: json", "content_type: a/b"}), 8,
              "queues[0].handler.http.content_type", "only for body: file");
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "headers: { \"Bad Name\": x }"}), 7,
              "queues[0].handler.http.headers.Bad Name", "not a header name");
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "headers: { Content-Length: \"1\" }"}), 7,
              "queues[0].handler.http.headers.Content-Length", "set by dropq");
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "headers: { content-type: a/b }"}), 7,
              "queues[0].handler.http.headers.content-type", "content_type");
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "headers: { A: x, a: y }"}), 7,
              "queues[0].handler.http.headers.a", "given twice");
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "retry_statuses: [200]"}), 7,
              "queues[0].handler.http.retry_statuses[0]", "300..599");
  ExpectError(
      HttpQueue(inbox_, {"url: https://h/", "retry_statuses: [409]", "permanent_statuses: [409]"}),
      8, "queues[0].handler.http.permanent_statuses", "409 is in retry_statuses too");
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "ca_file: /nonexistent/ca.pem"}), 7,
              "queues[0].handler.http.ca_file", "cannot read");
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "timeout: 0s"}), 7,
              "queues[0].handler.http.timeout", "greater than 0");
  ExpectError(HttpQueue(inbox_, {"url: https://h/"}) + "      timeout: 1m\n", 7,
              "queues[0].handler.timeout", "goes in http:");
  auto c = Parse(HttpQueue(inbox_, {"url: https://h/", "timeout: 2m", "connect_timeout: 5s"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].handler.timeout, Millis(120000));
  EXPECT_EQ(c->queues[0].handler.http.connect_timeout, Millis(5000));
}

TEST_F(ConfigTest, SecretsAreReadOnlyWhereAllowedAndNeverInClear) {
  setenv("DROPQ_TEST_TOKEN", "t0k", 1);
  // Plain http to another host would send the token in the clear.
  ExpectError(HttpQueue(inbox_, {"url: http://api.example.com/",
                                 "headers: { A: \"${env:DROPQ_TEST_TOKEN}\" }"}),
              6, "queues[0].handler.http.url", "only over https://");
  EXPECT_TRUE(Parse(HttpQueue(inbox_, {"url: http://127.0.0.1:8080/",
                                       "headers: { A: \"${env:DROPQ_TEST_TOKEN}\" }"}))
                  .ok());
  // A secret with a line break cannot be a header.
  setenv("DROPQ_TEST_TOKEN", "a\r\nX-Injected: 1", 1);
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "headers: { A: \"${env:DROPQ_TEST_TOKEN}\" }"}),
              7, "queues[0].handler.http.headers.A", "holds a line break");
  unsetenv("DROPQ_TEST_TOKEN");
  // Nowhere else (a shell's ${file:-default} is no secret).
  EXPECT_TRUE(Parse(Lines({"queues:", "  - name: q", "    watch: " + inbox_, "    handler:",
                           "      exec: [\"/bin/sh\", \"-c\", \"cat ${{file:-/dev/null}}\"]"}))
                  .ok());
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                     "    handler:", "      exec: [\"/bin/cat\", \"${file:/etc/x}\"]"}),
              5, "queues[0].handler.exec[1]", "read only in redis.url");
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                     "    handler:", "      exec: [\"/bin/echo\", \"${env:HOME}\"]"}),
              5, "queues[0].handler.exec[1]", "read only in redis.url");
  // Unquoted in a flow map: YAML's braces.
  ExpectError(HttpQueue(inbox_, {"url: https://h/", "headers: { A: Bearer ${env:X} }"}), 7, "yaml",
              "must be quoted");
}

TEST_F(ConfigTest, RedisUrlSecretIsEncodedForItsPart) {
  test::WriteFile(tmp_.Sub("pw"), "p@ss/w:rd\n");
  auto c = Parse("redis:\n  url: \"redis://app:${file:" + tmp_.Sub("pw") + "}@db.local:6390/2\"\n" +
                 Queue());
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->redis.user, "app");
  EXPECT_EQ(c->redis.password, "p@ss/w:rd");
  EXPECT_EQ(c->redis.host, "db.local");
  EXPECT_EQ(c->redis.port, 6390);
  EXPECT_EQ(c->redis_url_text, "redis://app:***@db.local:6390/2");
  EXPECT_TRUE(c->has_secrets);
  // A password holding "${" that is no secret: the message does not quote it.
  const auto bad = Parse("redis:\n  url: \"redis://app:pa${ss@db/0\"\n" + Queue());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().what.find("pa${ss"), std::string::npos) << bad.error().what;
}

TEST_F(ConfigTest, SentinelKeys) {
  test::WriteFile(tmp_.Sub("pw"), "data-secret\n");
  auto c = Parse(
      Lines({"redis:", "  sentinels: [\"10.0.0.12:26379\", \"10.0.0.11:26379\", \"[::1]:26380\"]",
             "  master: dropq", "  db: 3", "  user: app",
             "  password: ${file:" + tmp_.Sub("pw") + "}", "  sentinel_password: s-secret"}) +
      Queue());
  ASSERT_TRUE(c.ok()) << c.error().what;
  ASSERT_EQ(c->redis.sentinels.size(), 3U);
  EXPECT_EQ(c->redis.sentinels[0].host, "10.0.0.12");
  EXPECT_EQ(c->redis.sentinels[2].host, "::1");
  EXPECT_EQ(c->redis.sentinels[2].port, 26380);
  EXPECT_EQ(c->redis.master, "dropq");
  EXPECT_EQ(c->redis.db, 3);
  EXPECT_EQ(c->redis.user, "app");
  EXPECT_EQ(c->redis.password, "data-secret");
  EXPECT_EQ(c->redis.sentinel_password, "s-secret");
  // The identity: the primary's name, the sorted sentinels and the db,
  // whichever server is primary; redis.namespace replaces it.
  EXPECT_EQ(c->redis.Identity(), "sentinel:dropq@10.0.0.11:26379,10.0.0.12:26379,[::1]:26380/3");
  EXPECT_EQ(c->redis_url_text.find("secret"), std::string::npos);
  auto named = Parse(Lines({"redis:", "  sentinels: [\"10.0.0.11:26379\"]", "  master: dropq",
                            "  namespace: prod-uploads"}) +
                     Queue());
  ASSERT_TRUE(named.ok()) << named.error().what;
  EXPECT_EQ(named->redis.Identity(), "namespace:prod-uploads");
  // A plain url's identity is its address, as before.
  auto plain = Parse("redis:\n  url: redis://db.local:6390/2\n" + Queue());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->redis.Identity(), "db.local:6390/2");
  // Claims and renewals wait for a replica by default with sentinels only.
  EXPECT_EQ(c->redis_replica_wait, Millis(1000));
  EXPECT_EQ(plain->redis_replica_wait, Millis(0));
  EXPECT_EQ(Parse(Queue())->redis_replica_wait, Millis(0));
  auto off = Parse(Lines({"redis:", "  sentinels: [\"10.0.0.11:26379\"]", "  master: dropq",
                          "  replica_wait: 0s"}) +
                   Queue());
  ASSERT_TRUE(off.ok()) << off.error().what;
  EXPECT_EQ(off->redis_replica_wait, Millis(0));
  // A short heartbeat_ttl shortens the default (a renewal must not wait a
  // third of it).
  auto short_ttl = Parse(Lines({"heartbeat_ttl: 2s", "redis:", "  sentinels: [\"10.0.0.11:26379\"]",
                                "  master: dropq"}) +
                         Queue());
  ASSERT_TRUE(short_ttl.ok()) << short_ttl.error().what;
  EXPECT_EQ(short_ttl->redis_replica_wait, Millis(500));
  auto proxied = Parse("redis:\n  url: redis://db.local:6390/2\n  replica_wait: 250ms\n" + Queue());
  ASSERT_TRUE(proxied.ok()) << proxied.error().what;
  EXPECT_EQ(proxied->redis_replica_wait, Millis(250));
}

TEST_F(ConfigTest, BadSentinelKeys) {
  ExpectError(
      Lines({"redis:", "  url: redis://h:6379/0", "  sentinels: [\"h:26379\"]", "  master: m"}) +
          Queue(),
      3, "redis.sentinels", "url and sentinels exclude each other");
  ExpectError(Lines({"redis:", "  sentinels: [\"h:26379\"]"}) + Queue(), 2, "redis.sentinels",
              "needs master");
  ExpectError(Lines({"redis:", "  url: redis://h:6379/0", "  db: 2"}) + Queue(), 3, "redis.db",
              "with url, write redis://user:password@host:port/db");
  ExpectError(Lines({"redis:", "  master: m"}) + Queue(), 2, "redis.master", "goes with sentinels");
  ExpectError(Lines({"redis:", "  sentinels: []", "  master: m"}) + Queue(), 2, "redis.sentinels",
              "at least one");
  ExpectError(Lines({"redis:", "  sentinels: [\"h\"]", "  master: m"}) + Queue(), 2,
              "redis.sentinels[0]", "not host:port");
  ExpectError(Lines({"redis:", "  sentinels: [\"h:1\", \"h:1\"]", "  master: m"}) + Queue(), 2,
              "redis.sentinels[1]", "listed twice");
  ExpectError(Lines({"redis:", "  sentinels: [\"::1:26379\"]", "  master: m"}) + Queue(), 2,
              "redis.sentinels[0]", "in brackets");
  ExpectError(Lines({"redis:", "  url: redis://h:6379/0", "  replica_wait: 2m"}) + Queue(), 3,
              "redis.replica_wait", "at most 60s");
  ExpectError(Lines({"redis:", "  url: redis://h:6379/0", "  replica_wait: soon"}) + Queue(), 3,
              "redis.replica_wait", "");
  ExpectError(
      Lines({"heartbeat_ttl: 6s", "redis:", "  url: redis://h:6379/0", "  replica_wait: 2s"}) +
          Queue(),
      4, "redis.replica_wait", "must be below heartbeat_ttl / 3 (6000 ms / 3)");
}

TEST_F(ConfigTest, RateLimitAndMaxActive) {
  auto c = Parse(Queue());
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->queues[0].limited());
  c = Parse(Queue({"rate_limit: { max: 50, per: 1s }", "max_active: 8"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].rate_max, 50);
  EXPECT_EQ(c->queues[0].rate_per, Millis(1000));
  EXPECT_EQ(c->queues[0].max_active, 8);
  EXPECT_TRUE(c->queues[0].limited());
  ExpectError(Queue({"rate_limit: { max: 50 }"}), 6, "queues[0].rate_limit.per",
              "required key missing");
  ExpectError(Queue({"rate_limit: { max: 0, per: 1s }"}), 6, "queues[0].rate_limit.max");
  ExpectError(Queue({"rate_limit: { max: 5, per: 0s }"}), 6, "queues[0].rate_limit.per");
  ExpectError(Queue({"rate_limit: { max: 5, per: 2d }"}), 6, "queues[0].rate_limit.per",
              "at most 1d");
  ExpectError(Queue({"rate_limit: 50/s"}), 6, "queues[0].rate_limit", "expected a map");
  ExpectError(Queue({"max_active: 0"}), 6, "queues[0].max_active");
}

// What a reload may change where the queue runs.
TEST_F(ConfigTest, SameButLimits) {
  const auto plain = Parse(Queue());
  const auto limited = Parse(Queue({"rate_limit: { max: 5, per: 2s }", "max_active: 3"}));
  const auto more_workers = Parse(Queue({"workers: 7", "max_active: 3"}));
  ASSERT_TRUE(plain.ok() && limited.ok() && more_workers.ok());
  EXPECT_TRUE(plain->queues[0].SameButLimits(limited->queues[0]));
  EXPECT_TRUE(limited->queues[0].SameButLimits(plain->queues[0]));
  EXPECT_FALSE(plain->queues[0] == limited->queues[0]);
  EXPECT_FALSE(limited->queues[0].SameButLimits(more_workers->queues[0]));
}

TEST_F(ConfigTest, BadRecursiveKeys) {
  ExpectError(Queue({"recursive: yes please"}), 6, "queues[0].recursive", "true or false");
  ExpectError(Queue({"recursive: true", "max_depth: 0"}), 7, "queues[0].max_depth");
  ExpectError(Queue({"recursive: true", "max_depth: 65"}), 7, "queues[0].max_depth");
  ExpectError(Queue({"recursive: true", "exclude_dirs: [a/b]"}), 7, "queues[0].exclude_dirs[0]",
              "never holds '/'");
  ExpectError(Queue({"recursive: true", "poll_interval: 500ms"}), 7, "queues[0].poll_interval",
              "at least 1s");
  // Keys of a tree on a flat queue are a mistake, not a no-op.
  ExpectError(Queue({"max_depth: 3"}), 6, "queues[0].max_depth", "without recursive: true");
  ExpectError(Queue({"exclude_dirs: [tmp]"}), 6, "queues[0].exclude_dirs",
              "without recursive: true");
  // An exec handler opens {path} by name: in a tree that needs the area.
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_, "    recursive: true",
                     "    processing_dir: off", "    handler: {exec: [/bin/true, \"{path}\"]}"}),
              5, "queues[0].processing_dir", "symlink");
  ExpectError(
      Lines({"queues:", "  - name: q", "    watch: " + inbox_, "    recursive: true",
             "    processing_dir: off", "    handler: {builtin: noop}", "    on_success: delete"}),
      5, "queues[0].processing_dir", "move_to or delete");
  // A builtin that keeps the file reads it through a checked descriptor.
  EXPECT_TRUE(Parse(Lines({"queues:", "  - name: q", "    watch: " + inbox_, "    recursive: true",
                           "    processing_dir: off", "    handler: {builtin: noop}",
                           "    on_success: keep", "    on_failure: keep"}))
                  .ok());
}

TEST_F(ConfigTest, RoleDefaultsToBothAndSaysWhatTheInstanceDoes) {
  auto c = Parse(Queue());
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].role, Role::kBoth);
  EXPECT_TRUE(c->queues[0].watches());
  EXPECT_TRUE(c->queues[0].runs_handlers());

  c = Parse(Queue({"role: consume"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].role, Role::kConsume);
  EXPECT_FALSE(c->queues[0].watches());
  EXPECT_TRUE(c->queues[0].runs_handlers());

  // A producer runs no handler, so it needs none.
  c = Parse(Lines({"queues:", "  - name: q", "    role: produce", "    watch: " + inbox_}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].role, Role::kProduce);
  EXPECT_TRUE(c->queues[0].watches());
  EXPECT_FALSE(c->queues[0].runs_handlers());

  ExpectError(Queue({"role: worker"}), 6, "queues[0].role", "both, consume or produce");
  ExpectError(Lines({"queues:", "  - name: q", "    role: consume", "    watch: " + inbox_}), 2,
              "queues[0].handler", "required key missing");
}

TEST_F(ConfigTest, FullConfigReadsEveryKey) {
  const std::string manifest = tmp_.Sub("sha256.txt");
  const auto c = Parse(Lines({
      "redis:",
      "  url: redis://app:s3cret@10.0.0.5:6380/3",
      "  prefix: myq",
      "instance: web-1",
      "log_level: debug",
      "drain_timeout: 0s",
      "queues:",
      "  - name: uploads",
      "    watch: " + inbox_ + "/",
      "    include: [\"*.png\", \"*.jpg\"]",
      "    exclude: [\"thumb_*\"]",
      "    settle: 250ms",
      "    workers: 4",
      "    capacity: 9",
      "    handler:",
      "      exec: [\"/usr/bin/convert\", \"{path}\", \"--out\", \"" + done_ + "/{stem}.png\"]",
      "      timeout: 5m",
      "    on_success: { move_to: " + done_ + "/ }",
      "    on_failure: { move_to: " + failed_ + " }",
      "    keep_done: 0",
      "  - name: hashes.v2",
      "    watch: " + done_,
      "    handler: { builtin: sha256, manifest: " + manifest + ", timeout: 1h }",
      "    on_success: delete",
      "    on_failure: keep",
  }));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->redis.host, "10.0.0.5");
  EXPECT_EQ(c->redis.port, 6380);
  EXPECT_EQ(c->redis.db, 3);
  EXPECT_EQ(c->redis.user, "app");
  EXPECT_EQ(c->redis.password, "s3cret");
  EXPECT_EQ(c->redis_url_text, "redis://app:***@10.0.0.5:6380/3");
  EXPECT_EQ(c->prefix, "myq");
  EXPECT_EQ(c->instance, "web-1");
  EXPECT_EQ(c->log_level, LogLevel::kDebug);
  EXPECT_EQ(c->drain_timeout, Millis(0));
  ASSERT_EQ(c->queues.size(), 2u);

  const QueueConfig& u = c->queues[0];
  EXPECT_EQ(u.name, "uploads");
  EXPECT_EQ(u.watch, inbox_);  // trailing slash stripped
  EXPECT_EQ(u.include, (std::vector<std::string>{"*.png", "*.jpg"}));
  EXPECT_EQ(u.exclude, std::vector<std::string>{"thumb_*"});
  EXPECT_EQ(u.settle, Millis(250));
  EXPECT_EQ(u.workers, 4);
  EXPECT_EQ(u.capacity, 9);
  EXPECT_EQ(u.handler.kind, HandlerConfig::Kind::kExec);
  EXPECT_EQ(u.handler.argv, (std::vector<std::string>{"/usr/bin/convert", "{path}", "--out",
                                                      done_ + "/{stem}.png"}));
  EXPECT_EQ(u.handler.timeout, Millis(5 * 60 * 1000));
  EXPECT_EQ(u.on_success.kind, Disposition::Kind::kMoveTo);
  EXPECT_EQ(u.on_success.dir, done_);
  EXPECT_EQ(u.on_failure.kind, Disposition::Kind::kMoveTo);
  EXPECT_EQ(u.on_failure.dir, failed_);
  EXPECT_EQ(u.keep_done, 0);

  const QueueConfig& h = c->queues[1];
  EXPECT_EQ(h.name, "hashes.v2");
  EXPECT_EQ(h.handler.kind, HandlerConfig::Kind::kSha256);
  EXPECT_EQ(h.handler.manifest, manifest);
  EXPECT_EQ(h.handler.timeout, Millis(3600 * 1000));
  EXPECT_EQ(h.on_success.kind, Disposition::Kind::kDelete);
  EXPECT_EQ(h.on_failure.kind, Disposition::Kind::kKeep);

  EXPECT_EQ(c->FindQueue("uploads"), &c->queues[0]);
  EXPECT_EQ(c->FindQueue("hashes.v2"), &c->queues[1]);
  EXPECT_EQ(c->FindQueue("nope"), nullptr);
}

TEST_F(ConfigTest, UnixSocketUrl) {
  const auto c = Parse(Lines({"redis:", "  url: unix://:pw@/run/dropq/redis.sock?db=2"}) + Queue());
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_TRUE(c->redis.unix_socket);
  EXPECT_EQ(c->redis.path, "/run/dropq/redis.sock");
  EXPECT_EQ(c->redis.db, 2);
  EXPECT_EQ(c->redis_url_text, "unix://:***@/run/dropq/redis.sock?db=2");
}

TEST_F(ConfigTest, RootCanBeWatched) {
  const auto c =
      Parse(Lines({"queues:", "  - name: q", "    watch: /", "    handler: {builtin: noop}"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].watch, "/");
}

TEST_F(ConfigTest, ManifestAsADotfileInTheWatchedDirIsFine) {
  const auto c = Parse(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                              "    handler: {builtin: sha256, manifest: " + inbox_ + "/.sums}"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].handler.manifest, inbox_ + "/.sums");
}

TEST_F(ConfigTest, QuotedScalarsWork) {
  const auto c = Parse(
      Lines({"instance: \"web-2\"", "queues:", "  - name: 'q'", "    watch: \"" + inbox_ + "\"",
             "    workers: \"3\"", "    handler: {builtin: 'noop'}"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->instance, "web-2");
  EXPECT_EQ(c->queues[0].workers, 3);
}

// --- the file ---------------------------------------------------------------

TEST_F(ConfigTest, LoadConfigReadsAFile) {
  const std::string path = tmp_.Sub("dropq.yaml");
  test::WriteFile(path, Queue({"workers: 3"}));
  const auto c = LoadConfig(path);
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->path, path);
  EXPECT_EQ(c->queues[0].workers, 3);
}

TEST_F(ConfigTest, LoadConfigReportsErrorsWithThatPath) {
  const std::string path = tmp_.Sub("dropq.yaml");
  test::WriteFile(path, Queue({"workers: two"}));
  const auto c = LoadConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::kConfig);
  EXPECT_EQ(c.error().what.rfind(path + ":6: queues[0].workers: ", 0), 0u) << c.error().what;
}

TEST_F(ConfigTest, MissingFile) {
  const std::string path = tmp_.Sub("nope.yaml");
  const auto c = LoadConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::kConfig);
  EXPECT_EQ(c.error().what, path + ": cannot read: No such file or directory");
}

TEST_F(ConfigTest, DirectoryInsteadOfFile) {
  const auto c = LoadConfig(inbox_);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::kConfig);
  EXPECT_EQ(c.error().what, inbox_ + ": cannot read: Is a directory");
}

// Returns the error LoadConfig(path) gives, read as uid/gid 65534 when the
// test runs as root (root reads every file): the load runs in a child that
// drops its privileges and writes the message to a pipe.
std::string LoadErrorAsUser(const std::string& path) {
  if (geteuid() != 0) {
    const auto c = LoadConfig(path);
    return c.ok() ? "loaded" : c.error().what;
  }
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0) {
      out = "cannot drop privileges";
    } else {
      const auto c = LoadConfig(path);
      out = c.ok() ? "loaded" : c.error().what;
    }
    const ssize_t n = write(fds[1], out.data(), out.size());
    _exit(n == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "child failed";
  return out;
}

TEST_F(ConfigTest, UnreadableFile) {
  const std::string path = tmp_.Sub("secret.yaml");
  test::WriteFile(path, Queue());
  // The directory must be searchable by the unprivileged reader.
  std::filesystem::permissions(tmp_.path(), std::filesystem::perms::owner_all |
                                                std::filesystem::perms::group_exec |
                                                std::filesystem::perms::others_exec);
  std::filesystem::permissions(path, std::filesystem::perms::none);
  EXPECT_EQ(LoadErrorAsUser(path), path + ": cannot read: Permission denied");
}

TEST_F(ConfigTest, NotYaml) {
  const auto c = Parse(Lines({"queues:", "  - name: [q", "    watch: x"}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::kConfig);
  EXPECT_EQ(c.error().what.rfind(std::string(kPath) + ":", 0), 0u) << c.error().what;
  EXPECT_NE(c.error().what.find(": yaml: "), std::string::npos) << c.error().what;

  const auto d = Parse(Lines({"queues:", "  - name: q", "   watch: x"}));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().what.rfind(std::string(kPath) + ":3: yaml: ", 0), 0u) << d.error().what;
}

TEST_F(ConfigTest, EmptyFile) {
  for (const std::string& text : {std::string(""), std::string("# only a comment\n"),
                                  std::string("---\n"), std::string("~\n")}) {
    const auto c = Parse(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.error().code, Errc::kConfig);
    EXPECT_EQ(c.error().what.rfind(std::string(kPath) + ": ", 0), 0u) << c.error().what;
    EXPECT_NE(c.error().what.find("empty"), std::string::npos) << c.error().what;
  }
}

TEST_F(ConfigTest, TopLevelNotAMap) {
  for (const std::string& text : {std::string("- a\n- b\n"), std::string("just text\n")}) {
    const auto c = Parse(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.error().what.rfind(std::string(kPath) + ":1: ", 0), 0u) << c.error().what;
    EXPECT_NE(c.error().what.find("expected a map"), std::string::npos) << c.error().what;
  }
}

TEST_F(ConfigTest, MoreThanOneDocument) {
  const auto c = Parse(Queue() + "---\n" + Queue());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().what.rfind(std::string(kPath) + ":6: yaml: ", 0), 0u) << c.error().what;
  EXPECT_NE(c.error().what.find("more than one document"), std::string::npos) << c.error().what;
}

// yaml-cpp 0.7's LoadAll() loops, allocating, on a ',' where a block node
// should start: these must fail quickly instead.
TEST_F(ConfigTest, StrayCommaIsAnErrorNotAHang) {
  const auto expect = [&](const std::string& text, int line) {
    const auto c = Parse(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.error().code, Errc::kConfig);
    EXPECT_EQ(c.error().what,
              std::string(kPath) + ":" + std::to_string(line) + ": yaml: unexpected ','");
  };
  expect(",", 1);
  expect(",\nqueues: []\n", 1);
  expect(Queue() + "---\n,\n", 7);
  expect(Queue() + "...\n\n  ,\n", 8);
}

// --- unknown and duplicate keys ------------------------------------------------

TEST_F(ConfigTest, UnknownTopLevelKey) {
  ExpectError(Lines({"heartbeat: 10s"}) + Queue(), 1, "heartbeat", "unknown key");
  ExpectError(Queue() + "telemetry: {}\n", 6, "telemetry", "unknown key");
}

TEST_F(ConfigTest, Metrics) {
  ExpectError(Queue() + "metrics: {}\n", 6, "metrics.listen", "required key missing");
  ExpectError(Queue() + "metrics:\n  listen: 9464\n", 7, "metrics.listen", "is not host:port");
  ExpectError(Queue() + "metrics:\n  listen: \"h:70000\"\n", 7, "metrics.listen",
              "is not host:port");
  ExpectError(Queue() + "metrics:\n  listen: \"h:\"\n", 7, "metrics.listen", "is not host:port");
  ExpectError(Queue() + "metrics:\n  listen: h:1\n  port: 2\n", 8, "metrics.port", "unknown key");
  auto c = ParseConfig(Queue() + "metrics:\n  listen: 127.0.0.1:9464\n", "/etc/dropq/test.yaml");
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
  auto off = ParseConfig(Queue(), "/etc/dropq/test.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->metrics_listen, "");
}

TEST_F(ConfigTest, UnknownRedisKey) {
  ExpectError(Lines({"redis:", "  url: redis://h", "  pasword: x"}) + Queue(), 3, "redis.pasword",
              "unknown key (known here: url, sentinels, master, db, user, password, "
              "sentinel_user, sentinel_password, namespace, replica_wait, prefix)");
}

TEST_F(ConfigTest, UnknownQueueKey) {
  ExpectError(Queue({"retries: 3"}), 6, "queues[0].retries", "unknown key");
  ExpectError(Queue({"keep_done: 5", "worker: 3"}), 7, "queues[0].worker", "unknown key");
}

TEST_F(ConfigTest, UnknownHandlerKey) {
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                     "    handler:", "      builtin: noop", "      timout: 5m"}),
              6, "queues[0].handler.timout", "unknown key");
}

TEST_F(ConfigTest, UnknownMoveKey) {
  ExpectError(Queue({"on_success:", "  move_to: " + done_, "  mode: 0644"}), 8,
              "queues[0].on_success.mode", "unknown key");
}

TEST_F(ConfigTest, DuplicateKey) {
  ExpectError(Queue({"workers: 1", "workers: 2"}), 7, "queues[0].workers", "duplicate key");
  ExpectError(Lines({"log_level: info", "log_level: debug"}) + Queue(), 2, "log_level",
              "duplicate key");
}

TEST_F(ConfigTest, NonStringKey) {
  const auto c = Parse(Queue({"? [a, b]", ": 1"}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().what.rfind(std::string(kPath) + ":6: queues[0]: ", 0), 0u) << c.error().what;
}

// --- wrong types ----------------------------------------------------------------

TEST_F(ConfigTest, WrongTypes) {
  ExpectError(Queue({"workers: two"}), 6, "queues[0].workers", "integer");
  ExpectError(Queue({"workers: 1.5"}), 6, "queues[0].workers", "integer");
  ExpectError(Queue({"workers: [1]"}), 6, "queues[0].workers", "integer");
  ExpectError(Queue({"keep_done: lots"}), 6, "queues[0].keep_done", "integer");
  ExpectError(Queue({"include: \"*\""}), 6, "queues[0].include", "expected a list");
  ExpectError(Queue({"exclude: {a: b}"}), 6, "queues[0].exclude", "expected a list");
  ExpectError(Queue({"include: [[a]]"}), 6, "queues[0].include[0]", "expected a string");
  ExpectError(Queue({"name2: x"}), 6, "queues[0].name2", "unknown key");
  ExpectError(Lines({"queues: uploads"}), 1, "queues", "expected a list");
  ExpectError(Lines({"queues:", "  name: q"}), 1, "queues", "expected a list");
  ExpectError(Lines({"queues:", "  - uploads"}), 2, "queues[0]", "expected a map");
  ExpectError(Lines({"redis: redis://h"}) + Queue(), 1, "redis", "expected a map");
  ExpectError(Lines({"instance: [a]"}) + Queue(), 1, "instance", "expected a string");
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_, "    handler: noop"}), 4,
              "queues[0].handler", "expected a map");
  ExpectError(
      Lines({"queues:", "  - name: q", "    watch: " + inbox_, "    handler: {exec: /bin/true}"}),
      4, "queues[0].handler.exec", "expected a list");
  ExpectError(Queue({"on_success: [keep]"}), 6, "queues[0].on_success", "keep, delete or");
}

TEST_F(ConfigTest, EmptyValues) {
  ExpectError(Lines({"instance:"}) + Queue(), 1, "instance", "expected a string");
  ExpectError(Lines({"queues:"}), 1, "queues", "expected a list");
  ExpectError(Lines({"queues: []"}), 1, "queues", "at least one queue");
  ExpectError(
      Lines({"queues:", "  - name:", "    watch: " + inbox_, "    handler: {builtin: noop}"}), 2,
      "queues[0].name", "expected a string");
  ExpectError(Queue({"include: []"}), 6, "queues[0].include", "at least one");
}

// --- missing required keys ------------------------------------------------------

TEST_F(ConfigTest, MissingQueues) {
  ExpectError(Lines({"# hello", "log_level: warn"}), 2, "queues", "required key missing");
}

TEST_F(ConfigTest, MissingQueueKeysPointAtTheQueue) {
  ExpectError(Lines({"queues:", "  - watch: " + inbox_, "    handler: {builtin: noop}"}), 2,
              "queues[0].name", "required key missing");
  ExpectError(Lines({"queues:", "  - name: q", "    handler: {builtin: noop}"}), 2,
              "queues[0].watch", "required key missing");
  ExpectError(Queue() + Lines({"  - name: r", "    watch: " + inbox_}), 6, "queues[1].handler",
              "required key missing");
}

TEST_F(ConfigTest, HandlerNeedsExecOrBuiltin) {
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                     "    handler:", "      timeout: 5m"}),
              4, "queues[0].handler", "exec");
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_, "    handler: {}"}), 4,
              "queues[0].handler", "required key missing");
}

TEST_F(ConfigTest, HandlerWithBothExecAndBuiltin) {
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                     "    handler:", "      exec: [/bin/true]", "      builtin: noop"}),
              6, "queues[0].handler.builtin", "exactly one");
}

TEST_F(ConfigTest, MoveMapWithoutMoveTo) {
  ExpectError(Queue({"on_failure: {}"}), 6, "queues[0].on_failure.move_to", "required key missing");
}

// --- directories ------------------------------------------------------------------

TEST_F(ConfigTest, WatchMustBeAnAbsoluteExistingDirectory) {
  const std::string file = tmp_.Sub("file");
  test::WriteFile(file, "x");
  const auto q = [](const std::string& watch) {
    return Lines({"queues:", "  - name: q", "    handler: {builtin: noop}", "    watch: " + watch});
  };
  ExpectError(q("srv/inbox"), 4, "queues[0].watch", "not an absolute path");
  ExpectError(q("./inbox"), 4, "queues[0].watch", "not an absolute path");
  ExpectError(q(tmp_.Sub("missing")), 4, "queues[0].watch", "does not exist");
  ExpectError(q(file), 4, "queues[0].watch", "not a directory");
}

TEST_F(ConfigTest, MoveToMustBeAnAbsoluteExistingDirectory) {
  ExpectError(Queue({"on_success: {move_to: done}"}), 6, "queues[0].on_success.move_to",
              "not an absolute path");
  ExpectError(Queue({"on_failure:", "  move_to: " + tmp_.Sub("missing")}), 7,
              "queues[0].on_failure.move_to", "does not exist");
}

TEST_F(ConfigTest, MoveToMustNotBeTheWatchedDirectory) {
  const std::string link = tmp_.Sub("link");
  ASSERT_EQ(symlink(inbox_.c_str(), link.c_str()), 0);
  for (const std::string& same : {inbox_, inbox_ + "/", inbox_ + "//", inbox_ + "/.",
                                  tmp_.path() + "/./inbox", done_ + "/../inbox", link}) {
    SCOPED_TRACE(same);
    ExpectError(Queue({"keep_done: 1", "on_success:", "  move_to: " + same}), 8,
                "queues[0].on_success.move_to", "watched directory");
    ExpectError(Queue({"on_failure: {move_to: " + same + "}"}), 6, "queues[0].on_failure.move_to",
                "watched directory");
  }
}

TEST_F(ConfigTest, MoveToEqualToWatchIsCaughtWhateverTheKeyOrder) {
  ExpectError(Lines({"queues:", "  - name: q", "    on_success: {move_to: " + inbox_ + "}",
                     "    watch: " + inbox_, "    handler: {builtin: noop}"}),
              3, "queues[0].on_success.move_to", "watched directory");
}

// --- retry, keep_failed, rescan_interval, heartbeat_ttl ------------------------------

TEST_F(ConfigTest, RetryMustBeAMap) {
  ExpectError(Queue({"retry: 3"}), 6, "queues[0].retry", "expected a map, got \"3\"");
  ExpectError(Queue({"retry: [max_attempts]"}), 6, "queues[0].retry", "expected a map, got a list");
  ExpectError(Queue({"keep_done: 1", "retry:"}), 7, "queues[0].retry", "expected a map");
}

TEST_F(ConfigTest, UnknownRetryKey) {
  ExpectError(Queue({"retry:", "  max_attempts: 3", "  backoff: 2s"}), 8, "queues[0].retry.backoff",
              "unknown key (known here: max_attempts, initial_delay, max_delay, "
              "permanent_exit_codes, tempfail_exit_codes)");
  ExpectError(Queue({"retry:", "  max_attempts: 3", "  max_attempts: 4"}), 8,
              "queues[0].retry.max_attempts", "duplicate key");
}

TEST_F(ConfigTest, BadMaxAttempts) {
  ExpectError(Queue({"retry:", "  max_attempts: 0"}), 7, "queues[0].retry.max_attempts",
              "must be 1..1000, got 0");
  ExpectError(Queue({"retry:", "  max_attempts: 1001"}), 7, "queues[0].retry.max_attempts",
              "1..1000");
  ExpectError(Queue({"retry: {max_attempts: many}"}), 6, "queues[0].retry.max_attempts",
              "expected an integer 1..1000");
  ExpectError(Queue({"retry: {max_attempts: [3]}"}), 6, "queues[0].retry.max_attempts",
              "expected an integer");
}

TEST_F(ConfigTest, BadRetryDelays) {
  ExpectError(Queue({"retry:", "  initial_delay: 0s"}), 7, "queues[0].retry.initial_delay",
              "greater than 0");
  ExpectError(Queue({"retry:", "  max_delay: 0ms"}), 7, "queues[0].retry.max_delay",
              "greater than 0");
  ExpectError(Queue({"retry:", "  initial_delay: 5"}), 7, "queues[0].retry.initial_delay",
              "bad duration");
  ExpectError(Queue({"retry:", "  max_delay: [1s]"}), 7, "queues[0].retry.max_delay",
              "expected a string");
}

TEST_F(ConfigTest, MaxDelayBelowInitialDelay) {
  // Whatever the order, the error is on the max_delay line.
  ExpectError(Queue({"retry:", "  initial_delay: 2m", "  max_delay: 90s"}), 8,
              "queues[0].retry.max_delay", "at least initial_delay (2m), got 90s");
  ExpectError(Queue({"retry:", "  max_delay: 90s", "  max_attempts: 2", "  initial_delay: 2m"}), 7,
              "queues[0].retry.max_delay", "at least initial_delay (2m), got 90s");
  // Caught as soon as both are read: before a later error in the same map.
  ExpectError(Queue({"retry:", "  initial_delay: 2s", "  max_delay: 1s", "  bogus: 1"}), 8,
              "queues[0].retry.max_delay", "initial_delay");
  // An initial_delay above the default max_delay (10m) is on its own line.
  ExpectError(Queue({"retry:", "  max_attempts: 2", "  initial_delay: 11m"}), 8,
              "queues[0].retry.initial_delay", "max_delay (default 10m)");
}

TEST_F(ConfigTest, BadExitCodes) {
  ExpectError(Queue({"retry:", "  permanent_exit_codes: [1, 0]"}), 7,
              "queues[0].retry.permanent_exit_codes[1]", "0 is success");
  ExpectError(Queue({"retry:", "  tempfail_exit_codes:", "    - 75", "    - 256"}), 9,
              "queues[0].retry.tempfail_exit_codes[1]", "must be 1..255, got 256");
  ExpectError(Queue({"retry:", "  tempfail_exit_codes: [-1]"}), 7,
              "queues[0].retry.tempfail_exit_codes[0]", "1..255");
  ExpectError(Queue({"retry:", "  permanent_exit_codes: [x]"}), 7,
              "queues[0].retry.permanent_exit_codes[0]", "expected an integer 1..255");
  ExpectError(Queue({"retry:", "  permanent_exit_codes: 65"}), 7,
              "queues[0].retry.permanent_exit_codes", "expected a list");
  ExpectError(Queue({"retry:", "  permanent_exit_codes: [3, 4, 3]"}), 7,
              "queues[0].retry.permanent_exit_codes[2]", "3 is listed twice");
}

TEST_F(ConfigTest, ExitCodeInBothLists) {
  ExpectError(Queue({"retry:", "  permanent_exit_codes: [1, 2, 3]",
                     "  tempfail_exit_codes:", "    - 75", "    - 2"}),
              10, "queues[0].retry.tempfail_exit_codes[1]", "exit code 2 is in both");
  ExpectError(Queue({"retry:", "  tempfail_exit_codes: [9]", "  max_attempts: 3",
                     "  permanent_exit_codes: [8, 9]"}),
              9, "queues[0].retry.permanent_exit_codes[1]", "exit code 9 is in both");
  // Against the other list's default.
  ExpectError(Queue({"retry:", "  tempfail_exit_codes: [75, 65]"}), 7,
              "queues[0].retry.tempfail_exit_codes[1]",
              "exit code 65 is also in permanent_exit_codes by default (permanent_exit_codes: "
              "[65])");
  ExpectError(Queue({"retry:", "  permanent_exit_codes:", "    - 75"}), 8,
              "queues[0].retry.permanent_exit_codes[0]",
              "exit code 75 is also in "
              "tempfail_exit_codes by default");
}

TEST_F(ConfigTest, BadKeepFailed) {
  ExpectError(Queue({"keep_failed: -1"}), 6, "queues[0].keep_failed", "must be >= 0, got -1");
  ExpectError(Queue({"keep_failed: all"}), 6, "queues[0].keep_failed", "expected an integer");
  ExpectError(Queue({"keep_failed: [1]"}), 6, "queues[0].keep_failed", "expected an integer");
}

TEST_F(ConfigTest, BadRescanInterval) {
  ExpectError(Queue({"rescan_interval: 500ms"}), 6, "queues[0].rescan_interval",
              "0s (off) or at least 1s, got 500ms");
  ExpectError(Queue({"rescan_interval: off"}), 6, "queues[0].rescan_interval", "bad duration");
  ExpectError(Queue({"rescan_interval: [5m]"}), 6, "queues[0].rescan_interval",
              "expected a string");
}

TEST_F(ConfigTest, BadHeartbeatTtl) {
  ExpectError(Lines({"heartbeat_ttl: 500ms"}) + Queue(), 1, "heartbeat_ttl",
              "at least 1s, got 500ms");
  ExpectError(Lines({"log_level: info", "heartbeat_ttl: 0s"}) + Queue(), 2, "heartbeat_ttl",
              "at least 1s");
  ExpectError(Lines({"heartbeat_ttl: 15"}) + Queue(), 1, "heartbeat_ttl", "bad duration");
  ExpectError(Lines({"heartbeat_ttl: {s: 1}"}) + Queue(), 1, "heartbeat_ttl", "expected a string");
}

TEST_F(ConfigTest, RetryErrorsInLaterQueuesNameTheirIndex) {
  ExpectError(Queue() + Lines({"  - name: r", "    watch: " + done_, "    handler: {builtin: noop}",
                               "    retry:", "      initial_delay: 1m", "      max_delay: 1s"}),
              11, "queues[1].retry.max_delay", "initial_delay");
}

// --- values -----------------------------------------------------------------------

TEST_F(ConfigTest, OnFailureDeleteIsRefused) {
  ExpectError(Queue({"on_failure: delete"}), 6, "queues[0].on_failure", "not allowed for failures");
}

TEST_F(ConfigTest, BadDisposition) {
  ExpectError(Queue({"on_success: remove"}), 6, "queues[0].on_success", "keep, delete or");
  ExpectError(Queue({"on_failure: move_to"}), 6, "queues[0].on_failure", "keep or");
}

TEST_F(ConfigTest, DuplicateQueueNames) {
  ExpectError(
      Queue() + Lines({"  - watch: " + done_, "    name: q", "    handler: {builtin: noop}"}), 7,
      "queues[1].name", "duplicate queue name \"q\"");
}

TEST_F(ConfigTest, BadNames) {
  ExpectError(Lines({"queues:", "  - name: my queue", "    watch: " + inbox_,
                     "    handler: {builtin: noop}"}),
              2, "queues[0].name", "not a valid name");
  ExpectError(
      Lines({"queues:", "  - name: a/b", "    watch: " + inbox_, "    handler: {builtin: noop}"}),
      2, "queues[0].name", "not a valid name");
  ExpectError(
      Lines({"queues:", "  - name: \"\"", "    watch: " + inbox_, "    handler: {builtin: noop}"}),
      2, "queues[0].name", "not a valid name");
  ExpectError(Lines({"instance: web:1"}) + Queue(), 1, "instance", "not a valid name");
  ExpectError(Lines({"instance: \"{web}\""}) + Queue(), 1, "instance", "not a valid name");
}

TEST_F(ConfigTest, BadPrefix) {
  ExpectError(Lines({"redis:", "  prefix: \"\""}) + Queue(), 2, "redis.prefix", "empty");
  ExpectError(Lines({"redis:", "  prefix: \"my q\""}) + Queue(), 2, "redis.prefix", "whitespace");
  ExpectError(Lines({"redis:", "  prefix: \"q{1}\""}) + Queue(), 2, "redis.prefix", "'{'");
}

TEST_F(ConfigTest, BadRedisUrl) {
  ExpectError(Lines({"redis:", "  prefix: p", "  url: redis://h:99999/0"}) + Queue(), 3,
              "redis.url", "port");
  ExpectError(Lines({"redis: {url: \"http://h\"}"}) + Queue(), 1, "redis.url", "not a Redis URL");
}

TEST_F(ConfigTest, BadLogLevel) {
  ExpectError(Lines({"log_level: verbose"}) + Queue(), 1, "log_level", "debug, info, warn");
}

TEST_F(ConfigTest, BadIntegers) {
  ExpectError(Queue({"workers: 0"}), 6, "queues[0].workers", "1..1024");
  ExpectError(Queue({"workers: 1025"}), 6, "queues[0].workers", "1..1024");
  ExpectError(Queue({"workers: -1"}), 6, "queues[0].workers", "1..1024");
  ExpectError(Queue({"workers: 0x10"}), 6, "queues[0].workers", "integer");
  ExpectError(Queue({"capacity: 0"}), 6, "queues[0].capacity", "1..1000000");
  ExpectError(Queue({"capacity: 1000001"}), 6, "queues[0].capacity", "1..1000000");
  ExpectError(Queue({"keep_done: -1"}), 6, "queues[0].keep_done", ">= 0");
  ExpectError(Queue({"keep_done: 99999999999999999999"}), 6, "queues[0].keep_done", "integer");
  auto c = Parse(Queue({"workers: 1024", "capacity: 1000000", "keep_done: 9223372036854775807"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
}

TEST_F(ConfigTest, BadGlobs) {
  ExpectError(Queue({"include: [\"*.png\", \"[abc\"]"}), 6, "queues[0].include[1]", "bad glob");
  ExpectError(Queue({"exclude:", "  - \"*.tmp\"", "  - sub/"}), 8, "queues[0].exclude[1]",
              "bad glob \"sub/\"");
  ExpectError(Queue({"include: [\"a//*.png\"]"}), 6, "queues[0].include[0]",
              "empty path component");
  ExpectError(Queue({"exclude: [\"\"]"}), 6, "queues[0].exclude[0]", "bad glob");
}

TEST_F(ConfigTest, BadDurations) {
  ExpectError(Queue({"settle: 5"}), 6, "queues[0].settle", "250ms, 30s, 5m, 2h or 7d");
  ExpectError(Queue({"settle: 1.5s"}), 6, "queues[0].settle", "250ms, 30s, 5m, 2h or 7d");
  ExpectError(Lines({"drain_timeout: -1s"}) + Queue(), 1, "drain_timeout", "bad duration");
  ExpectError(Lines({"drain_timeout: 5 m"}) + Queue(), 1, "drain_timeout", "bad duration");
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                     "    handler:", "      builtin: noop", "      timeout: 0s"}),
              6, "queues[0].handler.timeout", "greater than 0");
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                     "    handler:", "      builtin: noop", "      timeout: forever"}),
              6, "queues[0].handler.timeout", "bad duration");
}

std::string ExecQueue(const std::string& inbox, const std::string& exec) {
  return Lines(
      {"queues:", "  - name: q", "    watch: " + inbox, "    handler:", "      exec: " + exec});
}

TEST_F(ConfigTest, BadExec) {
  ExpectError(ExecQueue(inbox_, "[]"), 5, "queues[0].handler.exec", "program");
  ExpectError(ExecQueue(inbox_, "[\"\", \"{path}\"]"), 5, "queues[0].handler.exec[0]",
              "must not be empty");
  ExpectError(ExecQueue(inbox_, "[/bin/conv, \"{path}\", \"{basename}\"]"), 5,
              "queues[0].handler.exec[2]", "{basename}");
  ExpectError(ExecQueue(inbox_, "[/bin/conv, \"{path\"]"), 5, "queues[0].handler.exec[1]",
              "unclosed");
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                     "    handler:", "      exec:", "        - /bin/conv", "        - \"{path}\"",
                     "        - \"{nope}\""}),
              8, "queues[0].handler.exec[2]", "unknown placeholder {nope}");
  ExpectError(ExecQueue(inbox_, "[/bin/conv, ~]"), 5, "queues[0].handler.exec[1]",
              "expected a string");
}

TEST_F(ConfigTest, ExecAcceptsEscapedBracesAndEmptyArgs) {
  const auto c = Parse(ExecQueue(inbox_, "[awk, \"{{print}}\", \"\", \"{name}\"]"));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].handler.argv,
            (std::vector<std::string>{"awk", "{{print}}", "", "{name}"}));
}

// A queue whose handler map holds `keys` (line 5 is the first).
std::string HandlerQueue(const std::string& inbox, std::initializer_list<std::string> keys) {
  std::string out = Lines({"queues:", "  - name: q", "    watch: " + inbox, "    handler:"});
  for (const std::string& k : keys) out += "      " + k + "\n";
  return out;
}

TEST_F(ConfigTest, ServeHandlerKeysAndDefaults) {
  auto c = Parse(HandlerQueue(inbox_, {"serve: [python3, w.py, \"{queue}\", \"{dir}/m\"]"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  const HandlerConfig& h = c->queues[0].handler;
  EXPECT_EQ(h.kind, HandlerConfig::Kind::kServe);
  EXPECT_EQ(h.argv, (std::vector<std::string>{"python3", "w.py", "{queue}", "{dir}/m"}));
  EXPECT_EQ(h.max_jobs, 0);
  EXPECT_EQ(h.max_rss, 0);
  EXPECT_EQ(h.start_timeout, Millis(30000));
  EXPECT_EQ(c->queues[0].capacity, 4 * c->queues[0].workers);  // one job at a time each
  c = Parse(HandlerQueue(inbox_, {"serve: [w]", "timeout: 5m", "max_jobs: 10000", "max_rss: 1G",
                                  "start_timeout: 45s"}));
  ASSERT_TRUE(c.ok()) << c.error().what;
  EXPECT_EQ(c->queues[0].handler.max_jobs, 10000);
  EXPECT_EQ(c->queues[0].handler.max_rss, int64_t{1} << 30);
  EXPECT_EQ(c->queues[0].handler.start_timeout, Millis(45000));
  EXPECT_EQ(c->queues[0].handler.timeout, Millis(300000));
  EXPECT_EQ(ParseByteSize("512M").value(), int64_t{512} << 20);
  EXPECT_EQ(ParseByteSize("4096").value(), 4096);
  EXPECT_EQ(ParseByteSize("2GiB").value(), int64_t{2} << 30);
  EXPECT_FALSE(ParseByteSize("1T").ok());
  EXPECT_FALSE(ParseByteSize("M").ok());
  EXPECT_FALSE(ParseByteSize("-1M").ok());
  EXPECT_FALSE(ParseByteSize("99999999999G").ok());
}

TEST_F(ConfigTest, BadServeHandlers) {
  ExpectError(HandlerQueue(inbox_, {"serve: [w, \"{path}\"]"}), 5, "queues[0].handler.serve[1]",
              "{path} differs from job to job");
  ExpectError(HandlerQueue(inbox_, {"serve: []"}), 5, "queues[0].handler.serve",
              "must list the program");
  ExpectError(HandlerQueue(inbox_, {"serve: [w]", "exec: [x]"}), 6, "queues[0].handler.exec",
              "exactly one of exec, serve, builtin or http");
  ExpectError(HandlerQueue(inbox_, {"exec: [x]", "max_jobs: 5"}), 6, "queues[0].handler.max_jobs",
              "only for serve");
  ExpectError(HandlerQueue(inbox_, {"serve: [w]", "max_jobs: -1"}), 6,
              "queues[0].handler.max_jobs");
  ExpectError(HandlerQueue(inbox_, {"serve: [w]", "max_rss: 1X"}), 6, "queues[0].handler.max_rss",
              "bad size");
  ExpectError(HandlerQueue(inbox_, {"serve: [w]", "max_rss: 512K"}), 6, "queues[0].handler.max_rss",
              "at least 1M");
  ExpectError(HandlerQueue(inbox_, {"serve: [w]", "start_timeout: 0s"}), 6,
              "queues[0].handler.start_timeout");
}

TEST_F(ConfigTest, BadBuiltin) {
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                     "    handler:", "      builtin: md5"}),
              5, "queues[0].handler.builtin", "sha256 or noop");
}

TEST_F(ConfigTest, ManifestOnlyWithSha256) {
  const std::string m = tmp_.Sub("m.txt");
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                     "    handler:", "      manifest: " + m, "      exec: [/bin/true]"}),
              5, "queues[0].handler.manifest", "only for builtin: sha256");
  ExpectError(Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                     "    handler:", "      builtin: noop", "      manifest: " + m}),
              6, "queues[0].handler.manifest", "only for builtin: sha256");
}

TEST_F(ConfigTest, BadManifestPath) {
  const auto q = [&](const std::string& m) {
    return Lines({"queues:", "  - name: q", "    watch: " + inbox_,
                  "    handler:", "      builtin: sha256", "      manifest: " + m});
  };
  ExpectError(q("sums.txt"), 6, "queues[0].handler.manifest", "not an absolute path");
  ExpectError(q(tmp_.Sub("missing/sums.txt")), 6, "queues[0].handler.manifest", "does not exist");
  ExpectError(q(done_), 6, "queues[0].handler.manifest", "is a directory");
  ExpectError(q(inbox_ + "/sums.txt"), 6, "queues[0].handler.manifest", "watched directory");
}

TEST_F(ConfigTest, MessagesStayOnOneLine) {
  ExpectError(Queue({"workers: \"1\\n2\""}), 6, "queues[0].workers", "got \"1\\n2\"");
  ExpectError(Queue({"settle: |", "  5", "  s"}), 6, "queues[0].settle",
              "bad duration \"5\\ns\\n\"");
  ExpectError(Queue({"exclude: [\"a\\tb/\"]"}), 6, "queues[0].exclude[0]", "\"a\\x09b/\"");
  const auto c = Parse(Queue({"name2: \"" + std::string(200, 'x') + "\""}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().what.find('\n'), std::string::npos);
  const auto d = Parse(Queue({"workers: \"" + std::string(200, '7') + "\""}));
  ASSERT_FALSE(d.ok());
  EXPECT_LT(d.error().what.size(), 200u) << d.error().what;
  EXPECT_NE(d.error().what.find("...\""), std::string::npos) << d.error().what;
}

TEST_F(ConfigTest, ReportsTheFirstErrorInDocumentOrder) {
  ExpectError(Lines({"log_level: loud", "drain_timeout: 5"}) + Queue({"workers: 0"}), 1,
              "log_level");
  ExpectError(Lines({"drain_timeout: 5", "log_level: loud"}) + Queue({"workers: 0"}), 1,
              "drain_timeout");
  ExpectError(Queue({"workers: 0", "bogus: 1"}), 6, "queues[0].workers");
}

TEST_F(ConfigTest, ErrorsInLaterQueuesNameTheirIndex) {
  ExpectError(Queue() + Lines({"  - name: r", "    watch: " + done_,
                               "    handler:", "      builtin: noop", "      timeout: 1"}),
              10, "queues[1].handler.timeout", "bad duration");
}

// The shipped example must stay valid: load it with /srv/dropq moved into a temp dir.
TEST_F(ConfigTest, ExampleConfigIsValid) {
  std::string text = test::ReadFile(std::string(DROPQ_SOURCE_DIR) + "/config/dropq.example.yaml");
  ASSERT_FALSE(text.empty());
  const std::string root = tmp_.Sub("srv");
  for (size_t at; (at = text.find("/srv/dropq")) != std::string::npos;) {
    text.replace(at, 10, root);
  }
  for (const char* dir : {"uploads/inbox", "uploads/done", "uploads/failed", "uploads/out",
                          "hashes/inbox", "hashes/done", "hashes/failed", "scans/inbox",
                          "scans/done", "scans/failed", "ocr/inbox", "ocr/done", "ocr/failed"}) {
    tmp_.Mkdir(std::string("srv/") + dir);
  }
  // The HTTP queue's CA file and token.
  const std::string ca = tmp_.Sub("ocr-ca.pem");
  test::WriteFile(ca, "-----BEGIN CERTIFICATE-----\n");
  text.replace(text.find("/etc/dropq/ocr-ca.pem"), 21, ca);
  setenv("OCR_TOKEN", "t", 1);
  const auto c = Parse(text);
  unsetenv("OCR_TOKEN");
  ASSERT_TRUE(c.ok()) << c.error().what;
  ASSERT_NE(c->FindQueue("uploads"), nullptr);
  ASSERT_NE(c->FindQueue("scans"), nullptr);
  EXPECT_EQ(c->FindQueue("scans")->handler.kind, HandlerConfig::Kind::kHttp);
  ASSERT_NE(c->FindQueue("ocr"), nullptr);
  EXPECT_EQ(c->FindQueue("ocr")->handler.kind, HandlerConfig::Kind::kServe);
  EXPECT_EQ(c->FindQueue("scans")->handler.http.headers.size(), 2u);
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
}

}  // namespace
}  // namespace dropq
