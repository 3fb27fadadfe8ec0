#include "config/redis_url.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdint>
#include <string_view>

namespace dropq {
namespace {

constexpr std::string_view kTcpScheme = "redis://";
constexpr std::string_view kUnixScheme = "unix://";

Error UrlError(std::string what) { return Error{Errc::kConfig, std::move(what)}; }

// Parses all of `s` as a decimal integer in [lo, hi]; false otherwise.
bool ParseInt(std::string_view s, int64_t lo, int64_t hi, int64_t* out) {
  if (s.empty() || s.front() == '-' || s.front() == '+') return false;
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX sequences; false on a malformed one.
bool PercentDecode(std::string_view s, std::string* out) {
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out->push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    const int hi = HexDigit(s[i + 1]);
    const int lo = HexDigit(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

// Where the credentials of `rest` (the URL after its scheme) end: the index
// of the '@' that closes them, or npos when there are none. A host never
// holds '@', so for TCP the last one wins (an unencoded '@' in a password
// still works); a unix path starts with '/', so there the first "@/" wins.
size_t CredentialsEnd(std::string_view rest, bool unix_socket) {
  if (!unix_socket) return rest.rfind('@');
  if (!rest.empty() && rest.front() == '/') return std::string_view::npos;
  return rest.find("@/");
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool IsIpv6Char(char c) { return HexDigit(c) >= 0 || c == ':' || c == '.'; }

Status ParseCredentials(std::string_view cred, RedisUrl* u) {
  const size_t colon = cred.find(':');
  if (colon == std::string_view::npos) {
    return UrlError("credentials must read [user]:password@ (for a password alone: :password@)");
  }
  if (!PercentDecode(cred.substr(0, colon), &u->user) ||
      !PercentDecode(cred.substr(colon + 1), &u->password)) {
    return UrlError("bad percent-encoding in the credentials");
  }
  if (u->password.empty()) return UrlError("empty password (leave out the @ part for no AUTH)");
  return OkStatus();
}

Status ParseDb(std::string_view s, RedisUrl* u) {
  int64_t db = 0;
  if (!ParseInt(s, 0, INT_MAX, &db)) {
    return UrlError("bad database number \"" + std::string(s) + "\" (want an integer >= 0)");
  }
  u->db = static_cast<int>(db);
  return OkStatus();
}

// host[:port][/db], or [v6addr][:port][/db].
Status ParseTcp(std::string_view rest, RedisUrl* u) {
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return UrlError("unexpected '?' or '#' (only unix:// URLs take ?db=N; write /N for redis://)");
  }
  const size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {  // "redis://host/" means db 0
      if (Status s = ParseDb(db, u); !s) return s;
    }
  }
  std::string_view port;
  bool has_port = false;
  if (!hostport.empty() && hostport.front() == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) return UrlError("unclosed '[' in the IPv6 address");
    const std::string_view addr = hostport.substr(1, close - 1);
    if (addr.empty() || addr.find(':') == std::string_view::npos) {
      return UrlError("bad IPv6 address \"" + std::string(addr) + "\"");
    }
    for (char c : addr) {
      if (!IsIpv6Char(c)) return UrlError("bad IPv6 address \"" + std::string(addr) + "\"");
    }
    u->host = std::string(addr);
    const std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return UrlError("unexpected text after the IPv6 address");
      port = after.substr(1);
      has_port = true;
    }
  } else {
    const size_t colon = hostport.find(':');
    if (colon != std::string_view::npos &&
        hostport.find(':', colon + 1) != std::string_view::npos) {
      return UrlError("an IPv6 address must be in brackets: redis://[::1]:6379/0");
    }
    const std::string_view host = hostport.substr(0, colon);
    if (host.empty()) return UrlError("no host (e.g. redis://127.0.0.1:6379/0)");
    for (char c : host) {
      if (!IsHostChar(c)) return UrlError("bad host \"" + std::string(host) + "\"");
    }
    u->host = std::string(host);
    if (colon != std::string_view::npos) {
      port = hostport.substr(colon + 1);
      has_port = true;
    }
  }
  if (has_port) {
    int64_t p = 0;
    if (!ParseInt(port, 1, 65535, &p)) {
      return UrlError("bad port \"" + std::string(port) + "\" (want 1..65535)");
    }
    u->port = static_cast<int>(p);
  }
  return OkStatus();
}

// /abs/path[?db=N]
Status ParseUnix(std::string_view rest, RedisUrl* u) {
  if (rest.empty() || rest.front() != '/') {
    return UrlError("the socket path must be absolute: unix:///run/redis/redis.sock");
  }
  const size_t q = rest.find('?');
  const std::string_view path = rest.substr(0, q);
  if (path.size() < 2 || path.back() == '/') {
    return UrlError("\"" + std::string(path) + "\" is not a socket path");
  }
  if (path.find('#') != std::string_view::npos) return UrlError("unexpected '#' in the path");
  u->path = std::string(path);
  if (q != std::string_view::npos) {
    const std::string_view query = rest.substr(q + 1);
    if (query.substr(0, 3) != "db=") {
      return UrlError("unknown query \"" + std::string(query) + "\" (only ?db=N is understood)");
    }
    if (Status s = ParseDb(query.substr(3), u); !s) return s;
  }
  return OkStatus();
}

}  // namespace

std::string HostPort::Display() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<HostPort> ParseHostPort(const std::string& text) {
  const size_t colon = text.rfind(':');
  HostPort hp;
  if (colon == std::string::npos || colon == 0) {
    return Error{Errc::kConfig, "\"" + text + "\" is not host:port (e.g. 10.0.0.11:26379)"};
  }
  hp.host = text.substr(0, colon);
  if (hp.host.front() == '[') {
    if (hp.host.back() != ']' || hp.host.size() < 3) {
      return Error{Errc::kConfig, "\"" + text + "\": an IPv6 address goes in brackets"};
    }
    hp.host = hp.host.substr(1, hp.host.size() - 2);
  } else if (hp.host.find(':') != std::string::npos) {
    return Error{Errc::kConfig, "\"" + text + "\": an IPv6 address goes in brackets"};
  }
  const std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
      std::stoi(port) > 65535) {
    return Error{Errc::kConfig, "\"" + text + "\": the port must be 1..65535"};
  }
  hp.port = std::stoi(port);
  return hp;
}

