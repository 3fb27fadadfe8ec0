#include "common/placeholders.h"

#include <functional>

namespace dropq {

const std::string_view* FindPlaceholder(std::string_view key, const PlaceholderValues& v) {
  if (key == "path") return &v.path;
  if (key == "name") return &v.name;
  if (key == "stem") return &v.stem;
  if (key == "ext") return &v.ext;
  if (key == "dir") return &v.dir;
  if (key == "queue") return &v.queue;
  if (key == "job_id") return &v.job_id;
  if (key == "attempt") return &v.attempt;
  if (key == "relpath") return &v.relpath;
  if (key == "reldir") return &v.reldir;
  return nullptr;
}

std::string_view KnownPlaceholders() {
  return "{path} {name} {relpath} {reldir} {stem} {ext} {dir} {queue} {job_id} {attempt}";
}

namespace {

// Calls `on_key` with the name of every {placeholder} of `arg`, in order;
// stops at the first error (a brace that does not pair up, or one `on_key`
// returned).
Status WalkPlaceholders(std::string_view arg,
                        const std::function<Status(std::string_view key)>& on_key) {
  for (size_t i = 0; i < arg.size(); ++i) {
    if (arg[i] == '{') {
      if (i + 1 < arg.size() && arg[i + 1] == '{') {
        ++i;
        continue;
      }
      const size_t close = arg.find('}', i);
      if (close == std::string_view::npos) {
        return Error{Errc::kConfig, "unclosed '{' in \"" + std::string(arg) + "\""};
      }
      if (Status s = on_key(arg.substr(i + 1, close - i - 1)); !s) return s;
      i = close;
    } else if (arg[i] == '}') {
      if (i + 1 < arg.size() && arg[i + 1] == '}') {
        ++i;
        continue;
      }
      return Error{Errc::kConfig, "unmatched '}' in \"" + std::string(arg) + "\" (write }})"};
    }
  }
  return OkStatus();
}

}  // namespace

Status ValidatePlaceholders(std::string_view arg) {
  static const PlaceholderValues kNone{};
  return WalkPlaceholders(arg, [](std::string_view key) -> Status {
    if (FindPlaceholder(key, kNone) != nullptr) return OkStatus();
    return Error{Errc::kConfig, "unknown placeholder {" + std::string(key) +
                                    "} (known: " + std::string(KnownPlaceholders()) + ")"};
  });
}

Status ValidateServePlaceholders(std::string_view arg) {
  if (Status s = ValidatePlaceholders(arg); !s) return s;
  return WalkPlaceholders(arg, [](std::string_view key) -> Status {
    if (key == "queue" || key == "dir") return OkStatus();
    return Error{Errc::kConfig,
                 "{" + std::string(key) +
                     "} differs from job to job: a serve process gets each job's "
                     "values on fd 3 (only {queue} and {dir} are known at its start)"};
  });
}

std::string ExpandPlaceholders(std::string_view arg, const PlaceholderValues& v) {
  std::string out;
  out.reserve(arg.size() + 32);
  for (size_t i = 0; i < arg.size(); ++i) {
    const char c = arg[i];
    if ((c == '{' || c == '}') && i + 1 < arg.size() && arg[i + 1] == c) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c == '{') {
      const size_t close = arg.find('}', i);
      if (close != std::string_view::npos) {
        if (const std::string_view* val = FindPlaceholder(arg.substr(i + 1, close - i - 1), v)) {
          out.append(*val);
          i = close;
          continue;
        }
      }
    }
    out.push_back(c);
  }
  return out;
}

void SplitName(std::string_view name, std::string_view* stem, std::string_view* ext) {
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) {
    *stem = name;
    *ext = std::string_view();
    return;
  }
  *stem = name.substr(0, dot);
  *ext = name.substr(dot + 1);
}

void SplitRelPath(std::string_view relpath, std::string_view* reldir, std::string_view* name) {
  const size_t slash = relpath.rfind('/');
  if (slash == std::string_view::npos) {
    *reldir = std::string_view();
    *name = relpath;
  } else {
    *reldir = relpath.substr(0, slash);
    *name = relpath.substr(slash + 1);
  }
}

}  // namespace dropq
