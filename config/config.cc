// Loading works in two layers. yaml-cpp turns the text into a node tree (and
// throws on bad YAML: caught here, never let out). Then one Parser walks that
// tree in document order, so the first error in the file is the one reported.
//
// Every map is walked by Parser::Map() against a table of Fields, one per
// accepted key: it rejects unknown and duplicate keys, and adding a config key
// is adding one Field (and the struct member it fills). Checks that need more
// than one key (a move_to equal to the watched directory, a manifest without
// builtin: sha256) run after their map has been walked.
#include "config/config.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <sstream>
#include <string_view>
#include <utility>

#include "common/path_glob.h"
#include "common/placeholders.h"
#include "config/secrets.h"

namespace dropq {
namespace {

// 100 years: the longest duration accepted. Anything longer is a typo, and
// this bound keeps every duration representable in nanoseconds (int64).
constexpr int64_t kMaxDurationMs = 36500LL * 24 * 60 * 60 * 1000;

constexpr char kDurationForms[] =
    "want a whole number immediately followed by a unit: 250ms, 30s, 5m, 2h or 7d";

// True if `v` holds what reads as a secret reference: ${env:NAME} or
// ${cred:NAME} (NAME a variable or credential name) or ${file:/absolute}.
// A shell's "${file:-default}" is none.
bool HoldsSecretRef(std::string_view v) {
  for (size_t at = v.find("${"); at != std::string_view::npos; at = v.find("${", at + 2)) {
    const std::string_view rest = v.substr(at + 2);
    for (std::string_view kind : {"env:", "cred:", "file:"}) {
      if (rest.substr(0, kind.size()) != kind || rest.size() == kind.size()) continue;
      const char first = rest[kind.size()];
      if (kind == "file:"
              ? first == '/'
              : (std::isalpha(static_cast<unsigned char>(first)) != 0 || first == '_')) {
        return true;
      }
    }
  }
  return false;
}

// A YAML value being parsed, and how messages point at it.
struct At {
  YAML::Node node;
  std::string key;  // dotted, e.g. "queues[0].handler.timeout"; "" for the top level
  int line;         // 1-based: the line of the value's key, or of the list item
};

// One key a map accepts and what to do with its value.
struct Field {
  std::string_view name;
  std::function<Status(const At&)> parse;
};

// strerror(3) is not thread-safe; the GNU strerror_r returns the text.
std::string ErrnoText(int err) {
  char buf[128];
  return strerror_r(err, buf, sizeof(buf));
}

// [A-Za-z0-9_.-]+ : queue names and the instance name, both used in Redis keys.
bool IsName(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

// Keeps a message on one line, whatever the values quoted in it hold: callers
// print it as the single line of an exit-78 error. "\n" for a newline, "\xNN"
// for any other control byte.
std::string OneLine(std::string s) {
  if (std::none_of(s.begin(), s.end(),
                   [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return s;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b == '\n') {
      out += "\\n";
    } else if (b < 0x20 || b == 0x7f) {
      out.append("\\x").append(1, kHex[b >> 4]).append(1, kHex[b & 0xf]);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Parses all of `s` as a decimal integer; false if it is anything else.
bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty() || s.front() == '+') return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// What a node holds, for "expected X, got Y" messages; a long scalar is cut.
std::string Describe(const YAML::Node& n) {
  constexpr size_t kMaxShown = 60;
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      if (n.Scalar().size() > kMaxShown) return "\"" + n.Scalar().substr(0, kMaxShown) + "...\"";
      return "\"" + n.Scalar() + "\"";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "nothing";
  }
}

std::string Join(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

// A duration in the largest unit that shows it exactly: "90s", "10m", "250ms".
std::string ShowDuration(Millis d) {
  static constexpr std::pair<int64_t, const char*> kUnits[] = {{int64_t{24} * 60 * 60 * 1000, "d"},
                                                               {int64_t{60} * 60 * 1000, "h"},
                                                               {60 * 1000, "m"},
                                                               {1000, "s"}};
  const int64_t ms = d.count();
  for (const auto& [factor, unit] : kUnits) {
    if (ms != 0 && ms % factor == 0) return std::to_string(ms / factor) + unit;
  }
  return std::to_string(ms) + "ms";
}

std::string StripTrailingSlashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// True if `a` and `b` name the same directory, however spelt ("/x/.", a symlink).
bool SameDir(const std::string& a, const std::string& b) {
  if (StripTrailingSlashes(a) == StripTrailingSlashes(b)) return true;
  struct stat sa {};
  struct stat sb {};
  return stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// A glob without '/' matches the last component of `relpath` (the file's own
// name); one with '/' matches the whole relative path (common/path_glob.h).
bool AnyMatches(const std::vector<std::string>& globs, const std::string& relpath) {
  const size_t slash = relpath.rfind('/');
  const char* name = relpath.c_str() + (slash == std::string::npos ? 0 : slash + 1);
  return std::any_of(globs.begin(), globs.end(), [&](const std::string& g) {
    if (g.find('/') != std::string::npos) return PathGlobMatch(g, relpath);
    return fnmatch(g.c_str(), name, 0) == 0;
  });
}

class Parser {
 public:
  Parser(std::string path, LoadOptions opts) : path_(std::move(path)), opts_(opts) {}

  Result<Config> Top(const YAML::Node& root);

 private:
  Error Fail(const At& at, const std::string& message) const {
    std::string what = path_ + ":" + std::to_string(at.line) + ": ";
    if (!at.key.empty()) what += at.key + ": ";
    return Error{Errc::kConfig, OneLine(what + message)};
  }

  // Walks the map `at` in document order, handing each value to its Field.
  // Unknown keys, duplicate keys and non-string keys are errors. `seen`
  // (optional) receives the keys found.
  Status Map(const At& at, std::span<const Field> fields, std::set<std::string>* seen = nullptr);
  // Fails on the first of `names` missing from `seen`, pointing at the map.
  Status Require(const At& at, const std::set<std::string>& seen,
                 std::initializer_list<std::string_view> names) const;

  // A string that is not one of the few values that may hold a secret.
  Result<std::string> String(const At& at) const;
  // A string that may hold placeholders and secrets, as `syntax` says; its
  // secrets are read when `resolve` (config/secrets.h).
  Result<TextTemplate> Template(const At& at, TextTemplate::Syntax syntax, bool resolve);
  Result<int64_t> Integer(const At& at, int64_t lo, int64_t hi) const;
  Result<bool> Bool(const At& at) const;
  Result<Millis> Duration(const At& at, bool zero_ok) const;
  // A list of strings; `check` (optional) validates each item.
  Result<std::vector<std::string>> StringList(
      const At& at, const std::function<Status(const At&, const std::string&)>& check) const;
  // An absolute path to an existing directory, trailing slashes removed.
  Result<std::string> ExistingDir(const At& at) const;
  Status CheckProcessingDir(const At& queue, const QueueConfig& q) const;

  Status Redis(const At& at, Config* c);
  // A string that may hold secrets (${env:NAME}, ${file:/path}, ${cred:NAME}),
  // its secrets read now. The error never quotes the value.
  Result<TextTemplate> SecretTemplate(const At& at);
  // The same, expanded as it is into *out.
  Status Secret(const At& at, std::string* out);
  Status Metrics(const At& at, Config* c);
  Status Queues(const At& at, Config* c);
  Status Queue(const At& at, const std::vector<QueueConfig>& earlier, QueueConfig* q);
  Status Handler(const At& at, HandlerConfig* h);
  // `timeout` receives http.timeout (the whole request), when given.
  Status Http(const At& at, HttpConfig* h, Millis* timeout);
  // A list of HTTP statuses 300..599, none twice.
  Result<std::vector<int>> Statuses(const At& at) const;
  // A map of names to templates (headers, form fields), in the order written.
  Result<std::vector<std::pair<std::string, TextTemplate>>> NamedTemplates(const At& at,
                                                                           bool header);
  Status Retry(const At& at, RetryConfig* r);
  // A list of exit codes 1..255, none twice; `lines` receives each item's line.
  Result<std::vector<int>> ExitCodes(const At& at, std::vector<int>* lines) const;
  Result<Disposition> Dispo(const At& at, bool delete_ok);
  // Checks a disposition's move_to against the watched directory.
  Status CheckMoveTo(const At& queue, std::string_view which, const QueueConfig& q) const;

  std::string path_;
  const LoadOptions opts_;
  std::map<std::string, int> lines_;     // dotted key -> line, for checks made after a map
  std::vector<std::string> secret_env_;  // environment variables secrets were read from
  bool has_secrets_ = false;
};

Status Parser::Map(const At& at, std::span<const Field> fields, std::set<std::string>* seen) {
  if (!at.node.IsMap()) return Fail(at, "expected a map, got " + Describe(at.node));
  std::set<std::string> local;
  if (seen == nullptr) seen = &local;
  for (auto it = at.node.begin(); it != at.node.end(); ++it) {
    const YAML::Node key = it->first;
    At child{it->second, at.key, key.Mark().line + 1};
    if (!key.IsScalar()) return Fail(child, "a key must be a plain name, got " + Describe(key));
    const std::string& name = key.Scalar();
    child.key = Join(at.key, name);
    const auto f = std::find_if(fields.begin(), fields.end(),
                                [&](const Field& field) { return field.name == name; });
    if (f == fields.end()) {
      std::string known;
      for (const Field& field : fields)
        known += (known.empty() ? "" : ", ") + std::string(field.name);
      return Fail(child, "unknown key (known here: " + known + ")");
    }
    if (!seen->insert(name).second) return Fail(child, "duplicate key");
    lines_[child.key] = child.line;
    if (Status s = f->parse(child); !s) return s;
  }
  return OkStatus();
}

Status Parser::Require(const At& at, const std::set<std::string>& seen,
                       std::initializer_list<std::string_view> names) const {
  for (std::string_view name : names) {
    if (seen.count(std::string(name)) == 0) {
      return Fail(At{at.node, Join(at.key, name), at.line}, "required key missing");
    }
  }
  return OkStatus();
}

Result<std::string> Parser::String(const At& at) const {
  if (!at.node.IsScalar()) return Fail(at, "expected a string, got " + Describe(at.node));
  const std::string& v = at.node.Scalar();
  if (HoldsSecretRef(v)) {
    return Fail(at,
                "secrets (${env:NAME}, ${file:/path}, ${cred:NAME}) are read only in redis.url and "
                "in an http handler's url, headers and fields");
  }
  return v;
}

Result<TextTemplate> Parser::Template(const At& at, TextTemplate::Syntax syntax, bool resolve) {
  if (!at.node.IsScalar()) return Fail(at, "expected a string, got " + Describe(at.node));
  auto t = TextTemplate::Parse(at.node.Scalar(), syntax);
  if (!t) return Fail(at, t.error().what);
  if (!t->has_secret()) return t;
  has_secrets_ = true;
  if (resolve) {
    if (Status s = ResolveSecrets(&*t, &secret_env_); !s) return Fail(at, s.error().what);
  }
  return t;
}

Result<int64_t> Parser::Integer(const At& at, int64_t lo, int64_t hi) const {
  const std::string range =
      hi == INT64_MAX ? ">= " + std::to_string(lo) : std::to_string(lo) + ".." + std::to_string(hi);
  int64_t v = 0;
  if (!at.node.IsScalar() || !ParseInt64(at.node.Scalar(), &v)) {
    return Fail(at, "expected an integer " + range + ", got " + Describe(at.node));
  }
  if (v < lo || v > hi) return Fail(at, "must be " + range + ", got " + std::to_string(v));
  return v;
}

Result<bool> Parser::Bool(const At& at) const {
  if (at.node.IsScalar()) {
    const std::string& v = at.node.Scalar();
    if (v == "true") return true;
    if (v == "false") return false;
  }
  return Fail(at, "expected true or false, got " + Describe(at.node));
}

Result<Millis> Parser::Duration(const At& at, bool zero_ok) const {
  auto s = String(at);
  if (!s) return s.error();
  auto d = ParseDuration(*s);
  if (!d) return Fail(at, d.error().what);
  if (!zero_ok && d->count() == 0) return Fail(at, "must be greater than 0");
  return *d;
}

Result<std::vector<std::string>> Parser::StringList(
    const At& at, const std::function<Status(const At&, const std::string&)>& check) const {
  if (!at.node.IsSequence()) return Fail(at, "expected a list, got " + Describe(at.node));
  std::vector<std::string> out;
  for (size_t i = 0; i < at.node.size(); ++i) {
    const YAML::Node item = at.node[i];
    const At item_at{item, at.key + "[" + std::to_string(i) + "]", item.Mark().line + 1};
    auto s = String(item_at);
    if (!s) return s.error();
    if (check) {
      if (Status st = check(item_at, *s); !st) return st.error();
    }
    out.push_back(std::move(*s));
  }
  return out;
}

Result<std::string> Parser::ExistingDir(const At& at) const {
  auto s = String(at);
  if (!s) return s.error();
  if (s->empty() || s->front() != '/') return Fail(at, "\"" + *s + "\" is not an absolute path");
  if (s->find('\0') != std::string::npos) return Fail(at, "the path holds a NUL byte");
  std::string dir = StripTrailingSlashes(std::move(*s));
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return Fail(at, "directory " + dir + " does not exist");
    return Fail(at, "cannot use " + dir + ": " + ErrnoText(err));
  }
  if (!S_ISDIR(st.st_mode)) return Fail(at, dir + " is not a directory");
  return dir;
}

Result<Config> Parser::Top(const YAML::Node& root) {
  Config c;
  c.path = path_;
  c.redis_url_text = "redis://127.0.0.1:6379/0";
  const At at{root, "", root.Mark().line + 1};
  if (!root.IsMap()) {
    return Fail(at, "expected a map of settings at the top level, got " + Describe(root));
  }
  const Field fields[] = {
      {"redis", [&](const At& v) { return Redis(v, &c); }},
      {"instance",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (!IsName(*s)) {
           return Fail(v, "\"" + *s + "\" is not a valid name (letters, digits, '_', '.', '-')");
         }
         c.instance = *s;
         return OkStatus();
       }},
      {"log_level",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (!ParseLogLevel(*s, &c.log_level)) {
           return Fail(v, "\"" + *s + "\" is not a level (debug, info, warn or error)");
         }
         return OkStatus();
       }},
      {"drain_timeout",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/true);
         if (!d) return d.error();
         c.drain_timeout = *d;
         return OkStatus();
       }},
      {"heartbeat_ttl",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/true);
         if (!d) return d.error();
         if (*d < Millis(1000)) return Fail(v, "must be at least 1s, got " + v.node.Scalar());
         c.heartbeat_ttl = *d;
         return OkStatus();
       }},
      {"queues", [&](const At& v) { return Queues(v, &c); }},
      {"metrics", [&](const At& v) { return Metrics(v, &c); }},
  };
  std::set<std::string> seen;
  if (Status s = Map(at, fields, &seen); !s) return s.error();
  if (Status s = Require(at, seen, {"queues"}); !s) return s.error();
  c.secret_env = std::move(secret_env_);
  c.has_secrets = has_secrets_;
  // A renewal that waits longer than a third of the TTL could make the
  // heartbeat expire between two renewals. The default fits any TTL.
  const std::string wait_key = "redis.replica_wait";
  if (lines_.count(wait_key) == 0) {
    c.redis_replica_wait = std::min(c.redis_replica_wait, c.heartbeat_ttl / 4);
  }
  if (c.redis_replica_wait.count() > 0 && c.redis_replica_wait * 3 >= c.heartbeat_ttl) {
    const std::string& k = wait_key;
    return Fail(At{root, k, lines_[k]}, "must be below heartbeat_ttl / 3 (" +
                                            std::to_string(c.heartbeat_ttl.count()) + " ms / 3)");
  }
  if (seen.count("instance") == 0) {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0) {
      return Fail(At{root, "instance", at.line},
                  std::string("not set, and gethostname failed: ") + ErrnoText(errno));
    }
    if (!IsName(host)) {
      return Fail(At{root, "instance", at.line},
                  "not set, and the hostname \"" + std::string(host) +
                      "\" is not a valid name (letters, digits, '_', '.', '-'): set instance");
    }
    c.instance = host;
  }
  return c;
}

