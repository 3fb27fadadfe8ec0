#include "store/reply.h"

#include <hiredis/hiredis.h>

#include <charconv>

namespace dropq {

Reply Reply::CopyOf(const redisReply& r) {
  Reply out;
  switch (r.type) {
    case REDIS_REPLY_INTEGER:
      out.type = Type::kInteger;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = Type::kString;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Type::kStatus;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Type::kError;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Type::kArray;
      out.elements.reserve(r.elements);
      for (size_t i = 0; i < r.elements; ++i) out.elements.push_back(CopyOf(*r.element[i]));
      break;
    default:
      out.type = Type::kNil;
  }
  return out;
}

std::string Reply::AsString() const {
  if (type == Type::kInteger) return std::to_string(integer);
  if (type == Type::kString || type == Type::kStatus) return str;
  return {};
}

int64_t Reply::AsInt(int64_t def) const {
  if (type == Type::kInteger) return integer;
  if (type != Type::kString) return def;
  int64_t v = 0;
  auto r = std::from_chars(str.data(), str.data() + str.size(), v);
  return r.ec == std::errc() && r.ptr == str.data() + str.size() ? v : def;
}

}  // namespace dropq