std::string RedisUrl::Identity() const {
  if (!namespace_name.empty()) return "namespace:" + namespace_name;
  return Display();
}

std::string RedisUrl::Display() const {
  if (sentinel()) {
    std::vector<std::string> addrs;
    for (const HostPort& s : sentinels) addrs.push_back(s.Display());
    std::sort(addrs.begin(), addrs.end());
    std::string out = "sentinel:" + master + "@";
    for (size_t i = 0; i < addrs.size(); ++i) out += (i ? "," : "") + addrs[i];
    return out + "/" + std::to_string(db);
  }
  if (unix_socket) return "unix:" + path + "/" + std::to_string(db);
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" + std::to_string(db);
}

Result<RedisUrl> ParseRedisUrl(const std::string& text) {
  const std::string_view t = text;
  RedisUrl u;
  std::string_view rest;
  if (t.substr(0, kTcpScheme.size()) == kTcpScheme) {
    rest = t.substr(kTcpScheme.size());
  } else if (t.substr(0, kUnixScheme.size()) == kUnixScheme) {
    u.unix_socket = true;
    rest = t.substr(kUnixScheme.size());
  } else if (t.substr(0, 9) == "rediss://") {
    return UrlError("TLS (rediss://) is not supported");
  } else {
    return UrlError("\"" + text +
                    "\" is not a Redis URL (want redis://host[:port][/db] or "
                    "unix:///path/to/redis.sock[?db=N])");
  }
  if (const size_t at = CredentialsEnd(rest, u.unix_socket); at != std::string_view::npos) {
    if (Status s = ParseCredentials(rest.substr(0, at), &u); !s) return s.error();
    rest = rest.substr(at + 1);
  }
  Status s = u.unix_socket ? ParseUnix(rest, &u) : ParseTcp(rest, &u);
  if (!s) return s.error();
  return u;
}

std::string RedactRedisUrl(const std::string& text) {
  const size_t scheme_end = text.find("://");
  if (scheme_end == std::string::npos) return text;
  const size_t start = scheme_end + 3;
  const bool unix_socket = text.compare(0, scheme_end, "unix") == 0;
  const size_t at = CredentialsEnd(std::string_view(text).substr(start), unix_socket);
  if (at == std::string_view::npos) return text;
  const std::string_view cred = std::string_view(text).substr(start, at);
  const size_t colon = cred.find(':');
  // Without a colon the whole of it may be a password: hide all of it.
  const size_t from = colon == std::string_view::npos ? start : start + colon + 1;
  return text.substr(0, from) + "***" + text.substr(start + at);
}

}  // namespace dropq