Result<TextTemplate> Parser::SecretTemplate(const At& at) {
  if (!at.node.IsScalar()) return Fail(at, "expected a string, got " + Describe(at.node));
  // The message must not quote the value: it may hold a password.
  if (!TextTemplate::Parse(at.node.Scalar(), {.placeholders = false, .secrets = true})) {
    return Fail(at,
                "holds a \"${\" that is no secret (${env:NAME}, ${file:/path}, "
                "${cred:NAME}); write $${ for a literal ${");
  }
  return Template(at, {.placeholders = false, .secrets = true}, /*resolve=*/true);
}

Status Parser::Secret(const At& at, std::string* out) {
  auto t = SecretTemplate(at);
  if (!t) return t.error();
  *out = t->Expand({}, Verbatim, Verbatim);
  return OkStatus();
}

Status Parser::Redis(const At& at, Config* c) {
  // With sentinels: the data nodes' db and credentials, set once all keys are read.
  int sentinel_db = 0;
  std::string sentinel_data_user, sentinel_data_password;
  const Field fields[] = {
      {"url",
       [&](const At& v) -> Status {
         auto t = SecretTemplate(v);
         if (!t) return t.error();
         // A secret fills a user or a password: encoded so that it is that part whole.
         auto url = ParseRedisUrl(t->Expand({}, Verbatim, PercentEncodeAll));
         if (!url) {
           const std::string why = url.error().what;
           return Fail(v, t->has_secret() ? "not a valid URL once its secrets are read" : why);
         }
         // Sentinel's keys given before url stay: url names the server only.
         url->sentinels = c->redis.sentinels;
         url->master = c->redis.master;
         url->sentinel_user = c->redis.sentinel_user;
         url->sentinel_password = c->redis.sentinel_password;
         url->namespace_name = c->redis.namespace_name;
         c->redis = *url;
         c->redis_url_text = RedactRedisUrl(t->Redacted());
         return OkStatus();
       }},
      {"sentinels",
       [&](const At& v) -> Status {
         std::vector<HostPort> sentinels;
         auto l = StringList(v, [&](const At& e, const std::string& text) -> Status {
           auto hp = ParseHostPort(text);
           if (!hp) return Fail(e, hp.error().what);
           for (const HostPort& other : sentinels) {
             if (other == *hp) return Fail(e, "\"" + text + "\" is listed twice");
           }
           sentinels.push_back(*hp);
           return OkStatus();
         });
         if (!l) return l.error();
         if (sentinels.empty()) return Fail(v, "must list at least one sentinel");
         c->redis.sentinels = std::move(sentinels);
         return OkStatus();
       }},
      {"master",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (s->empty() || s->find_first_of(" \t\r\n") != std::string::npos) {
           return Fail(v, "must be the name the sentinels monitor (no spaces)");
         }
         c->redis.master = *s;
         return OkStatus();
       }},
      {"db",
       [&](const At& v) -> Status {
         auto n = Integer(v, 0, 1 << 20);
         if (!n) return n.error();
         sentinel_db = static_cast<int>(*n);
         return OkStatus();
       }},
      {"user", [&](const At& v) { return Secret(v, &sentinel_data_user); }},
      {"password", [&](const At& v) { return Secret(v, &sentinel_data_password); }},
      {"sentinel_user", [&](const At& v) { return Secret(v, &c->redis.sentinel_user); }},
      {"sentinel_password", [&](const At& v) { return Secret(v, &c->redis.sentinel_password); }},
      {"namespace",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (!IsName(*s)) {
           return Fail(v, "\"" + *s + "\" is not a valid name (letters, digits, '_', '.', '-')");
         }
         c->redis.namespace_name = *s;
         return OkStatus();
       }},
      {"replica_wait",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/true);
         if (!d) return d.error();
         if (*d > Millis(60 * 1000)) return Fail(v, "must be at most 60s, got " + v.node.Scalar());
         c->redis_replica_wait = *d;
         return OkStatus();
       }},
      {"prefix",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (s->empty()) return Fail(v, "must not be empty");
         for (char ch : *s) {
           const auto u = static_cast<unsigned char>(ch);
           if (u <= 0x20 || u == 0x7f || ch == '{' || ch == '}') {
             return Fail(v, "\"" + *s + "\" must hold no whitespace, control byte, '{' or '}'");
           }
         }
         c->prefix = *s;
         return OkStatus();
       }},
  };
  std::set<std::string> seen;
  if (Status s = Map(at, fields, &seen); !s) return s;
  // url names one server; sentinels name the servers that know which one is primary.
  const auto line_of = [&](const char* key) {
    return At{at.node, Join(at.key, key), lines_[Join(at.key, key)]};
  };
  if (seen.count("url") && seen.count("sentinels")) {
    return Fail(line_of("sentinels"), "url and sentinels exclude each other: give one");
  }
  // With Sentinel a failover is expected: claims and renewals wait for a
  // replica unless told otherwise. A single server has none to wait for.
  if (!seen.count("replica_wait")) {
    c->redis_replica_wait = seen.count("sentinels") ? Millis(1000) : Millis(0);
  }
  if (seen.count("sentinels")) {
    if (!seen.count("master")) {
      return Fail(line_of("sentinels"),
                  "needs master: the name the sentinels monitor the primary by");
    }
    c->redis.db = sentinel_db;
    c->redis.user = sentinel_data_user;
    c->redis.password = sentinel_data_password;
    c->redis_url_text = c->redis.Display();
  } else {
    for (const char* key :
         {"master", "db", "user", "password", "sentinel_user", "sentinel_password"}) {
      if (seen.count(key)) {
        return Fail(line_of(key), seen.count("url") ? "goes with sentinels; with url, write "
                                                      "redis://user:password@host:port/db"
                                                    : "goes with sentinels");
      }
    }
  }
  return OkStatus();
}

