// EscapeName, UnescapeName, IsValidUtf8, ToValidUtf8 and HexBytes (common/escape.h).
#include "common/escape.h"

#include <gtest/gtest.h>

#include <string>

namespace dropq {
namespace {

using std::string_literals::operator""s;

TEST(EscapeNameTest, KeepsPlainNames) {
  EXPECT_EQ(EscapeName(""), "");
  EXPECT_EQ(EscapeName("a.png"), "a.png");
  EXPECT_EQ(EscapeName("IMG_001-final~(2).JPG"), "IMG_001-final~(2).JPG");
}

TEST(EscapeNameTest, EscapesSpaceControlBytesAndBackslash) {
  EXPECT_EQ(EscapeName("a b.png"), "a\\x20b.png");
  EXPECT_EQ(EscapeName("a\nb"), "a\\x0ab");
  EXPECT_EQ(EscapeName("\t\r"), "\\x09\\x0d");
  EXPECT_EQ(EscapeName("a\\b"), "a\\\\b");
  EXPECT_EQ(EscapeName("\x7f"), "\\x7f");
  EXPECT_EQ(EscapeName("\x1f"), "\\x1f");
  EXPECT_EQ(EscapeName("a\0b"s), "a\\x00b");
}

TEST(EscapeNameTest, KeepsValidUtf8) {
  EXPECT_EQ(EscapeName("caf\xc3\xa9.png"), "caf\xc3\xa9.png");                    // é
  EXPECT_EQ(EscapeName("\xe6\x97\xa5\xe6\x9c\xac"), "\xe6\x97\xa5\xe6\x9c\xac");  // 日本
  EXPECT_EQ(EscapeName("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");                  // U+1F600
  EXPECT_EQ(EscapeName("\xf4\x8f\xbf\xbf"), "\xf4\x8f\xbf\xbf");                  // U+10FFFF
}

TEST(EscapeNameTest, EscapesInvalidBytesInLowerCaseHex) {
  EXPECT_EQ(EscapeName("a\xff"), "a\\xff");
  EXPECT_EQ(EscapeName("\xc3"), "\\xc3");                             // truncated sequence
  EXPECT_EQ(EscapeName("\xc3("), "\\xc3(");                           // bad continuation
  EXPECT_EQ(EscapeName("\x80"), "\\x80");                             // lone continuation
  EXPECT_EQ(EscapeName("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(EscapeName("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // surrogate U+D800
  EXPECT_EQ(EscapeName("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(EscapeName("\xAB"), "\\xab");
}

TEST(UnescapeNameTest, ReversesEscapeName) {
  EXPECT_EQ(EscapeName("a b"), "a\\x20b");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  for (const std::string& name : {""s, "a b.png"s, "a\\b"s, "\\\\x20"s, "a\nb\0c"s, "caf\xc3\xa9"s,
                                  "\xff\xfe"s, "\xed\xa0\x80"s, "\xc3"s, all, "x\\x41"s}) {
    std::string back = "garbage";
    ASSERT_TRUE(UnescapeName(EscapeName(name), &back)) << EscapeName(name);
    EXPECT_EQ(back, name) << EscapeName(name);
  }
}

TEST(UnescapeNameTest, AcceptsUpperCaseHex) {
  std::string out;
  ASSERT_TRUE(UnescapeName("\\x4A\\x4a", &out));
  EXPECT_EQ(out, "JJ");
}

TEST(UnescapeNameTest, RejectsMalformedEscapes) {
  for (const char* bad : {"\\", "a\\", "\\x", "\\x4", "\\xg0", "\\x0g", "\\q", "\\n", "\\X41"}) {
    std::string out;
    EXPECT_FALSE(UnescapeName(bad, &out)) << bad;
  }
}

TEST(IsValidUtf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii\n"));
  EXPECT_TRUE(IsValidUtf8("a\0b"s));
  EXPECT_TRUE(IsValidUtf8("\xc2\x80"));          // U+0080, smallest 2-byte
  EXPECT_TRUE(IsValidUtf8("\xe0\xa0\x80"));      // U+0800, smallest 3-byte
  EXPECT_TRUE(IsValidUtf8("\xed\x9f\xbf"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(IsValidUtf8("\xee\x80\x80"));      // U+E000, just above them
  EXPECT_TRUE(IsValidUtf8("\xf0\x90\x80\x80"));  // U+10000, smallest 4-byte
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
}

TEST(IsValidUtf8Test, RejectsOverlongsSurrogatesAndJunk) {
  for (const std::string& s : {
           "\xc0\x80"s,              // overlong NUL
           "\xc1\xbf"s,              // overlong U+007F
           "\xe0\x80\x80"s,          // overlong 3-byte
           "\xe0\x9f\xbf"s,          // overlong U+07FF
           "\xf0\x80\x80\x80"s,      // overlong 4-byte
           "\xf0\x8f\xbf\xbf"s,      // overlong U+FFFF
           "\xed\xa0\x80"s,          // U+D800
           "\xed\xbf\xbf"s,          // U+DFFF
           "\xf4\x90\x80\x80"s,      // U+110000
           "\xf5\x80\x80\x80"s,      // lead byte past U+10FFFF
           "\xf8\x88\x80\x80\x80"s,  // 5-byte form
           "\xff"s,
           "\x80"s,      // lone continuation
           "\xc3"s,      // truncated
           "\xe6\x97"s,  // truncated
           "a\xc3(b"s,   // bad continuation
       }) {
    EXPECT_FALSE(IsValidUtf8(s)) << EscapeName(s);
  }
}

TEST(ToValidUtf8Test, ReplacesEachBadByteWithReplacementChar) {
  const std::string kFffd = "\xef\xbf\xbd";
  EXPECT_EQ(ToValidUtf8("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(ToValidUtf8("a\xff"
                        "b"),
            "a" + kFffd + "b");
  EXPECT_EQ(ToValidUtf8("\xc0\xaf"), kFffd + kFffd);
  EXPECT_EQ(ToValidUtf8(""), "");
  EXPECT_TRUE(IsValidUtf8(ToValidUtf8("\xed\xa0\x80\xf4\x90\x80\x80\xc3")));
}

TEST(HexBytesTest, LowerCaseTwoDigitsPerByte) {
  EXPECT_EQ(HexBytes(""), "");
  EXPECT_EQ(HexBytes("\x00\x0f\xab\xff"s), "000fabff");
  EXPECT_EQ(HexBytes("AZ"), "415a");
}

}  // namespace
}  // namespace dropq

namespace dropq {
namespace {

TEST(EscapeTextTest, KeepsSpacesButNoControlBytes) {
  EXPECT_EQ(EscapeText("a b\tc\\d"), "a b\tc\\d");
  EXPECT_EQ(EscapeText("red \x1b[31m!"), "red \\x1b[31m!");
  EXPECT_EQ(EscapeText("caf\xc3\xa9 \xff"), "caf\xc3\xa9 \\xff");
}

}  // namespace
}  // namespace dropq
