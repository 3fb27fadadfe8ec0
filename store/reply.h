// Reply is an owned copy of a hiredis reply. hiredis frees its replies right
// after an async callback returns, so everything dropq keeps is copied (with
// explicit lengths: values may hold NUL bytes). Thread: owner.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct redisReply;

namespace dropq {

struct Reply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;          // kInteger
  std::string str;              // kString, kStatus, kError
  std::vector<Reply> elements;  // kArray

  static Reply CopyOf(const redisReply& r);
  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
  // The value as text: str for strings, the decimal integer for kInteger, "" otherwise.
  std::string AsString() const;
  // The value as an integer: kInteger, or a string holding a decimal; else `def`.
  int64_t AsInt(int64_t def = 0) const;
};

}  // namespace dropq