Status Parser::Metrics(const At& at, Config* c) {
  const Field fields[] = {
      {"listen",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         // host:port, or [v6 address]:port, as prometheus-cpp's server takes it.
         const size_t colon = s->rfind(':');
         const std::string host = colon == std::string::npos ? "" : s->substr(0, colon);
         const std::string port = colon == std::string::npos ? "" : s->substr(colon + 1);
         long n = 0;
         const bool digits =
             !port.empty() && port.size() <= 5 &&
             std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
         if (digits) n = std::stol(port);
         if (host.empty() || !digits || n < 1 || n > 65535) {
           return Fail(v, "\"" + *s + "\" is not host:port (e.g. 127.0.0.1:9464)");
         }
         c->metrics_listen = *s;
         return OkStatus();
       }},
  };
  std::set<std::string> seen;
  if (Status s = Map(at, fields, &seen); !s) return s;
  return Require(at, seen, {"listen"});
}

Status Parser::Queues(const At& at, Config* c) {
  if (!at.node.IsSequence()) {
    return Fail(at, "expected a list of queues (- name: ...), got " + Describe(at.node));
  }
  if (at.node.size() == 0) return Fail(at, "must list at least one queue");
  for (size_t i = 0; i < at.node.size(); ++i) {
    const YAML::Node item = at.node[i];
    const At item_at{item, at.key + "[" + std::to_string(i) + "]", item.Mark().line + 1};
    QueueConfig q;
    if (Status s = Queue(item_at, c->queues, &q); !s) return s;
    c->queues.push_back(std::move(q));
  }
  return OkStatus();
}

