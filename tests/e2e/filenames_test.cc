// File names with spaces, quotes, shell syntax, a leading dash, a newline,
// backslashes, braces and bytes that are not UTF-8 reach an exec handler
// intact, each as one argument, and nothing in them is ever interpreted.
// dropqctl shows them escaped (human form) or with the exact bytes in hex
// (JSON), and the sha256 manifest writes one unambiguous line per file.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "common/escape.h"
#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// Every one of these must arrive byte for byte.
const std::vector<std::string>& Names() {
  static const std::vector<std::string> kNames = {
      "with space.txt",
      "it's.txt",
      "say \"hi\".txt",
      "$(touch pwned)",
      "`touch pwned2`;x",
      "-rf",
      "--help",
      "new\nline.txt",
      "tab\there",
      std::string("\xff\xfe.bin"),
      "back\\slash.txt",
      "{path}.txt",
      "{{name}}",
      "caf\xc3\xa9.txt",  // valid UTF-8, kept as is
      "*.txt",
  };
  return kNames;
}

// Drops every name of Names(); the content says which it is.
void DropAll(DropqEnv& env) {
  const std::string staging = env.tmp.Mkdir("staging");
  int i = 0;
  for (const std::string& n : Names()) {
    const std::string content = "content of file " + std::to_string(i) + "\n";
    if (i++ % 2 == 0) {
      WriteFile(env.inbox + "/" + n, content);
    } else {
      WriteAndRename(staging + "/" + std::to_string(i), env.inbox + "/" + n, content);
    }
  }
}

std::string ContentOf(const std::string& name) {
  for (size_t i = 0; i < Names().size(); ++i) {
    if (Names()[i] == name) return "content of file " + std::to_string(i) + "\n";
  }
  return "";
}

TEST(FilenamesTest, NamesReachTheHandlerIntactAsOneArgument) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("args.log");
  // One record per run: the name, NUL, the path, NUL, the argument count, NUL.
  const std::string script =
      WriteScript(env.tmp.Sub("args.sh"),
                  "log=$1; shift\n"
                  "printf '%s\\0%s\\0%s\\0' \"$1\" \"$2\" \"$#\" >> \"$log\"\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\", \"{path}\"]";
  q.workers = 1;
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  DropAll(env);

  const size_t n = Names().size();
  ASSERT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "done") == static_cast<long long>(n); },
              seconds(30)))
      << env.DaemonLog();

  const std::vector<std::string> fields = SplitNul(ReadFile(log));
  ASSERT_EQ(fields.size(), 3 * n);
  std::multiset<std::string> got;
  for (size_t i = 0; i + 2 < fields.size(); i += 3) {
    got.insert(fields[i]);
    // {path} is in the processing area and keeps the name as its last part.
    const std::string prefix = env.inbox + "/.dropq-processing/q/";
    EXPECT_EQ(fields[i + 1].rfind(prefix, 0), 0u) << fields[i + 1];
    EXPECT_EQ(fields[i + 1].size(), prefix.size() + 26 + 1 + fields[i].size()) << fields[i + 1];
    EXPECT_EQ(fields[i + 1].substr(fields[i + 1].size() - fields[i].size() - 1), "/" + fields[i]);
    EXPECT_EQ(fields[i + 2], "2") << "the handler got another number of arguments for "
                                  << EscapeName(fields[i]);
  }
  EXPECT_EQ(got, std::multiset<std::string>(Names().begin(), Names().end()));

  // Each file was moved under its own name, with its own content.
  const std::vector<std::string> done = ListDir(env.done);
  EXPECT_EQ(std::set<std::string>(done.begin(), done.end()),
            std::set<std::string>(Names().begin(), Names().end()));
  for (const std::string& name : Names()) {
    EXPECT_EQ(ReadFile(env.done + "/" + name), ContentOf(name)) << EscapeName(name);
  }
  // No shell ever ran the names.
  for (const char* p : {"pwned", "pwned2"}) {
    EXPECT_TRUE(FindNamed(env.tmp.path(), p).empty()) << p;
    EXPECT_FALSE(Exists(p)) << p << " in the working directory";
  }
  EXPECT_EQ(env.Stop(), 0);
}

