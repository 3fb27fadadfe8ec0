// Where Redis is and how to log in: parsed from redis.url.
//   redis://[[user]:password@]host[:port][/db]
//   unix://[[user]:password@]/path/to/redis.sock[?db=N]
// Immutable value type.
#pragma once

#include <string>

#include "common/result.h"

namespace dropq {

struct RedisUrl {
  bool unix_socket = false;
  std::string host = "127.0.0.1";  // TCP only
  int port = 6379;                 // TCP only
  std::string path;                // unix socket path
  std::string user;                // empty: AUTH with the password alone
  std::string password;            // empty: no AUTH
  int db = 0;

  // The address without credentials: "127.0.0.1:6379/0" or "unix:/run/x.sock/0".
  std::string Display() const;

  friend bool operator==(const RedisUrl&, const RedisUrl&) = default;
};

// Parses `text`; the Error (Errc::kConfig) says what is wrong, without the key.
// The user and password may be percent-encoded (%40 for '@').
Result<RedisUrl> ParseRedisUrl(const std::string& text);

// Returns `text` with the password, if any, replaced by "***", for logs:
// "redis://app:s3cret@db:6379/2" -> "redis://app:***@db:6379/2".
std::string RedactRedisUrl(const std::string& text);

}  // namespace dropq