Status Parser::Queue(const At& at, const std::vector<QueueConfig>& earlier, QueueConfig* q) {
  bool processing_off = false;  // processing_dir: off
  const auto glob_ok = [&](const At& v, const std::string& g) -> Status {
    std::string why;
    if (!ValidGlob(g, &why)) return Fail(v, "bad glob \"" + g + "\": " + why);
    return OkStatus();
  };
  const Field fields[] = {
      {"name",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (!IsName(*s)) {
           return Fail(v, "\"" + *s + "\" is not a valid name (letters, digits, '_', '.', '-')");
         }
         for (size_t k = 0; k < earlier.size(); ++k) {
           if (earlier[k].name == *s) {
             return Fail(v, "duplicate queue name \"" + *s + "\" (queues[" + std::to_string(k) +
                                "] has it too)");
           }
         }
         q->name = *s;
         return OkStatus();
       }},
      {"role",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (*s == "both") {
           q->role = Role::kBoth;
         } else if (*s == "consume") {
           q->role = Role::kConsume;
         } else if (*s == "produce") {
           q->role = Role::kProduce;
         } else {
           return Fail(v, "unknown role \"" + *s + "\" (both, consume or produce)");
         }
         return OkStatus();
       }},
      {"watch",
       [&](const At& v) -> Status {
         auto d = ExistingDir(v);
         if (!d) return d.error();
         q->watch = *d;
         return OkStatus();
       }},
      {"include",
       [&](const At& v) -> Status {
         auto l = StringList(v, glob_ok);
         if (!l) return l.error();
         if (l->empty()) return Fail(v, "must list at least one glob (\"*\" takes every file)");
         q->include = std::move(*l);
         return OkStatus();
       }},
      {"exclude",
       [&](const At& v) -> Status {
         auto l = StringList(v, glob_ok);
         if (!l) return l.error();
         q->exclude = std::move(*l);
         return OkStatus();
       }},
      {"recursive",
       [&](const At& v) -> Status {
         auto b = Bool(v);
         if (!b) return b.error();
         q->recursive = *b;
         return OkStatus();
       }},
      {"max_depth",
       [&](const At& v) -> Status {
         auto n = Integer(v, 1, 64);
         if (!n) return n.error();
         q->max_depth = static_cast<int>(*n);
         return OkStatus();
       }},
      {"exclude_dirs",
       [&](const At& v) -> Status {
         auto l = StringList(v, [&](const At& e, const std::string& g) -> Status {
           if (g.find('/') != std::string::npos) {
             return Fail(
                 e, "bad glob \"" + g + "\": it matches a directory's name, which never holds '/'");
           }
           return glob_ok(e, g);
         });
         if (!l) return l.error();
         q->exclude_dirs = std::move(*l);
         return OkStatus();
       }},
      {"poll_interval",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/false);
         if (!d) return d.error();
         if (*d < Millis(1000)) return Fail(v, "must be at least 1s, got " + v.node.Scalar());
         q->poll_interval = *d;
         return OkStatus();
       }},
      {"prune_empty_dirs",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/true);
         if (!d) return d.error();
         q->prune_empty_dirs = *d;
         return OkStatus();
       }},
      {"settle",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/true);
         if (!d) return d.error();
         q->settle = *d;
         return OkStatus();
       }},
      {"workers",
       [&](const At& v) -> Status {
         auto n = Integer(v, 1, 1024);
         if (!n) return n.error();
         q->workers = static_cast<int>(*n);
         return OkStatus();
       }},
      {"capacity",
       [&](const At& v) -> Status {
         auto n = Integer(v, 1, 1000000);
         if (!n) return n.error();
         q->capacity = static_cast<int>(*n);
         return OkStatus();
       }},
      {"handler", [&](const At& v) { return Handler(v, &q->handler); }},
      {"on_success",
       [&](const At& v) -> Status {
         auto d = Dispo(v, /*delete_ok=*/true);
         if (!d) return d.error();
         q->on_success = std::move(*d);
         return OkStatus();
       }},
      {"on_failure",
       [&](const At& v) -> Status {
         auto d = Dispo(v, /*delete_ok=*/false);
         if (!d) return d.error();
         q->on_failure = std::move(*d);
         return OkStatus();
       }},
      {"rate_limit",
       [&](const At& v) -> Status {
         const Field limit[] = {
             {"max",
              [&](const At& m) -> Status {
                auto n = Integer(m, 1, 1000000);
                if (!n) return n.error();
                q->rate_max = static_cast<int>(*n);
                return OkStatus();
              }},
             {"per",
              [&](const At& m) -> Status {
                auto d = Duration(m, /*zero_ok=*/false);
                if (!d) return d.error();
                if (*d > Millis(24LL * 3600 * 1000)) return Fail(m, "must be at most 1d");
                q->rate_per = *d;
                return OkStatus();
              }},
         };
         std::set<std::string> keys;
         if (Status s = Map(v, limit, &keys); !s) return s;
         return Require(v, keys, {"max", "per"});
       }},
      {"max_active",
       [&](const At& v) -> Status {
         auto n = Integer(v, 1, 1000000);
         if (!n) return n.error();
         q->max_active = static_cast<int>(*n);
         return OkStatus();
       }},
      {"keep_done",
       [&](const At& v) -> Status {
         auto n = Integer(v, 0, INT64_MAX);
         if (!n) return n.error();
         q->keep_done = *n;
         return OkStatus();
       }},
      {"keep_failed",
       [&](const At& v) -> Status {
         auto n = Integer(v, 0, INT64_MAX);
         if (!n) return n.error();
         q->keep_failed = *n;
         return OkStatus();
       }},
      {"retry", [&](const At& v) { return Retry(v, &q->retry); }},
      {"rescan_interval",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/true);
         if (!d) return d.error();
         if (d->count() != 0 && *d < Millis(1000)) {
           return Fail(v, "must be 0s (off) or at least 1s, got " + v.node.Scalar());
         }
         q->rescan_interval = *d;
         return OkStatus();
       }},
      {"processing_dir",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (*s == "off") {
           processing_off = true;
           q->processing_auto = false;
           return OkStatus();
         }
         if (*s == "auto") return OkStatus();
         if (s->empty() || s->front() != '/') {
           return Fail(v, "\"" + *s + "\" is not an absolute path (or auto, or off)");
         }
         q->processing_auto = false;
         if (s->find('\0') != std::string::npos) return Fail(v, "the path holds a NUL byte");
         q->processing_dir = StripTrailingSlashes(std::move(*s));
         return OkStatus();
       }},
  };
  q->include = {"*"};
  std::set<std::string> seen;
  if (Status s = Map(at, fields, &seen); !s) return s;
  if (Status s = Require(at, seen, {"name", "watch"}); !s) return s;
  // A queue that only produces runs no handler, so it needs none.
  if (q->runs_handlers()) {
    if (Status s = Require(at, seen, {"handler"}); !s) return s;
  }
  if (seen.count("capacity") == 0) {
    // A builtin takes microseconds a file, against the milliseconds of the
    // Redis round trips around it: it needs many jobs in memory to keep its
    // workers busy. A program takes milliseconds or more: a few each do.
    // A request waits on the network like a program: a few each too.
    const bool slow = q->handler.kind == HandlerConfig::Kind::kExec ||
                      q->handler.kind == HandlerConfig::Kind::kServe ||
                      q->handler.kind == HandlerConfig::Kind::kHttp;
    const int per_worker = slow ? 4 : 64;
    q->capacity = std::min(1000000, per_worker * q->workers);
  }
  if (!q->recursive) {
    for (const char* key : {"max_depth", "exclude_dirs", "prune_empty_dirs"}) {
      if (seen.count(key) == 0) continue;
      const std::string k = Join(at.key, key);
      return Fail(At{at.node, k, lines_[k]}, "has no effect without recursive: true");
    }
  } else if (processing_off && q->runs_handlers()) {
    // In a tree an uploader can replace a directory on a file's path by a
    // symlink between any two steps. An exec handler opens {path} by name,
    // and a move or delete in place renames by path: the processing area is
    // where no uploader can reach. A builtin that keeps the file reads it
    // through a descriptor opened beneath the tree, which needs no area.
    const std::string k = Join(at.key, "processing_dir");
    const bool keeps = q->on_success.kind == Disposition::Kind::kKeep &&
                       q->on_failure.kind == Disposition::Kind::kKeep;
    if (q->handler.kind == HandlerConfig::Kind::kExec ||
        q->handler.kind == HandlerConfig::Kind::kServe) {
      return Fail(
          At{at.node, k, lines_[k]},
          "off cannot be used with recursive: true and an exec or serve handler: the handler "
          "opens {path} by name, and an uploader could replace a directory on that path "
          "by a symlink; the processing area is what makes {path} safe");
    }
    if (!keeps) {
      return Fail(At{at.node, k, lines_[k]},
                  "off cannot be used with recursive: true and a move_to or delete disposition: "
                  "the file would be moved by a path on which an uploader could replace a "
                  "directory by a symlink; the processing area is what makes it safe");
    }
  }
  if (Status s = CheckMoveTo(at, "on_success", *q); !s) return s;
  if (Status s = CheckMoveTo(at, "on_failure", *q); !s) return s;
  if (!processing_off && q->processing_dir.empty())
    q->processing_dir = q->watch + "/.dropq-processing";
  if (Status s = CheckProcessingDir(at, *q); !s) return s;

  // A manifest the queue itself would pick up feeds itself forever.
  const std::string& manifest = q->handler.manifest;
  if (!manifest.empty()) {
    const size_t slash = manifest.rfind('/');
    const std::string parent = slash == 0 ? "/" : manifest.substr(0, slash);
    if (SameDir(parent, q->watch) && NameSelected(*q, manifest.substr(slash + 1))) {
      const std::string key = at.key + ".handler.manifest";
      return Fail(At{at.node, key, lines_[key]},
                  "the manifest is in the watched directory, where the queue would take it as a "
                  "job: put it elsewhere or give it a name the queue ignores (e.g. a dotfile)");
    }
  }
  return OkStatus();
}

