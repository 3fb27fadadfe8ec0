// Every kind of invalid config makes the real dropqd (and dropqctl) exit 78
// with one line on stderr: "<program>: <file>:<line>: <dotted key>: <message>".
// --check-config validates a good file without any Redis running.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/e2e_helpers.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace dropq::test {
namespace {

// Nothing listens on port 1 of the loopback: connecting is refused at once.
constexpr char kClosedRedis[] = "redis://127.0.0.1:1/0";

struct BadConfig {
  std::string title;
  std::string yaml;     // @IN@ and @DONE@ stand for existing directories
  int line;             // expected line
  std::string key;      // expected dotted key
  std::string message;  // expected start of the message
};

class ConfigErrorsTest : public ::testing::Test {
 protected:
  std::string Expand(std::string yaml) {
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"@IN@", in_},
                                   {"@DONE@", done_},
                                   {"@REDIS@", kClosedRedis}}) {
      for (size_t at = yaml.find(from); at != std::string::npos; at = yaml.find(from, at)) {
        yaml.replace(at, from.size(), to);
      }
    }
    return yaml;
  }

  // Writes `yaml` to a fresh file and returns its path.
  std::string Write(const std::string& yaml) {
    const std::string path = tmp_.Sub("config-" + std::to_string(++files_) + ".yaml");
    WriteFile(path, Expand(yaml));
    return path;
  }

  TempDir tmp_;
  const std::string in_ = tmp_.Mkdir("inbox");
  const std::string done_ = tmp_.Mkdir("done");
  int files_ = 0;
};

// The start every case builds on; its queue's keys begin on line 5.
constexpr char kHead[] =
    "redis:\n"          // 1
    "  url: @REDIS@\n"  // 2
    "instance: t\n"     // 3
    "queues:\n";        // 4
constexpr char kQueue[] =
    "  - name: q\n"           // 5
    "    watch: @IN@\n"       // 6
    "    handler:\n"          // 7
    "      builtin: noop\n";  // 8

std::vector<BadConfig> Cases() {
  const std::string head = kHead, queue = kQueue;
  return {
      {"unknown top-level key",
       "redis:\n  url: @REDIS@\ninstance: t\ncolour: blue\nqueues:\n" + queue, 4, "colour",
       "unknown key"},
      {"unknown queue key", head + queue + "    workerz: 2\n", 9, "queues[0].workerz",
       "unknown key"},
      {"unknown handler key", head + queue + "      retries: 3\n", 9, "queues[0].handler.retries",
       "unknown key"},
      {"wrong type: integer", head + queue + "    workers: many\n", 9, "queues[0].workers",
       "expected an integer"},
      {"wrong type: list", head + queue + "    include: \"*.txt\"\n", 9, "queues[0].include",
       "expected a list"},
      {"wrong type: queues", head + "  name: q\n", 4, "queues", "expected a list of queues"},
      {"missing queues", "redis:\n  url: @REDIS@\ninstance: t\n", 1, "queues",
       "required key missing"},
      {"missing watch", head + "  - name: q\n    handler:\n      builtin: noop\n", 5,
       "queues[0].watch", "required key missing"},
      {"missing handler", head + "  - name: q\n    watch: @IN@\n", 5, "queues[0].handler",
       "required key missing"},
      {"relative watch dir", head + "  - name: q\n    watch: inbox\n", 6, "queues[0].watch",
       "\"inbox\" is not an absolute path"},
      {"missing watch dir", head + "  - name: q\n    watch: @IN@/nope\n", 6, "queues[0].watch",
       "directory @IN@/nope does not exist"},
      {"move_to is the watched dir", head + queue + "    on_success: { move_to: @IN@/ }\n", 9,
       "queues[0].on_success.move_to", "@IN@ is the watched directory"},
      {"failure move_to is the watched dir",
       head + queue + "    on_success: { move_to: @DONE@ }\n    on_failure:\n      move_to: @IN@\n",
       11, "queues[0].on_failure.move_to", "@IN@ is the watched directory"},
      {"duplicate queue name", head + queue + "  - name: q\n    watch: @DONE@\n", 9,
       "queues[1].name", "duplicate queue name \"q\""},
      {"bad glob", head + queue + "    include: [\"*.txt\", \"[abc\"]\n", 9, "queues[0].include[1]",
       "bad glob \"[abc\""},
      {"bad duration", head + queue + "    settle: 5 seconds\n", 9, "queues[0].settle",
       "bad duration \"5 seconds\""},
      {"zero timeout", head + queue + "      timeout: 0s\n", 9, "queues[0].handler.timeout",
       "must be greater than 0"},
      {"empty exec argv", head + "  - name: q\n    watch: @IN@\n    handler:\n      exec: []\n", 8,
       "queues[0].handler.exec", "must list the program and its arguments"},
      {"unknown placeholder",
       head + "  - name: q\n    watch: @IN@\n    handler:\n      exec:\n        - /bin/echo\n"
              "        - \"{path}\"\n        - \"--out={nope}\"\n",
       11, "queues[0].handler.exec[2]", "unknown placeholder {nope}"},
      {"delete on failure", head + queue + "    on_failure: delete\n", 9, "queues[0].on_failure",
       "delete is not allowed"},
      {"bad redis url", "redis:\n  url: http://x\nqueues:\n" + queue, 2, "redis.url",
       "\"http://x\" is not a Redis URL"},
  };
}

