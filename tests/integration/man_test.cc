// The manual pages (docs/man/): each renders with groff without a warning,
// and none lags behind the programs: every command and option that
// `dropqctl --help`, `dropqd --help` and `dropq-web --help` list is documented, and dropq.yaml(5)
// shows every line of the annotated example config.
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/support/e2e_helpers.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace dropq::test {
namespace {

const std::string kManDir = std::string(DROPQ_BINARY_DIR) + "/docs/man";

// The page rendered as plain text (groff -Tascii, no overstriking), with
// warnings on; fails the test if groff warns or fails.
std::string Render(const std::string& page) {
  CommandResult r = RunCommand({"groff", "-man", "-Tascii", "-ww", "-P", "-cbou", page});
  EXPECT_EQ(r.status, 0) << page << ": " << r.err;
  EXPECT_EQ(r.err, "") << page << " has roff warnings";
  return r.out;
}

// Long options ("--name") in a --help text, "--help" and "--version" left out.
std::set<std::string> LongOptions(const std::string& help) {
  std::set<std::string> out;
  static const std::regex re("(^|[ ,])(--[a-z][a-z-]*)");
  for (std::sregex_iterator it(help.begin(), help.end(), re), end; it != end; ++it) {
    const std::string o = (*it)[2];
    if (o != "--help" && o != "--version") out.insert(o);
  }
  return out;
}

TEST(ManTest, DropqctlPageDocumentsEveryCommandAndOption) {
  const std::string text = Render(kManDir + "/dropqctl.1");
  CommandResult help = RunCommand({DROPQCTL_BIN, "--help"});
  ASSERT_EQ(help.status, 0);
  // The subcommands: the indented lines after "Subcommands:".
  std::vector<std::string> commands;
  const size_t from = help.out.find("Subcommands:");
  ASSERT_NE(from, std::string::npos) << help.out;
  for (const std::string& line : SplitLines(help.out.substr(from))) {
    static const std::regex re("^  ([a-z]+) ");
    std::smatch m;
    if (std::regex_search(line, m, re)) commands.push_back(m[1]);
  }
  ASSERT_GE(commands.size(), 7U) << help.out;
  for (const std::string& c : commands) {
    // Each command has its own entry in COMMANDS: a line that starts with it.
    EXPECT_NE(text.find("\n       " + c), std::string::npos) << "dropqctl " << c;
    CommandResult sub = RunCommand({DROPQCTL_BIN, c, "--help"});
    ASSERT_EQ(sub.status, 0) << c;
    for (const std::string& o : LongOptions(sub.out)) {
      EXPECT_NE(text.find(o), std::string::npos) << "dropqctl " << c << " " << o;
    }
  }
  for (const std::string& o : LongOptions(help.out)) {
    EXPECT_NE(text.find(o), std::string::npos) << "dropqctl " << o;
  }
  // The exit statuses of the help's footer, each a tagged paragraph of its own.
  const std::string statuses = text.substr(text.find("EXIT STATUS"));
  for (const char* status : {"0", "1", "64", "69", "78"}) {
    EXPECT_NE(statuses.find("\n       " + std::string(status) + " "), std::string::npos) << status;
  }
}

TEST(ManTest, DropqdPageDocumentsEveryOptionAndSignal) {
  const std::string text = Render(kManDir + "/dropqd.8");
  CommandResult help = RunCommand({DROPQD_BIN, "--help"});
  ASSERT_EQ(help.status, 0);
  const std::set<std::string> options = LongOptions(help.out);
  ASSERT_TRUE(options.count("--config") == 1 && options.count("--check-config") == 1) << help.out;
  for (const std::string& o : options) EXPECT_NE(text.find(o), std::string::npos) << o;
  for (const char* s : {"SIGTERM", "SIGINT", "SIGHUP", "READY=1", "WATCHDOG=1", "DROPQ_QUEUE",
                        "DROPQ_JOB_ID", "DROPQ_PATH", "\n       78 "}) {
    EXPECT_NE(text.find(s), std::string::npos) << s;
  }
}

TEST(ManTest, DropqWebPageDocumentsEveryOptionAndStatus) {
  const std::string text = Render(kManDir + "/dropq-web.8");
  CommandResult help = RunCommand({DROPQ_WEB_BIN, "--help"});
  ASSERT_EQ(help.status, 0);
  const std::set<std::string> options = LongOptions(help.out);
  ASSERT_TRUE(options.count("--token-file") == 1 && options.count("--listen") == 1) << help.out;
  for (const std::string& o : options) EXPECT_NE(text.find(o), std::string::npos) << o;
  const std::string statuses = text.substr(text.find("EXIT STATUS"));
  for (const char* status : {"0", "64", "69", "78"}) {
    EXPECT_NE(statuses.find("\n       " + std::string(status) + " "), std::string::npos) << status;
  }
}

TEST(ManTest, ConfigPageShowsTheWholeAnnotatedExample) {
  const std::string text = Render(kManDir + "/dropq.yaml.5");
  const std::vector<std::string> example =
      ReadLines(std::string(DROPQ_SOURCE_DIR) + "/config/dropq.example.yaml");
  ASSERT_GT(example.size(), 100U);
  size_t at = 0;
  int lines = 0;
  for (const std::string& line : example) {
    const size_t first = line.find_first_not_of(' ');
    if (first == std::string::npos) continue;
    // In order, each exactly as in the file (the indentation of the block aside).
    const size_t found = text.find(line.substr(first), at);
    ASSERT_NE(found, std::string::npos) << "missing or altered: " << line;
    at = found;
    ++lines;
  }
  std::printf("[ measure ] dropq.yaml(5) shows %d example lines\n", lines);
}

}  // namespace
}  // namespace dropq::test