// The processing directory is entered by rename(2), so it must be on the
// watched directory's filesystem. It is created at start-up if missing; its
// parent must exist now.
Status Parser::CheckProcessingDir(const At& queue, const QueueConfig& q) const {
  if (q.processing_dir.empty()) return OkStatus();
  const std::string key = Join(queue.key, "processing_dir");
  const auto line = lines_.find(key);
  const At at{queue.node, key, line == lines_.end() ? queue.line : line->second};
  if (SameDir(q.processing_dir, q.watch)) {
    return Fail(at, q.processing_dir + " is the watched directory");
  }
  struct stat watch {};
  struct stat dir {};
  std::string probe = q.processing_dir;
  if (stat(probe.c_str(), &dir) != 0) {
    const size_t slash = probe.rfind('/');
    probe = slash == 0 ? "/" : probe.substr(0, slash);
    if (stat(probe.c_str(), &dir) != 0 || !S_ISDIR(dir.st_mode)) {
      return Fail(at, "the parent directory " + probe + " does not exist");
    }
  } else if (!S_ISDIR(dir.st_mode)) {
    return Fail(at, q.processing_dir + " is not a directory");
  }
  if (stat(q.watch.c_str(), &watch) == 0 && watch.st_dev != dir.st_dev) {
    return Fail(at, q.processing_dir + " is on another filesystem than " + q.watch +
                        " (files enter it by rename)");
  }
  return OkStatus();
}

Status Parser::CheckMoveTo(const At& queue, std::string_view which, const QueueConfig& q) const {
  const Disposition& d = which == "on_success" ? q.on_success : q.on_failure;
  if (d.kind != Disposition::Kind::kMoveTo || !SameDir(d.dir, q.watch)) return OkStatus();
  const std::string key = Join(queue.key, which) + ".move_to";
  const auto line = lines_.find(key);
  return Fail(At{queue.node, key, line == lines_.end() ? queue.line : line->second},
              d.dir + " is the watched directory: moving a file there would take it again");
}

Status Parser::Handler(const At& at, HandlerConfig* h) {
  std::string kind_key;  // "exec" or "builtin", whichever came first
  std::string builtin;
  const auto claim = [&](const At& v, std::string_view key) -> Status {
    if (!kind_key.empty()) {
      return Fail(v,
                  "a handler has exactly one of exec, serve, builtin or http, and this one "
                  "has " +
                      kind_key + " too");
    }
    kind_key = key;
    return OkStatus();
  };
  // exec and serve: the program and its arguments, each checked by `valid`.
  const auto program = [&](const At& v, std::string_view key, HandlerConfig::Kind kind,
                           Status (*valid)(std::string_view)) -> Status {
    if (Status s = claim(v, key); !s) return s;
    auto l = StringList(v, [&](const At& item, const std::string& arg) -> Status {
      if (Status s = valid(arg); !s) return Fail(item, s.error().what);
      return OkStatus();
    });
    if (!l) return l.error();
    if (l->empty()) return Fail(v, "must list the program and its arguments");
    if (l->front().empty()) {
      return Fail(At{v.node, v.key + "[0]", v.node[0].Mark().line + 1},
                  "the program must not be empty");
    }
    h->kind = kind;
    h->argv = std::move(*l);
    return OkStatus();
  };
  const Field fields[] = {
      {"exec",
       [&](const At& v) {
         return program(v, "exec", HandlerConfig::Kind::kExec, &ValidatePlaceholders);
       }},
      {"serve",
       [&](const At& v) {
         return program(v, "serve", HandlerConfig::Kind::kServe, &ValidateServePlaceholders);
       }},
      {"max_jobs",
       [&](const At& v) -> Status {
         auto n = Integer(v, 0, INT64_MAX);
         if (!n) return n.error();
         h->max_jobs = *n;
         return OkStatus();
       }},
      {"max_rss",
       [&](const At& v) -> Status {
         auto str = String(v);
         if (!str) return str.error();
         auto n = ParseByteSize(*str);
         if (!n) return Fail(v, n.error().what);
         if (*n != 0 && *n < (int64_t{1} << 20)) return Fail(v, "must be 0 (off) or at least 1M");
         h->max_rss = *n;
         return OkStatus();
       }},
      {"start_timeout",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/false);
         if (!d) return d.error();
         h->start_timeout = *d;
         return OkStatus();
       }},
      {"builtin",
       [&](const At& v) -> Status {
         if (Status s = claim(v, "builtin"); !s) return s;
         auto s = String(v);
         if (!s) return s.error();
         if (*s == "sha256") {
           h->kind = HandlerConfig::Kind::kSha256;
         } else if (*s == "noop") {
           h->kind = HandlerConfig::Kind::kNoop;
         } else {
           return Fail(v, "unknown builtin \"" + *s + "\" (sha256 or noop)");
         }
         builtin = *s;
         return OkStatus();
       }},
      {"http",
       [&](const At& v) -> Status {
         if (Status s = claim(v, "http"); !s) return s;
         h->kind = HandlerConfig::Kind::kHttp;
         return Http(v, &h->http, &h->timeout);
       }},
      {"manifest",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         const std::string& m = *s;
         if (m.empty() || m.front() != '/') {
           return Fail(v, "\"" + m + "\" is not an absolute path");
         }
         if (m.back() == '/') return Fail(v, "\"" + m + "\" names a directory, not a file");
         if (m.find('\0') != std::string::npos) return Fail(v, "the path holds a NUL byte");
         const size_t slash = m.rfind('/');
         const std::string parent = slash == 0 ? "/" : m.substr(0, slash);
         struct stat st {};
         if (stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
           return Fail(v, "directory " + parent + " does not exist");
         }
         if (stat(m.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
           return Fail(v, m + " is a directory, not a file");
         }
         h->manifest = m;
         return OkStatus();
       }},
      {"timeout",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/false);
         if (!d) return d.error();
         h->timeout = *d;
         return OkStatus();
       }},
  };
  std::set<std::string> seen;
  if (Status s = Map(at, fields, &seen); !s) return s;
  if (kind_key.empty()) {
    return Fail(at,
                "required key missing: exec: [program, args...], serve: [program, args...], "
                "builtin: sha256|noop or http: {...}");
  }
  if (kind_key != "serve") {
    for (const char* key : {"max_jobs", "max_rss", "start_timeout"}) {
      if (seen.count(key) == 0) continue;
      const std::string k = at.key + "." + key;
      return Fail(At{at.node, k, lines_[k]}, "is only for serve: handlers");
    }
  }
  if (kind_key == "http" && seen.count("timeout") != 0) {
    const std::string key = at.key + ".timeout";
    return Fail(At{at.node, key, lines_[key]}, "an http handler's timeout goes in http:");
  }
  if (seen.count("manifest") != 0 && builtin != "sha256") {
    const std::string key = at.key + ".manifest";
    return Fail(At{at.node, key, lines_[key]}, "manifest is only for builtin: sha256");
  }
  return OkStatus();
}

// The host part of an http(s) URL's literal start: "https://a.b:8443/x" ->
// "a.b". False if the text holds no complete "scheme://authority" followed
// by '/', '?', '#' or its end.
bool UrlHost(std::string_view text, bool whole, std::string* scheme, std::string* host) {
  const size_t sep = text.find("://");
  if (sep == std::string_view::npos) return false;
  *scheme = std::string(text.substr(0, sep));
  const size_t start = sep + 3;
  size_t end = text.find_first_of("/?#", start);
  if (end == std::string_view::npos) {
    if (!whole) return false;
    end = text.size();
  }
  std::string_view auth = text.substr(start, end - start);
  if (auth.find('@') != std::string_view::npos) return false;  // no user:password@ in the URL
  if (!auth.empty() && auth.front() == '[') {
    const size_t close = auth.find(']');
    if (close == std::string_view::npos) return false;
    *host = std::string(auth.substr(1, close - 1));
  } else {
    *host = std::string(auth.substr(0, auth.find(':')));
  }
  return !host->empty();
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  return inet_pton(AF_INET, host.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

// A header name: an RFC 9110 token.
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (std::isalnum(u) != 0) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(ch) == std::string_view::npos) return false;
  }
  return true;
}