TEST_F(ConfigErrorsTest, EachKindNamesFileLineAndKey) {
  for (const BadConfig& c : Cases()) {
    SCOPED_TRACE(c.title);
    const std::string path = Write(c.yaml);
    const std::string want =
        path + ":" + std::to_string(c.line) + ": " + c.key + ": " + Expand(c.message);
    const CommandResult d = RunCommand({DROPQD_BIN, "--config", path});
    EXPECT_EQ(d.status, 78) << d.err;
    EXPECT_EQ(d.err.rfind("dropqd: " + want, 0), 0u) << "stderr: " << d.err << "want: " << want;
    EXPECT_EQ(Count(d.err, "\n"), 1u) << d.err;  // one line

    const CommandResult check = RunCommand({DROPQD_BIN, "--check-config", "--config", path});
    EXPECT_EQ(check.status, 78) << check.err;
    EXPECT_EQ(check.err.rfind("dropqd: " + want, 0), 0u) << check.err;

    const CommandResult ctl = RunCommand({DROPQCTL_BIN, "--config", path, "status"});
    EXPECT_EQ(ctl.status, 78) << ctl.err;
    EXPECT_EQ(ctl.err.rfind("dropqctl: " + want, 0), 0u) << ctl.err;
  }
}

TEST_F(ConfigErrorsTest, MissingFile) {
  const std::string path = tmp_.Sub("no-such.yaml");
  const CommandResult d = RunCommand({DROPQD_BIN, "--config", path});
  EXPECT_EQ(d.status, 78);
  EXPECT_EQ(d.err, "dropqd: " + path + ": cannot read: No such file or directory\n");
  const CommandResult ctl = RunCommand({DROPQCTL_BIN, "--config", path, "status"});
  EXPECT_EQ(ctl.status, 78);
  EXPECT_EQ(ctl.err, "dropqctl: " + path + ": cannot read: No such file or directory\n");
}

TEST_F(ConfigErrorsTest, NotYaml) {
  // Broken YAML syntax: the parser's line.
  std::string path = Write(std::string(kHead) + "  - name: [unclosed\n    watch: @IN@\n");
  CommandResult d = RunCommand({DROPQD_BIN, "--config", path});
  EXPECT_EQ(d.status, 78);
  EXPECT_EQ(d.err.rfind("dropqd: " + path + ":", 0), 0u) << d.err;
  EXPECT_NE(d.err.find(": yaml: "), std::string::npos) << d.err;

  // Valid YAML that is not a map of settings.
  path = Write("just a line of text\n");
  d = RunCommand({DROPQD_BIN, "--config", path});
  EXPECT_EQ(d.status, 78);
  EXPECT_EQ(d.err.rfind("dropqd: " + path + ":1: expected a map of settings", 0), 0u) << d.err;

  // An empty file, and two documents.
  path = Write("");
  d = RunCommand({DROPQD_BIN, "--config", path});
  EXPECT_EQ(d.status, 78);
  EXPECT_EQ(d.err.rfind("dropqd: " + path + ": the file is empty", 0), 0u) << d.err;
  path = Write(std::string(kHead) + kQueue + "---\nqueues: []\n");
  d = RunCommand({DROPQD_BIN, "--config", path});
  EXPECT_EQ(d.status, 78);
  EXPECT_EQ(d.err.rfind("dropqd: " + path + ":9: yaml: more than one document", 0), 0u) << d.err;
}

TEST_F(ConfigErrorsTest, CheckConfigNeedsNoRedis) {
  const std::string path = Write(std::string(kHead) + kQueue +
                                 "    on_success: { move_to: @DONE@ }\n"
                                 "    settle: 250ms\n"
                                 "    exclude: [\"*.log\", \"[!a-z]*\"]\n");
  const CommandResult r = RunCommand({DROPQD_BIN, "--check-config", "--config", path});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, path + ": ok (1 queue)\n");
  EXPECT_EQ(r.err, "");

  // The same good file: dropqctl gets past the config and finds no Redis.
  const CommandResult ctl = RunCommand({DROPQCTL_BIN, "--config", path, "status"});
  EXPECT_EQ(ctl.status, 69) << ctl.err;
}

}  // namespace
}  // namespace dropq::test
