// The serve handler protocol (workers/serve_protocol.h): job lines out,
// answers in, non-UTF-8 bytes as lone surrogates both ways.
#include "workers/serve_protocol.h"

#include <gtest/gtest.h>

#include <string>

namespace dropq {
namespace {

TEST(ServeProtocolTest, JobLineCarriesEveryFieldAndEscapesBytes) {
  ServeJob j{"01J", "scans", "/srv/in/a\"b.pdf", "a\"b.pdf", "x/a\"b.pdf", 2, 1234};
  EXPECT_EQ(EncodeServeJob(j),
            "{\"id\":\"01J\",\"queue\":\"scans\",\"path\":\"/srv/in/a\\\"b.pdf\","
            "\"name\":\"a\\\"b.pdf\",\"relpath\":\"x/a\\\"b.pdf\",\"attempt\":2,\"size\":1234}\n");
  // A Latin-1 byte and a newline: a lone surrogate and an escape, one line.
  j.name = "caf\xe9\nx";
  const std::string line = EncodeServeJob(j);
  EXPECT_NE(line.find("\"name\":\"caf\\udce9\\nx\""), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(ServeProtocolTest, ReadyLine) {
  auto a = DecodeServeAnswer("{\"ready\": true}");
  ASSERT_TRUE(a.ok()) << a.error().what;
  EXPECT_EQ(a->kind, ServeAnswer::Kind::kReady);
  EXPECT_FALSE(DecodeServeAnswer("{\"ready\": false}").ok());
  EXPECT_FALSE(DecodeServeAnswer("{\"ready\": 1}").ok());
}

TEST(ServeProtocolTest, Answers) {
  auto a = DecodeServeAnswer(R"({"id":"J1","ok":true,"result":{"sha256":"ab","n":[1,2.5,null]}})");
  ASSERT_TRUE(a.ok()) << a.error().what;
  EXPECT_EQ(a->kind, ServeAnswer::Kind::kAnswer);
  EXPECT_EQ(a->id, "J1");
  EXPECT_TRUE(a->ok);
  EXPECT_EQ(a->result, R"({"n":[1,2.5,null],"sha256":"ab"})");
  a = DecodeServeAnswer(R"({"id":"J1","ok":true})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->result, "");
  a = DecodeServeAnswer(
      R"({"id":"J2","ok":false,"error":"bad scan","permanent":true,"extra":"ignored"})");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->ok);
  EXPECT_EQ(a->error, "bad scan");
  EXPECT_TRUE(a->permanent);
  EXPECT_EQ(a->retry_after_ms, -1);
  a = DecodeServeAnswer(R"({"id":"J3","ok":false,"retry_after":1.5})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->retry_after_ms, 1500);
  EXPECT_EQ(a->error, "");
}

TEST(ServeProtocolTest, LoneSurrogatesAreBytesAndPairsAreCharacters) {
  // An answer that echoes a non-UTF-8 name (Python's json.dumps of a
  // surrogateescape'd str), a real astral character (a surrogate pair whose
  // low half is in DC80..DCFF), an escaped NUL, and a backslash before "udc80".
  auto a = DecodeServeAnswer(
      R"({"id":"J","ok":false,"error":"caf\udce9 \ud83d\udc80 a\u0000b \\udc80 \u00e9"})");
  ASSERT_TRUE(a.ok()) << a.error().what;
  EXPECT_EQ(a->error, std::string("caf\xe9 \xf0\x9f\x92\x80 a\0b \\udc80 \xc3\xa9", 23));
  // In a result: kept as the same escapes, keys included.
  a = DecodeServeAnswer(R"({"id":"J","ok":true,"result":{"n\udcff":"caf\udce9","z":"\u0000"}})");
  ASSERT_TRUE(a.ok()) << a.error().what;
  EXPECT_EQ(a->result, R"({"n\udcff":"caf\udce9","z":"\u0000"})");
  // An id that is a surrogate-escaped byte string is mapped back too.
  a = DecodeServeAnswer(R"({"id":"\udc80","ok":true})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->id, "\x80");
}

TEST(ServeProtocolTest, NestingIsBounded) {
  std::string deep = "{\"id\":\"J\",\"ok\":true,\"result\":{\"a\":";
  for (int i = 0; i < 500000; ++i) deep += '[';
  for (int i = 0; i < 500000; ++i) deep += ']';
  deep += "}}";
  auto a = DecodeServeAnswer(deep);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().what.find("nested deeper than 64"), std::string::npos);
  // Brackets inside strings do not count.
  a = DecodeServeAnswer(
      R"({"id":"J","ok":true,"result":{"s":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"[["}})");
  ASSERT_TRUE(a.ok()) << a.error().what;
}

TEST(ServeProtocolTest, WhatIsNotProtocol) {
  for (const char* line :
       {"", "garbage", "[1,2]", "{\"ok\":true}", "{\"id\":1,\"ok\":true}", "{\"id\":\"J\"}",
        "{\"id\":\"J\",\"ok\":\"yes\"}", "{\"id\":\"J\",\"ok\":true,\"result\":[1]}",
        "{\"id\":\"J\",\"ok\":true,\"result\":\"x\"}", "{\"id\":\"J\",\"ok\":false,\"error\":5}",
        "{\"id\":\"J\",\"ok\":false,\"permanent\":\"no\"}",
        "{\"id\":\"J\",\"ok\":false,\"retry_after\":-1}",
        "{\"id\":\"J\",\"ok\":false,\"retry_after\":\"30\"}", "{\"id\":\"J\",\"ok\":true} trailing",
        "{\"id\":\"\xff\",\"ok\":true}",
        "{\"id\":\"J\",\"ok\":true,\"result\":{\"a\":\"\\ud800\"}}"}) {
    auto a = DecodeServeAnswer(line);
    EXPECT_FALSE(a.ok()) << line;
    if (!a.ok()) {
      EXPECT_FALSE(a.error().what.empty());
    }
  }
}

}  // namespace
}  // namespace dropq