bool HasLineBreak(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

Result<std::vector<std::pair<std::string, TextTemplate>>> Parser::NamedTemplates(const At& at,
                                                                                 bool header) {
  if (!at.node.IsMap())
    return Fail(at, "expected a map of names to values, got " + Describe(at.node));
  std::vector<std::pair<std::string, TextTemplate>> out;
  for (auto it = at.node.begin(); it != at.node.end(); ++it) {
    const YAML::Node key = it->first;
    At child{it->second, at.key, key.Mark().line + 1};
    if (!key.IsScalar()) return Fail(child, "a name must be a plain string, got " + Describe(key));
    const std::string& name = key.Scalar();
    child.key = at.key + "." + name;
    if (header) {
      if (!IsToken(name)) return Fail(child, "\"" + name + "\" is not a header name");
      std::string lower;
      for (const char ch : name) lower.push_back(static_cast<char>(std::tolower(ch)));
      if (lower == "host" || lower == "content-length" || lower == "transfer-encoding" ||
          lower == "expect" || lower == "connection") {
        return Fail(child, name + " is set by dropq, not by the config");
      }
      if (lower == "content-type") {
        return Fail(child, "set by dropq from content_type (body: file), or by the body");
      }
    } else if (name.empty() || HasLineBreak(name) || name.find('"') != std::string::npos) {
      return Fail(child, "\"" + name + "\" is not a form field name");
    }
    for (const auto& [seen_name, t] : out) {
      if (strcasecmp(seen_name.c_str(), name.c_str()) == 0) return Fail(child, "given twice");
    }
    auto t = Template(child, {.placeholders = true, .secrets = true},
                      /*resolve=*/opts_.handler_secrets);
    if (!t) return t.error();
    for (const TextTemplate::Part& p : t->parts()) {
      const bool text = p.kind == TextTemplate::Part::Kind::kText;
      const bool secret = p.kind == TextTemplate::Part::Kind::kSecret;
      if (header && (text || secret) && HasLineBreak(p.text)) {
        return Fail(child, secret ? "the secret " + std::string("${") + p.source +
                                        "} holds a line break: it cannot go in a header"
                                  : "a header value cannot hold a line break");
      }
    }
    lines_[child.key] = child.line;
    out.emplace_back(name, std::move(*t));
  }
  return out;
}

Result<std::vector<int>> Parser::Statuses(const At& at) const {
  if (!at.node.IsSequence()) {
    return Fail(at, "expected a list of HTTP statuses (300..599), got " + Describe(at.node));
  }
  std::vector<int> out;
  for (size_t i = 0; i < at.node.size(); ++i) {
    const YAML::Node item = at.node[i];
    const At item_at{item, at.key + "[" + std::to_string(i) + "]", item.Mark().line + 1};
    auto v = Integer(item_at, 300, 599);
    if (!v) return v.error();
    if (std::find(out.begin(), out.end(), *v) != out.end()) return Fail(item_at, "listed twice");
    out.push_back(static_cast<int>(*v));
  }
  return out;
}

Status Parser::Http(const At& at, HttpConfig* h, Millis* timeout) {
  std::string scheme;
  std::string host;
  const Field fields[] = {
      {"url",
       [&](const At& v) -> Status {
         auto t = Template(v, {.placeholders = true, .secrets = true},
                           /*resolve=*/opts_.handler_secrets);
         if (!t) return t.error();
         const auto& parts = t->parts();
         if (parts.empty() || parts.front().kind != TextTemplate::Part::Kind::kText ||
             !UrlHost(parts.front().text, parts.size() == 1, &scheme, &host)) {
           return Fail(v,
                       "must start with http:// or https:// and a host written out (no "
                       "placeholder, secret or user:password@ before the path)");
         }
         if (scheme != "http" && scheme != "https") {
           return Fail(v, "the scheme must be http or https, got " + scheme);
         }
         for (const TextTemplate::Part& p : parts) {
           if (p.kind == TextTemplate::Part::Kind::kText &&
               (HasLineBreak(p.text) || p.text.find(' ') != std::string::npos)) {
             return Fail(v, "a URL holds no space or line break (write %20)");
           }
         }
         h->url = std::move(*t);
         return OkStatus();
       }},
      {"method",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (*s != "PUT" && *s != "POST") return Fail(v, "\"" + *s + "\" is not PUT or POST");
         h->method = *s;
         return OkStatus();
       }},
      {"body",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (*s == "file") {
           h->body = HttpConfig::Body::kFile;
         } else if (*s == "multipart") {
           h->body = HttpConfig::Body::kMultipart;
         } else if (*s == "json") {
           h->body = HttpConfig::Body::kJson;
         } else {
           return Fail(v, "\"" + *s + "\" is not file, multipart or json");
         }
         return OkStatus();
       }},
      {"content_type",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (s->empty() || HasLineBreak(*s)) return Fail(v, "not a media type");
         h->content_type = *s;
         return OkStatus();
       }},
      {"file_field",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (s->empty() || HasLineBreak(*s) || s->find('"') != std::string::npos) {
           return Fail(v, "\"" + *s + "\" is not a form field name");
         }
         h->file_field = *s;
         return OkStatus();
       }},
      {"fields",
       [&](const At& v) -> Status {
         auto m = NamedTemplates(v, /*header=*/false);
         if (!m) return m.error();
         h->fields = std::move(*m);
         return OkStatus();
       }},
      {"headers",
       [&](const At& v) -> Status {
         auto m = NamedTemplates(v, /*header=*/true);
         if (!m) return m.error();
         h->headers = std::move(*m);
         return OkStatus();
       }},
      {"connect_timeout",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/false);
         if (!d) return d.error();
         h->connect_timeout = *d;
         return OkStatus();
       }},
      {"timeout",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/false);
         if (!d) return d.error();
         *timeout = *d;
         return OkStatus();
       }},
      {"ca_file",
       [&](const At& v) -> Status {
         auto s = String(v);
         if (!s) return s.error();
         if (s->empty() || s->front() != '/')
           return Fail(v, "\"" + *s + "\" is not an absolute path");
         if (access(s->c_str(), R_OK) != 0)
           return Fail(v, "cannot read " + *s + ": " + ErrnoText(errno));
         h->ca_file = *s;
         return OkStatus();
       }},
      {"follow_redirects",
       [&](const At& v) -> Status {
         auto b = Bool(v);
         if (!b) return b.error();
         h->follow_redirects = *b;
         return OkStatus();
       }},
      {"retry_statuses",
       [&](const At& v) -> Status {
         auto l = Statuses(v);
         if (!l) return l.error();
         h->retry_statuses = std::move(*l);
         return OkStatus();
       }},
      {"permanent_statuses",
       [&](const At& v) -> Status {
         auto l = Statuses(v);
         if (!l) return l.error();
         h->permanent_statuses = std::move(*l);
         return OkStatus();
       }},
      {"max_retry_after",
       [&](const At& v) -> Status {
         auto d = Duration(v, /*zero_ok=*/true);
         if (!d) return d.error();
         h->max_retry_after = *d;
         return OkStatus();
       }},
  };
  std::set<std::string> seen;
  if (Status s = Map(at, fields, &seen); !s) return s;
  if (Status s = Require(at, seen, {"url"}); !s) return s;
  const auto key_at = [&](std::string_view key) {
    const std::string k = Join(at.key, key);
    return At{at.node, k, lines_[k]};
  };
  for (int st : h->retry_statuses) {
    if (std::find(h->permanent_statuses.begin(), h->permanent_statuses.end(), st) !=
        h->permanent_statuses.end()) {
      return Fail(key_at("permanent_statuses"),
                  std::to_string(st) + " is in retry_statuses too: a status has one class");
    }
  }
  if (h->body != HttpConfig::Body::kMultipart) {
    for (const char* key : {"file_field", "fields"}) {
      if (seen.count(key) != 0) return Fail(key_at(key), "is only for body: multipart");
    }
  }
  if (h->body != HttpConfig::Body::kFile && seen.count("content_type") != 0) {
    return Fail(key_at("content_type"), "is only for body: file");
  }
  // A secret sent in the clear can be read by anyone on the path.
  bool secret = h->url.has_secret();
  for (const auto& f : h->headers) secret = secret || f.second.has_secret();
  for (const auto& f : h->fields) secret = secret || f.second.has_secret();
  if (secret && scheme == "http" && !IsLoopbackHost(host)) {
    return Fail(key_at("url"),
                "a secret goes only over https:// (or plain http:// to a loopback "
                "address), and this url is http:// to " +
                    host);
  }
  return OkStatus();
}

Result<std::vector<int>> Parser::ExitCodes(const At& at, std::vector<int>* lines) const {
  if (!at.node.IsSequence()) {
    return Fail(at, "expected a list of exit codes (1..255), got " + Describe(at.node));
  }
  std::vector<int> out;
  lines->clear();
  for (size_t i = 0; i < at.node.size(); ++i) {
    const YAML::Node item = at.node[i];
    const At item_at{item, at.key + "[" + std::to_string(i) + "]", item.Mark().line + 1};
    if (item.IsScalar() && item.Scalar() == "0") {
      return Fail(item_at, "0 is success, not a failure: want an exit code 1..255");
    }
    auto n = Integer(item_at, 1, 255);
    if (!n) return n.error();
    const int code = static_cast<int>(*n);
    if (std::find(out.begin(), out.end(), code) != out.end()) {
      return Fail(item_at, std::to_string(code) + " is listed twice");
    }
    out.push_back(code);
    lines->push_back(item_at.line);
  }
  return out;
}

