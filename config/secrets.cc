#include "config/secrets.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/unique_fd.h"

namespace dropq {
namespace {

// A secret is a token or a password, not a document.
constexpr size_t kMaxSecretBytes = 64 * 1024;

Error Bad(const std::string& what) { return Error{Errc::kConfig, what}; }

std::mutex hidden_mu;
std::vector<std::string>* Hidden() {  // guarded by hidden_mu; never freed (read at exit)
  static auto* names = new std::vector<std::string>();
  return names;
}

// Reads the file at `path`. ENOENT comes back as an empty optional-like
// result the caller can tell apart: `*missing` is set.
Result<std::string> ReadSmallFile(const std::string& path, bool* missing) {
  *missing = false;
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) {
      *missing = true;
      return Bad(path + " does not exist");
    }
    return Bad("cannot read " + path + ": " + std::strerror(err));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Bad("cannot read " + path + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxSecretBytes) return Bad(path + " is larger than 64 KiB: not a secret");
  }
  if (!out.empty() && out.back() == '\n') {
    out.pop_back();
    if (!out.empty() && out.back() == '\r') out.pop_back();
  }
  if (out.empty()) return Bad(path + " is empty");
  return out;
}

}  // namespace

Result<std::string> ReadSecret(const std::string& source) {
  const size_t colon = source.find(':');
  const std::string kind = source.substr(0, colon);
  const std::string name = colon == std::string::npos ? "" : source.substr(colon + 1);
  const std::string shown = "${" + source + "}";
  bool missing = false;
  if (kind == "env") {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return Bad(shown + ": environment variable " + name + " is not set");
    if (*v == '\0') return Bad(shown + ": environment variable " + name + " is empty");
    return std::string(v);
  }
  if (kind == "file") {
    if (name.empty() || name.front() != '/') return Bad(shown + ": the path must be absolute");
    auto v = ReadSmallFile(name, &missing);
    if (!v) return Bad(shown + ": " + v.error().what);
    return v;
  }
  if (kind == "cred") {
    if (name.find('/') != std::string::npos || name == "." || name == "..") {
      return Bad(shown + ": a credential name holds no '/'");
    }
    std::vector<std::string> places;
    if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir != nullptr && *dir != '\0') {
      places.push_back(std::string(dir) + "/" + name);
    } else {
      places.push_back("/etc/credstore/" + name);
      places.push_back("/run/credstore/" + name);
    }
    std::string looked;
    for (const std::string& p : places) {
      auto v = ReadSmallFile(p, &missing);
      if (v) return v;
      if (!missing) return Bad(shown + ": " + v.error().what);
      looked += (looked.empty() ? "" : ", ") + p;
    }
    return Bad(shown + ": credential " + name + " not found (looked in " + looked + ")");
  }
  return Bad(shown + ": unknown secret source");
}

Status ResolveSecrets(TextTemplate* t, std::vector<std::string>* env_names) {
  std::vector<std::string> names;
  for (TextTemplate::Part& p : t->mutable_parts()) {
    if (p.kind != TextTemplate::Part::Kind::kSecret) continue;
    auto v = ReadSecret(p.source);
    if (!v) return v.error();
    p.text = std::move(*v);
    if (p.source.rfind("env:", 0) == 0) names.push_back(p.source.substr(4));
  }
  if (env_names != nullptr) env_names->insert(env_names->end(), names.begin(), names.end());
  return OkStatus();
}

void HideEnvFromHandlers(const std::vector<std::string>& names) {
  std::lock_guard lock(hidden_mu);
  std::vector<std::string>* hidden = Hidden();
  for (const std::string& n : names) {
    if (std::find(hidden->begin(), hidden->end(), n) == hidden->end()) hidden->push_back(n);
  }
}

bool IsHiddenEnv(std::string_view name) {
  std::lock_guard lock(hidden_mu);
  const std::vector<std::string>* hidden = Hidden();
  return std::find(hidden->begin(), hidden->end(), name) != hidden->end();
}

bool ProtectSecretsInMemory() { return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0; }

}  // namespace dropq
