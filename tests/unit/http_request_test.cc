// The HTTP handler's protocol apart from the transfer: the request a job
// makes (templates expanded and encoded), what a status means, Retry-After.
#include "workers/http_request.h"

#include <gtest/gtest.h>

#include "common/text_template.h"
#include "workers/retry_policy.h"

namespace dropq {
namespace {

constexpr TextTemplate::Syntax kBoth{.placeholders = true, .secrets = true};

TextTemplate T(const std::string& s) { return *TextTemplate::Parse(s, kBoth); }

QueueConfig HttpQueue() {
  QueueConfig q;
  q.name = "scans";
  q.watch = "/srv/inbox";
  q.handler.kind = HandlerConfig::Kind::kHttp;
  q.handler.http.url = T("https://api.example.com/v1/{relpath}?job={job_id}&n={attempt}");
  return q;
}

Job AJob(const std::string& name) {
  Job j;
  j.id = "0193a1b2c3d4e5f6";
  j.queue = "scans";
  j.name = name;
  j.attempt = 2;
  return j;
}

TEST(HttpRequestTest, PlaceholdersArePercentEncodedSecretsAsTheirPlaceSays) {
  QueueConfig q = HttpQueue();
  q.handler.http.headers = {{"Authorization", T("Bearer ${env:T}")}, {"X-Name", T("{name}")}};
  q.handler.http.headers[0].second.mutable_parts()[1].text = "t/k+n";  // the secret's value
  const HttpRequest r =
      BuildHttpRequest(q, AJob("alice/2026/a b\r\nX-Injected: 1.pdf"), "/p/x", 12);
  EXPECT_EQ(r.url,
            "https://api.example.com/v1/alice/2026/a%20b%0D%0AX-Injected%3A%201.pdf"
            "?job=0193a1b2c3d4e5f6&n=2");
  ASSERT_EQ(r.headers.size(), 3u);
  EXPECT_EQ(r.headers[0], "Authorization: Bearer t/k+n");
  EXPECT_EQ(r.headers[1], "X-Name: a%20b%0D%0AX-Injected%3A%201.pdf");
  EXPECT_EQ(r.headers[2], "Content-Type: application/octet-stream");
}

TEST(HttpRequestTest, JsonBodyCarriesEveryNameByte) {
  QueueConfig q = HttpQueue();
  q.handler.http.body = HttpConfig::Body::kJson;
  const HttpRequest r = BuildHttpRequest(q, AJob(std::string("d/\"q\"\xff.pdf")), "/p", 7);
  EXPECT_EQ(
      r.json,
      "{\"queue\":\"scans\",\"job_id\":\"0193a1b2c3d4e5f6\",\"relpath\":\"d/\\\"q\\\"\\udcff.pdf\","
      "\"name\":\"\\\"q\\\"\\udcff.pdf\",\"size\":7,\"attempt\":2}");
  EXPECT_EQ(r.headers.back(), "Content-Type: application/json");
}

TEST(HttpRequestTest, MultipartFieldsAndFileName) {
  QueueConfig q = HttpQueue();
  q.handler.http.body = HttpConfig::Body::kMultipart;
  q.handler.http.fields = {{"job", T("{job_id}")}, {"dir", T("{reldir}")}};
  const HttpRequest r = BuildHttpRequest(q, AJob("a/b/c d.png"), "/p", 1);
  ASSERT_EQ(r.fields.size(), 2u);
  EXPECT_EQ(r.fields[0], (std::pair<std::string, std::string>{"job", "0193a1b2c3d4e5f6"}));
  EXPECT_EQ(r.fields[1], (std::pair<std::string, std::string>{"dir", "a/b"}));
  EXPECT_EQ(r.filename, "c d.png");
}

TEST(HttpRequestTest, EveryStatusHasAClass) {
  HttpConfig h;
  for (long s : {200L, 201L, 204L, 299L}) EXPECT_EQ(ClassifyStatus(h, s), HttpClass::kSuccess);
  for (long s : {408L, 425L, 429L, 500L, 502L, 503L, 599L}) {
    EXPECT_EQ(ClassifyStatus(h, s), HttpClass::kRetry) << s;
  }
  for (long s : {301L, 307L, 400L, 401L, 403L, 404L, 409L, 413L}) {
    EXPECT_EQ(ClassifyStatus(h, s), HttpClass::kPermanent) << s;
  }
  h.retry_statuses = {409};
  h.permanent_statuses = {501};
  EXPECT_EQ(ClassifyStatus(h, 409), HttpClass::kRetry);
  EXPECT_EQ(ClassifyStatus(h, 501), HttpClass::kPermanent);
  EXPECT_TRUE(HonoursRetryAfter(429));
  EXPECT_TRUE(HonoursRetryAfter(503));
  EXPECT_FALSE(HonoursRetryAfter(500));
}

TEST(HttpRequestTest, RetryAfterInSecondsOrAsADate) {
  const int64_t now = 1793000000000;
  EXPECT_EQ(ParseRetryAfter(" 120\r\n", now), 120000);
  EXPECT_EQ(ParseRetryAfter("0", now), 0);
  EXPECT_EQ(ParseRetryAfter("99999999999999999999", now), INT64_MAX);
  EXPECT_EQ(ParseRetryAfter("-5", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("", now), std::nullopt);
  // 1793000000 s is Mon, 26 Oct 2026 07:33:20 GMT.
  EXPECT_EQ(ParseRetryAfter("Mon, 26 Oct 2026 07:33:50 GMT", now), 30000);
  EXPECT_EQ(ParseRetryAfter("Mon, 26 Oct 2026 07:00:00 GMT", now), 0);  // past
  EXPECT_EQ(ParseRetryAfter("Mon, 26 Oct 2026 07:33:50 CET", now), std::nullopt);
}

TEST(HttpRequestTest, AppendTailKeepsTheLastBytes) {
  std::string t;
  AppendTail(&t, "abc", 5);
  AppendTail(&t, "defg", 5);
  EXPECT_EQ(t, "cdefg");
  AppendTail(&t, "0123456789", 5);
  EXPECT_EQ(t, "56789");
}

TEST(HttpRequestTest, RetryPolicyHonoursTheOutcomesClass) {
  RetryConfig cfg;
  RetryPolicy policy(cfg, 1);
  Outcome o;
  o.result = RunResult::kHttp;
  o.fail_class = FailClass::kPermanent;
  RetryDecision d = policy.Decide(o);
  EXPECT_FALSE(d.retry);
  EXPECT_EQ(d.failures, 1u);
  o.fail_class = FailClass::kTempfail;
  o.retry_after_ms = 2000;
  d = policy.Decide(o);
  EXPECT_TRUE(d.retry);
  EXPECT_TRUE(d.tempfail);
  EXPECT_EQ(d.failures, 0u);
  EXPECT_EQ(d.tempfails, 1u);
  EXPECT_EQ(d.delay_ms, 2000);
  o.fail_class = FailClass::kDefault;
  d = policy.Decide(o);
  EXPECT_TRUE(d.retry);
  EXPECT_FALSE(d.tempfail);
  EXPECT_EQ(d.failures, 1u);
}

}  // namespace
}  // namespace dropq