TEST(FilenamesTest, DropqctlShowsNamesUnambiguously) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: noop";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  DropAll(env);
  const size_t n = Names().size();
  ASSERT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "done") == static_cast<long long>(n); },
              seconds(30)))
      << env.DaemonLog();

  const auto by_name = JobIdsByName(env.redis, "q");
  ASSERT_EQ(by_name.size(), n);
  // The escapes a reader can count on.
  const std::map<std::string, std::string> known = {
      {"with space.txt", "with\\x20space.txt"},
      {"new\nline.txt", "new\\x0aline.txt"},
      {"tab\there", "tab\\x09here"},
      {std::string("\xff\xfe.bin"), "\\xff\\xfe.bin"},
      {"back\\slash.txt", "back\\\\slash.txt"},
      {"caf\xc3\xa9.txt", "caf\xc3\xa9.txt"},
      {"-rf", "-rf"},
  };
  for (const std::string& name : Names()) {
    SCOPED_TRACE(EscapeName(name));
    ASSERT_EQ(by_name.count(name), 1u);
    const std::string id = by_name.at(name).at(0);

    const CommandResult human = env.Ctl({"show", id});
    ASSERT_EQ(human.status, 0) << human.err;
    std::string shown;
    for (const std::string& line : SplitLines(human.out)) {
      if (line.rfind("name:", 0) == 0) {
        EXPECT_TRUE(shown.empty()) << "two name lines";
        shown = line.substr(line.find_first_not_of(' ', 5));
      }
    }
    // One token, no raw space or control byte, and it reads back exactly.
    EXPECT_EQ(shown.find_first_of(std::string(" \t\n\r\0", 5)), std::string::npos) << shown;
    std::string back;
    EXPECT_TRUE(UnescapeName(shown, &back)) << shown;
    EXPECT_EQ(back, name);
    if (auto it = known.find(name); it != known.end()) {
      EXPECT_EQ(shown, it->second);
    }
    EXPECT_NE(human.out.find("path:        " + EscapeName(env.inbox + "/" + name) + "\n"),
              std::string::npos)
        << human.out;

    const CommandResult json = env.Ctl({"show", "--json", id});
    ASSERT_EQ(json.status, 0) << json.err;
    const nlohmann::json j = ParseJson(json.out);
    ASSERT_FALSE(j.is_discarded()) << json.out;
    if (IsValidUtf8(name)) {
      EXPECT_EQ(j["name"], name);
      EXPECT_FALSE(j.contains("name_hex"));
    } else {
      EXPECT_EQ(j["name"], "\xef\xbf\xbd\xef\xbf\xbd.bin");  // two U+FFFD
      EXPECT_EQ(j["name_hex"], "fffe2e62696e");
      EXPECT_EQ(j["path_hex"], HexBytes(env.inbox + "/" + name));
    }
  }
  EXPECT_EQ(env.Stop(), 0);
}

TEST(FilenamesTest, ManifestLinesAreThreeTokensThatRoundTrip) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string manifest = env.tmp.Sub("manifest");
  QueueSpec q;
  q.handler = "builtin: sha256\nmanifest: " + manifest;
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  DropAll(env);
  const size_t n = Names().size();
  ASSERT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "done") == static_cast<long long>(n); },
              seconds(30)))
      << env.DaemonLog();

  const std::vector<std::string> lines = ReadLines(manifest);
  ASSERT_EQ(lines.size(), n) << ReadFile(manifest);
  std::set<std::string> seen;
  for (const std::string& line : lines) {
    SCOPED_TRACE(line);
    const size_t a = line.find(' ');
    ASSERT_NE(a, std::string::npos);
    const size_t b = line.find(' ', a + 1);
    ASSERT_NE(b, std::string::npos);
    EXPECT_EQ(line.find(' ', b + 1), std::string::npos) << "more than three tokens";
    const std::string escaped = line.substr(0, a), digest = line.substr(a + 1, b - a - 1),
                      ns = line.substr(b + 1);
    EXPECT_TRUE(IsValidUtf8(escaped));
    for (unsigned char c : escaped) EXPECT_TRUE(c > 0x20 && c != 0x7f) << escaped;
    std::string name;
    ASSERT_TRUE(UnescapeName(escaped, &name)) << escaped;
    EXPECT_TRUE(seen.insert(name).second) << "twice: " << escaped;
    EXPECT_EQ(digest, Sha256Hex(ContentOf(name))) << escaped;
    EXPECT_FALSE(ns.empty());
    EXPECT_EQ(ns.find_first_not_of("0123456789"), std::string::npos) << ns;
    EXPECT_GT(ns.size(), 18u) << "not nanoseconds since 1970: " << ns;
  }
  EXPECT_EQ(seen, std::set<std::string>(Names().begin(), Names().end()));
  const std::string raw = ReadFile(manifest);
  EXPECT_NE(raw.find("with\\x20space.txt "), std::string::npos);
  EXPECT_NE(raw.find("new\\x0aline.txt "), std::string::npos);
  EXPECT_NE(raw.find("\\xff\\xfe.bin "), std::string::npos);
  EXPECT_NE(raw.find("back\\\\slash.txt "), std::string::npos);
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