// Two checks need two keys (max_delay >= initial_delay, no code in both exit
// code lists). When both keys are written they run as soon as the second is
// read, so that the first error in the file is the one reported; after the
// walk they run again against the defaults of keys left out.
Status Parser::Retry(const At& at, RetryConfig* r) {
  std::set<std::string> seen;
  std::vector<int> permanent_lines, tempfail_lines;
  const auto key = [&](std::string_view name) { return Join(at.key, name); };
  const auto check_delays = [&]() -> Status {
    if (r->max_delay >= r->initial_delay) return OkStatus();
    if (seen.count("max_delay") != 0) {
      return Fail(At{at.node, key("max_delay"), lines_[key("max_delay")]},
                  "must be at least initial_delay (" + ShowDuration(r->initial_delay) + "), got " +
                      ShowDuration(r->max_delay));
    }
    return Fail(At{at.node, key("initial_delay"), lines_[key("initial_delay")]},
                "is more than max_delay (default " + ShowDuration(r->max_delay) +
                    "): set max_delay too, at least this long");
  };
  // Fails on the first code of the list `name` that the other list holds too.
  const auto check_codes = [&](std::string_view name) -> Status {
    const bool perm = name == "permanent_exit_codes";
    const std::vector<int>& mine = perm ? r->permanent_exit_codes : r->tempfail_exit_codes;
    const std::vector<int>& other = perm ? r->tempfail_exit_codes : r->permanent_exit_codes;
    const std::vector<int>& lines = perm ? permanent_lines : tempfail_lines;
    const std::string other_name = perm ? "tempfail_exit_codes" : "permanent_exit_codes";
    for (size_t i = 0; i < mine.size(); ++i) {
      if (std::find(other.begin(), other.end(), mine[i]) == other.end()) continue;
      const std::string code = std::to_string(mine[i]);
      std::string why = "exit code " + code + " is in both permanent_exit_codes and " +
                        "tempfail_exit_codes: a code is one or the other";
      if (seen.count(other_name) == 0) {
        std::string dflt;
        for (int c : other) dflt += (dflt.empty() ? "" : ", ") + std::to_string(c);
        why = "exit code " + code + " is also in " + other_name + " by default (" + other_name +
              ": [" + dflt + "]): set " + other_name + " without it";
      }
      return Fail(At{at.node, key(name) + "[" + std::to_string(i) + "]", lines[i]}, why);
    }
    return OkStatus();
  };
  const auto delay = [&](Millis* out) {
    return [&, out](const At& v) -> Status {
      auto d = Duration(v, /*zero_ok=*/false);
      if (!d) return d.error();
      *out = *d;
      if (seen.count("initial_delay") != 0 && seen.count("max_delay") != 0) return check_delays();
      return OkStatus();
    };
  };
  const auto codes = [&](std::string_view name, std::vector<int>* out, std::vector<int>* lines) {
    return [&, name, out, lines](const At& v) -> Status {
      auto l = ExitCodes(v, lines);
      if (!l) return l.error();
      *out = std::move(*l);
      if (seen.count("permanent_exit_codes") != 0 && seen.count("tempfail_exit_codes") != 0) {
        return check_codes(name);
      }
      return OkStatus();
    };
  };
  const Field fields[] = {
      {"max_attempts",
       [&](const At& v) -> Status {
         auto n = Integer(v, 1, 1000);
         if (!n) return n.error();
         r->max_attempts = static_cast<int>(*n);
         return OkStatus();
       }},
      {"initial_delay", delay(&r->initial_delay)},
      {"max_delay", delay(&r->max_delay)},
      {"permanent_exit_codes",
       codes("permanent_exit_codes", &r->permanent_exit_codes, &permanent_lines)},
      {"tempfail_exit_codes",
       codes("tempfail_exit_codes", &r->tempfail_exit_codes, &tempfail_lines)},
  };
  if (Status s = Map(at, fields, &seen); !s) return s;
  if (Status s = check_delays(); !s) return s;
  // Both written: checked already. One written: it is the one to point at.
  if (seen.count("permanent_exit_codes") != 0 && seen.count("tempfail_exit_codes") == 0) {
    return check_codes("permanent_exit_codes");
  }
  if (seen.count("tempfail_exit_codes") != 0 && seen.count("permanent_exit_codes") == 0) {
    return check_codes("tempfail_exit_codes");
  }
  return OkStatus();
}

Result<Disposition> Parser::Dispo(const At& at, bool delete_ok) {
  const std::string forms =
      delete_ok ? "keep, delete or { move_to: /dir }" : "keep or { move_to: /dir }";
  Disposition d;
  if (at.node.IsScalar()) {
    const std::string& s = at.node.Scalar();
    if (s == "keep") return d;
    if (s == "delete") {
      if (!delete_ok) {
        return Fail(at,
                    "delete is not allowed for failures: a failed file is kept or moved, so it "
                    "can be looked at and retried (want keep or { move_to: /dir })");
      }
      d.kind = Disposition::Kind::kDelete;
      return d;
    }
    return Fail(at, "expected " + forms + ", got " + Describe(at.node));
  }
  if (!at.node.IsMap()) return Fail(at, "expected " + forms + ", got " + Describe(at.node));
  const Field fields[] = {
      {"move_to",
       [&](const At& v) -> Status {
         auto dir = ExistingDir(v);
         if (!dir) return dir.error();
         d.kind = Disposition::Kind::kMoveTo;
         d.dir = *dir;
         return OkStatus();
       }},
  };
  std::set<std::string> seen;
  if (Status s = Map(at, fields, &seen); !s) return s.error();
  if (Status s = Require(at, seen, {"move_to"}); !s) return s.error();
  return d;
}

// Notes what one document of a YAML stream held: enough to tell a document
// from yaml-cpp 0.7 being stuck (see LoadOneDocument).
class DocProbe : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    start = mark;
    events = 0;
    lone_null_pos = -1;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override {
    lone_null_pos = ++events == 1 ? mark.pos : -1;
    null_mark = mark;
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { Other(); }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Other();
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Other();
  }
  void OnSequenceEnd() override { Other(); }
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Other();
  }
  void OnMapEnd() override { Other(); }

  YAML::Mark start;
  YAML::Mark null_mark;
  int events = 0;
  int lone_null_pos = -1;  // the document was one null at this offset; -1 otherwise

 private:
  void Other() {
    ++events;
    lone_null_pos = -1;
  }
};

// Parses the one document of `text`; an empty stream is an error, and so is
// a second document. Throws YAML::ParserException on bad YAML.
//
// Not YAML::LoadAll(): yaml-cpp 0.7 does not consume a token it cannot start
// a node with (a ',' at block level), so LoadAll() appends null documents
// until memory runs out (yaml-cpp PR #1319). Stuck, the parser reports the
// same lone null at the same offset again; here that is a syntax error.
Result<YAML::Node> LoadOneDocument(const std::string& text, const std::string& path) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocProbe probe;
  int docs = 0;
  int last_lone_null = -1;
  YAML::Mark second;
  while (docs < 3 && parser.HandleNextDocument(probe)) {
    if (probe.lone_null_pos >= 0 && probe.lone_null_pos == last_lone_null) {
      const auto at = static_cast<size_t>(probe.lone_null_pos);
      std::string what = path + ":" + std::to_string(probe.null_mark.line + 1) + ": yaml: ";
      if (at < text.size()) {
        what.append("unexpected '").append(1, text[at]).append("'");
      } else {
        what.append("unexpected end of file");
      }
      return Error{Errc::kConfig, OneLine(std::move(what))};
    }
    last_lone_null = probe.lone_null_pos;
    if (docs == 1) second = probe.start;
    ++docs;
  }
  if (docs >= 2) {
    return Error{Errc::kConfig, path + ":" + std::to_string(second.line + 1) +
                                    ": yaml: more than one document (---): want exactly one"};
  }
  YAML::Node root = YAML::Load(text);
  if (docs == 0 || root.IsNull()) {
    return Error{Errc::kConfig, path + ": the file is empty (want a map with queues: at least)"};
  }
  return root;
}

// True if line `line` (0-based) of `text`, or the one before it (yaml-cpp
// may point past the value), holds an unquoted "${" after a '{': a secret
// in a flow map, where YAML reads its braces as the map's.
bool FlowSecretUnquoted(const std::string& text, int line) {
  std::istringstream in(text);
  std::string l;
  for (int i = 0; std::getline(in, l); ++i) {
    if (i < line - 1) continue;
    if (i > line) break;
    bool quoted = false;
    char quote = 0;
    bool in_flow = false;
    for (size_t k = 0; k < l.size(); ++k) {
      const char ch = l[k];
      if (quoted) {
        if (ch == quote) quoted = false;
        continue;
      }
      if (ch == '"' || ch == '\'') {
        quoted = true;
        quote = ch;
      } else if (ch == '#') {
        break;
      } else if (ch == '{') {
        in_flow = true;
      } else if (in_flow && ch == '$' && k + 1 < l.size() && l[k + 1] == '{') {
        return true;
      }
    }
  }
  return false;
}

