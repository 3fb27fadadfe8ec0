// Where Redis is and how to log in: parsed from redis.url.
//   redis://[[user]:password@]host[:port][/db]
//   unix://[[user]:password@]/path/to/redis.sock[?db=N]
// Immutable value type.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace dropq {

// A TCP address: a host name or IP address, and a port.
struct HostPort {
  std::string host;
  int port = 0;
  std::string Display() const;  // "10.0.0.11:26379", "[::1]:26379"
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// Parses "host:port" or "[v6]:port"; Errc::kConfig says what is wrong.
Result<HostPort> ParseHostPort(const std::string& text);

struct RedisUrl {
  bool unix_socket = false;
  std::string host = "127.0.0.1";  // TCP only
  int port = 6379;                 // TCP only
  std::string path;                // unix socket path
  std::string user;                // empty: AUTH with the password alone
  std::string password;            // empty: no AUTH
  int db = 0;

  // With Sentinel (redis.sentinels instead of redis.url): the sentinels to
  // ask, in the order given, for the address of the primary they call
  // `master`, and the sentinels' own credentials. host and port then hold
  // the primary last found (store/sentinel.h), nothing before.
  std::vector<HostPort> sentinels;
  std::string master;
  std::string sentinel_user;      // empty: AUTH with the password alone
  std::string sentinel_password;  // empty: no AUTH to the sentinels
  // redis.namespace: what identifies this Redis to dropq (the instance lock,
  // DROPQ_NAMESPACE) instead of its address; empty: Identity() derives it.
  std::string namespace_name;

  bool sentinel() const { return !sentinels.empty(); }

  // The address without credentials: "127.0.0.1:6379/0", "unix:/run/x.sock/0",
  // or with Sentinel "sentinel:dropq@10.0.0.11:26379,10.0.0.12:26379/0" (the
  // sentinels sorted).
  std::string Display() const;

  // What identifies this Redis namespace whichever server is primary:
  // "namespace:<name>" given redis.namespace, else Display() (with Sentinel:
  // the primary's name, the sorted sentinels and the db).
  std::string Identity() const;

  friend bool operator==(const RedisUrl&, const RedisUrl&) = default;
};

// Parses `text`; the Error (Errc::kConfig) says what is wrong, without the key.
// The user and password may be percent-encoded (%40 for '@').
Result<RedisUrl> ParseRedisUrl(const std::string& text);

// Returns `text` with the password, if any, replaced by "***", for logs:
// "redis://app:s3cret@db:6379/2" -> "redis://app:***@db:6379/2".
std::string RedactRedisUrl(const std::string& text);

}  // namespace dropq
