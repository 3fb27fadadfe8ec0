#include "common/path_glob.h"

#include <fnmatch.h>

#include <string>
#include <vector>

namespace dropq {
namespace {

std::vector<std::string> Components(std::string_view s) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= s.size()) {
    const size_t slash = s.find('/', at);
    const size_t end = slash == std::string_view::npos ? s.size() : slash;
    out.emplace_back(s.substr(at, end - at));
    if (slash == std::string_view::npos) break;
    at = slash + 1;
  }
  return out;
}

// Pattern components [p, P) against path components [s, S). Backtracks
// only at "**"; `failed` remembers the (p, s) pairs already found not to
// match, so that many "**" cost P x S^2 fnmatch calls at worst, not S^P.
struct Matcher {
  const std::vector<std::string>& pat;
  const std::vector<std::string>& path;
  std::vector<bool> failed;  // (p * (S + 1) + s)

  bool Match(size_t p, size_t s) {
    const size_t key = p * (path.size() + 1) + s;
    if (failed[key]) return false;
    const bool ok = Step(p, s);
    if (!ok) failed[key] = true;
    return ok;
  }

  bool Step(size_t p, size_t s) {
    for (; p < pat.size(); ++p, ++s) {
      if (pat[p] == "**") {
        // A run of "**" is one: any number of directories.
        while (p + 1 < pat.size() && pat[p + 1] == "**") ++p;
        if (p + 1 == pat.size()) return s < path.size();  // "x/**": something below x/
        for (size_t k = s; k < path.size(); ++k) {
          if (Match(p + 1, k)) return true;
        }
        return false;
      }
      if (s >= path.size()) return false;
      if (::fnmatch(pat[p].c_str(), path[s].c_str(), 0) != 0) return false;
    }
    return s == path.size();
  }
};

}  // namespace

bool PathGlobMatch(std::string_view pattern, std::string_view relpath) {
  if (!pattern.empty() && pattern.front() == '/') pattern.remove_prefix(1);
  const std::vector<std::string> pat = Components(pattern);
  const std::vector<std::string> path = Components(relpath);
  Matcher m{pat, path, std::vector<bool>((pat.size() + 1) * (path.size() + 1))};
  return m.Match(0, 0);
}

}  // namespace dropq