// Checks one class name of a bracket expression, "[:alpha:]".
bool KnownCharClass(std::string_view name) {
  static constexpr std::string_view kClasses[] = {"alnum", "alpha", "blank", "cntrl",
                                                  "digit", "graph", "lower", "print",
                                                  "punct", "space", "upper", "xdigit"};
  return std::find(std::begin(kClasses), std::end(kClasses), name) != std::end(kClasses);
}

}  // namespace

const QueueConfig* Config::FindQueue(const std::string& name) const {
  for (const QueueConfig& q : queues) {
    if (q.name == name) return &q;
  }
  return nullptr;
}

const std::vector<std::string>& DefaultExcludes() {
  static const std::vector<std::string> kExcludes = {".*",         "*.part",       "*.tmp",
                                                     "*.filepart", "*.crdownload", "*~"};
  return kExcludes;
}

Result<Config> ParseConfig(const std::string& yaml_text, const std::string& path,
                           LoadOptions opts) {
  try {
    auto root = LoadOneDocument(yaml_text, path);
    if (!root) return root.error();
    return Parser(path, opts).Top(*root);
  } catch (const YAML::Exception& e) {
    const std::string where = e.mark.is_null() ? "" : ":" + std::to_string(e.mark.line + 1);
    if (!e.mark.is_null() && FlowSecretUnquoted(yaml_text, e.mark.line)) {
      return Error{Errc::kConfig,
                   path + where +
                       ": yaml: a value holding ${...} inside { ... } must be quoted, e.g. "
                       "{ Authorization: \"Bearer ${env:TOKEN}\" }"};
    }
    return Error{Errc::kConfig, OneLine(path + where + ": yaml: " + e.msg)};
  } catch (const std::exception& e) {
    return Error{Errc::kConfig, OneLine(path + ": cannot load: " + e.what())};
  } catch (...) {
    return Error{Errc::kConfig, path + ": cannot load: unknown error"};
  }
}

Result<Config> LoadConfig(const std::string& path, LoadOptions opts) {
  // Far beyond any real config. A bigger file is a mistake (a log or an image
  // named by accident, /dev/zero), and yaml-cpp would hold it several times.
  constexpr size_t kMaxConfigBytes = 1024 * 1024;
  const auto too_big = [&](const std::string& size) {
    return Error{Errc::kConfig,
                 path + ": " + size + " bytes: a config larger than 1 MiB is refused"};
  };
  std::FILE* f = std::fopen(path.c_str(), "rbe");
  if (f == nullptr) {
    return Error{Errc::kConfig, path + ": cannot read: " + ErrnoText(errno)};
  }
  struct stat st {};
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<uint64_t>(st.st_size) > kMaxConfigBytes) {
    std::fclose(f);
    return too_big(std::to_string(st.st_size));
  }
  // Bounded even where the size says nothing (a device, a FIFO, a growing file).
  std::string text;
  char buf[8192];
  size_t n;
  while (text.size() <= kMaxConfigBytes && (n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    text.append(buf, n);
  }
  const int err = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (err != 0) return Error{Errc::kConfig, path + ": cannot read: " + ErrnoText(err)};
  if (text.size() > kMaxConfigBytes) return too_big("more than " + std::to_string(kMaxConfigBytes));
  return ParseConfig(text, path, opts);
}

Result<Millis> ParseDuration(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return Error{Errc::kConfig,
                 OneLine("bad duration \"" + text + "\"" + why + ": " + kDurationForms)};
  };
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits == text.size()) return bad("");
  const std::string_view unit = std::string_view(text).substr(digits);
  int64_t factor;
  if (unit == "ms") {
    factor = 1;
  } else if (unit == "s") {
    factor = 1000;
  } else if (unit == "m") {
    factor = int64_t{60} * 1000;
  } else if (unit == "h") {
    factor = int64_t{60} * 60 * 1000;
  } else if (unit == "d") {
    factor = int64_t{24} * 60 * 60 * 1000;
  } else {
    return bad("");
  }
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, v);
  if (ec != std::errc() || end != text.data() + digits || v > kMaxDurationMs / factor) {
    return bad(" (too long: at most 36500d)");
  }
  return Millis(v * factor);
}

Result<int64_t> ParseByteSize(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return Error{Errc::kConfig, OneLine("bad size \"" + text + "\"" + why +
                                        ": a whole number of bytes, or one with K, M or G "
                                        "(1024-based), e.g. 512M, 1G")};
  };
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return bad("");
  const std::string_view unit = std::string_view(text).substr(digits);
  int64_t factor;
  if (unit.empty() || unit == "B") {
    factor = 1;
  } else if (unit == "K" || unit == "KiB") {
    factor = int64_t{1} << 10;
  } else if (unit == "M" || unit == "MiB") {
    factor = int64_t{1} << 20;
  } else if (unit == "G" || unit == "GiB") {
    factor = int64_t{1} << 30;
  } else {
    return bad("");
  }
  constexpr int64_t kMax = int64_t{1} << 40;
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, v);
  if (ec != std::errc() || end != text.data() + digits || v > kMax / factor) {
    return bad(" (too large: at most 1024G)");
  }
  return v * factor;
}

bool ValidGlob(const std::string& pattern, std::string* why) {
  std::string scratch;
  if (why == nullptr) why = &scratch;
  const auto fail = [&](std::string m) {
    *why = std::move(m);
    return false;
  };
  if (pattern.empty()) return fail("empty pattern");
  if (pattern.find('/') != std::string::npos) {
    // A path glob: anchored at the watched directory (one leading '/' is
    // allowed), no empty component, and it names files, not directories.
    const std::string_view rest = std::string_view(pattern).substr(pattern.front() == '/' ? 1 : 0);
    if (rest.empty() || rest.back() == '/') {
      return fail(
          "a pattern names files: it cannot end with '/' (write dir/** for a whole directory)");
    }
    if (rest.front() == '/' || rest.find("//") != std::string_view::npos) {
      return fail("an empty path component (\"//\")");
    }
  }
  const size_t n = pattern.size();
  for (size_t i = 0; i < n; ++i) {
    if (pattern[i] == '\\') {
      if (i + 1 == n) return fail("ends with a lone backslash");
      ++i;
      continue;
    }
    if (pattern[i] != '[') continue;
    // A bracket expression. As in fnmatch(3), a ']' right after "[" or "[!"
    // (or "[^") is a literal, not the end.
    size_t j = i + 1;
    if (j < n && (pattern[j] == '!' || pattern[j] == '^')) ++j;
    if (j < n && pattern[j] == ']') ++j;
    bool closed = false;
    for (; j < n; ++j) {
      const char c = pattern[j];
      if (c == '\\') {
        ++j;  // escapes the next byte, ']' included
      } else if (c == '[' && j + 1 < n &&
                 (pattern[j + 1] == ':' || pattern[j + 1] == '.' || pattern[j + 1] == '=')) {
        const char delim = pattern[j + 1];
        const size_t end = pattern.find(std::string{delim, ']'}, j + 2);
        if (end == std::string::npos) {
          return fail(std::string("unclosed \"[") + delim + "\" in a bracket expression");
        }
        if (delim == ':' && !KnownCharClass(std::string_view(pattern).substr(j + 2, end - j - 2))) {
          return fail("unknown character class \"" + pattern.substr(j, end + 2 - j) + "\"");
        }
        j = end + 1;
      } else if (c == ']') {
        closed = true;
        break;
      }
    }
    if (!closed) return fail("unclosed '[' (write \\[ for a literal one)");
    i = j;
  }
  return true;
}

bool NameSelected(const QueueConfig& q, const std::string& relpath) {
  return AnyMatches(q.include, relpath) && !AnyMatches(DefaultExcludes(), relpath) &&
         !AnyMatches(q.exclude, relpath);
}

bool DirSelected(const QueueConfig& q, const std::string& dir_name) {
  if (dir_name.empty() || dir_name.front() == '.') return false;
  return std::none_of(q.exclude_dirs.begin(), q.exclude_dirs.end(), [&](const std::string& g) {
    return fnmatch(g.c_str(), dir_name.c_str(), 0) == 0;
  });
}

}  // namespace dropq
