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
};

// Parses `text`; the Error (Errc::kConfig) says what is wrong, without the key.
Result<RedisUrl> ParseRedisUrl(const std::string& text);

}  // namespace dropq
