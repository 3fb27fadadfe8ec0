#include "web/access.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

namespace dropq::web {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

// The name part of "name", "name:port", "[v6]" or "[v6]:port", lower-case,
// IPv6 kept in brackets; "" if malformed.
std::string HostName(std::string_view host) {
  if (host.empty()) return "";
  if (host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return "";
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return "";
    return Lower(host.substr(0, close + 1));
  }
  const size_t colon = host.find(':');
  if (colon != std::string_view::npos && host.find(':', colon + 1) != std::string_view::npos) {
    return "";  // a bare IPv6 address: not a valid Host header
  }
  return Lower(host.substr(0, colon));
}

std::string Bracketed(std::string_view host) {
  if (host.find(':') != std::string_view::npos && host.front() != '[') {
    return "[" + Lower(host) + "]";
  }
  return Lower(host);
}

}  // namespace

bool IsLoopback(std::string_view host) {
  const std::string h = Lower(host);
  return h == "localhost" || h == "::1" || h == "[::1]" || h.rfind("127.", 0) == 0;
}

AccessPolicy::AccessPolicy(std::string_view listen_host,
                           const std::vector<std::string>& extra_hosts, std::string token)
    : token_(std::move(token)) {
  const std::string listen = Bracketed(listen_host);
  if (listen != "0.0.0.0" && listen != "[::]") hosts_.push_back(listen);
  if (IsLoopback(listen_host)) {
    for (const char* h : {"localhost", "127.0.0.1", "[::1]"}) hosts_.push_back(h);
  }
  // "name", "name:port", "[v6]", "[v6]:port" or a bare IPv6 address: the name part.
  for (const std::string& h : extra_hosts) {
    const size_t colons = std::count(h.begin(), h.end(), ':');
    hosts_.push_back(HostName(colons > 1 && h.front() != '[' ? "[" + h + "]" : h));
  }
  std::sort(hosts_.begin(), hosts_.end());
  hosts_.erase(std::unique(hosts_.begin(), hosts_.end()), hosts_.end());
  hosts_.erase(std::remove(hosts_.begin(), hosts_.end(), std::string()), hosts_.end());
}

bool AccessPolicy::HostAllowed(std::string_view host_header) const {
  const std::string name = HostName(host_header);
  return !name.empty() && std::find(hosts_.begin(), hosts_.end(), name) != hosts_.end();
}

bool AccessPolicy::OriginAllowed(std::string_view origin) const {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.substr(0, scheme.size()) == scheme) {
      const std::string_view rest = origin.substr(scheme.size());
      if (rest.find('/') != std::string_view::npos) return false;
      return HostAllowed(rest);
    }
  }
  return false;
}

AccessPolicy::Auth AccessPolicy::CheckAuthorization(std::string_view header) const {
  if (token_.empty()) return Auth::kReadOnly;
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() || header.substr(0, kBearer.size()) != kBearer) {
    return Auth::kMissing;
  }
  const std::string_view given = header.substr(kBearer.size());
  // Digests of equal length, compared in constant time: neither the
  // token's length nor its first differing byte shows in the timing.
  unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
  unsigned int na = 0, nb = 0;
  if (EVP_Digest(given.data(), given.size(), a, &na, EVP_sha256(), nullptr) != 1 ||
      EVP_Digest(token_.data(), token_.size(), b, &nb, EVP_sha256(), nullptr) != 1 || na != nb) {
    return Auth::kWrong;
  }
  return CRYPTO_memcmp(a, b, na) == 0 ? Auth::kOk : Auth::kWrong;
}

}  // namespace dropq::web
