// Who may read the console and who may act through it (dropq-web).
//
// Reading: a request's Host header must name one of the console's own host
// names (the listen address; for loopback also localhost, 127.0.0.1 and
// [::1]; and each --allow-host), whatever the port. A page on another site
// that rebinds its DNS name to the console's address still sends its own
// name as Host, and is refused: it cannot read the console.
//
// Acting (POST): as reading, and an Origin header, when the browser sends
// one, must name one of those hosts too; and the request must carry the
// console's token as "Authorization: Bearer <token>". Browsers never attach
// that header on their own (unlike a cookie), so a page on another site
// cannot make the operator's browser act. The token is compared in
// constant time (CRYPTO_memcmp over SHA-256 digests). A console started
// without a token is read-only.
//
// Immutable once made; thread: any.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dropq::web {

class AccessPolicy {
 public:
  // `listen_host`: the address the console listens on ("127.0.0.1", "::1",
  // "0.0.0.0", "192.0.2.7"); `extra_hosts`: more names the console is
  // reached by (a reverse proxy's public name); `token`: "" for read-only.
  AccessPolicy(std::string_view listen_host, const std::vector<std::string>& extra_hosts,
               std::string token);

  // True if `host_header` ("name", "name:port", "[v6]:port") names an allowed host.
  bool HostAllowed(std::string_view host_header) const;
  // True if `origin` ("scheme://name[:port]") names an allowed host. "null"
  // and anything that is not an http(s) origin are refused.
  bool OriginAllowed(std::string_view origin) const;

  enum class Auth { kOk, kReadOnly, kMissing, kWrong };
  // The verdict on an Authorization header ("" when absent).
  Auth CheckAuthorization(std::string_view header) const;
  bool read_only() const { return token_.empty(); }
  const std::vector<std::string>& hosts() const { return hosts_; }

 private:
  std::vector<std::string> hosts_;  // lower-case names, IPv6 in brackets, no port
  std::string token_;
};

// True for an address that only this machine can reach: 127.0.0.0/8, ::1,
// "localhost".
bool IsLoopback(std::string_view host);

}  // namespace dropq::web
