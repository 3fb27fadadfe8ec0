// The unit files, checked by systemd's own tools: `systemd-analyze security
// --offline=yes` scores the sandbox (1.2 or lower: most of the surface a
// compromised handler could reach is closed), and `systemd-analyze verify`
// finds nothing to complain about. The template (dropq@.service, generated
// from dropq.service by the build) and the console's unit (dropq-web.service)
// get the same checks.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace dropq::test {
namespace {

const std::string kUnit = std::string(DROPQ_SOURCE_DIR) + "/systemd/dropq.service";
const std::string kTemplate = std::string(DROPQ_BINARY_DIR) + "/systemd/dropq@.service";
const std::string kWebUnit = std::string(DROPQ_SOURCE_DIR) + "/systemd/dropq-web.service";

double ExposureOf(const std::string& unit, std::string* out) {
  CommandResult r = RunCommand({"systemd-analyze", "security", "--offline=yes", unit});
  *out = r.out + r.err;
  std::smatch m;
  static const std::regex kLevel("Overall exposure level for [^:]+: ([0-9.]+)");
  if (!std::regex_search(*out, m, kLevel)) return 99;
  return std::stod(m[1]);
}

// verify needs ExecStart= binaries that exist: a copy of the unit that runs
// the binaries of this build, as an installed one runs /usr/bin's.
std::string VerifyCopy(const TempDir& tmp, const std::string& unit, const std::string& name) {
  std::string text = ReadFile(unit);
  for (const auto& [installed, bin] :
       {std::pair<std::string, std::string>{"/usr/bin/dropqd ", std::string(DROPQD_BIN) + " "},
        {"/usr/bin/dropq-web ", std::string(DROPQ_WEB_BIN) + " "}}) {
    for (size_t at = 0; (at = text.find(installed, at)) != std::string::npos; at += bin.size()) {
      text.replace(at, installed.size(), bin);
    }
  }
  const std::string copy = tmp.Sub(name);
  WriteFile(copy, text);
  return copy;
}

TEST(SystemdUnitTest, SecurityExposureIsAtMost1_2) {
  for (const std::string& unit : {kUnit, kTemplate, kWebUnit}) {
    std::string out;
    const double level = ExposureOf(unit, &out);
    std::printf("[ measure ] %s exposure=%.1f\n", unit.c_str(), level);
    EXPECT_LE(level, 1.2) << out;
  }
}

TEST(SystemdUnitTest, VerifyIsClean) {
  TempDir tmp;
  // verify runs man(1) on each Documentation=man: page: the pages of this
  // build, laid out as an installed manual (MANPATH for those runs only).
  for (const char* page : {"dropqd.8", "dropqctl.1", "dropq.yaml.5", "dropq-web.8"}) {
    const std::string p = page;
    const std::string dir = tmp.Sub("man/man" + p.substr(p.size() - 1));
    std::filesystem::create_directories(dir);
    WriteFile(dir + "/" + p, ReadFile(std::string(DROPQ_BINARY_DIR) + "/docs/man/" + p));
  }
  ::setenv("MANPATH", tmp.Sub("man").c_str(), 1);
  for (const auto& [unit, name] : {std::pair{kUnit, std::string("dropq.service")},
                                   std::pair{kTemplate, std::string("dropq@.service")},
                                   std::pair{kWebUnit, std::string("dropq-web.service")}}) {
    CommandResult r = RunCommand({"systemd-analyze", "verify", VerifyCopy(tmp, unit, name)});
    EXPECT_EQ(r.status, 0) << unit << "\n" << r.out << r.err;
    EXPECT_EQ(r.out + r.err, "") << unit;
  }
  ::unsetenv("MANPATH");
  EXPECT_NE(ReadFile(kUnit).find("Documentation=man:dropqd(8)"), std::string::npos);
}

TEST(SystemdUnitTest, TheUnitsSayWhatTheIssueAsks) {
  const std::string u = ReadFile(kUnit);
  for (const char* line :
       {"Type=notify", "KillMode=mixed", "Restart=on-failure", "RestartPreventExitStatus=78",
        "ExecReload=", "WatchdogSec=", "ProtectSystem=strict", "ReadWritePaths=/srv/dropq",
        "CapabilityBoundingSet=\n", "NoNewPrivileges=yes", "PrivateTmp=yes"}) {
    EXPECT_NE(u.find(line), std::string::npos) << line;
  }
  const std::string t = ReadFile(kTemplate);
  EXPECT_NE(t.find("--config /etc/dropq/%i.yaml"), std::string::npos);
  EXPECT_NE(t.find("ReadWritePaths=/srv/dropq/%i"), std::string::npos);
  // The console: loopback, read-only unless a drop-in adds the token.
  const std::string w = ReadFile(kWebUnit);
  EXPECT_NE(w.find("ExecStart=/usr/bin/dropq-web --config /etc/dropq/dropq.yaml --listen "
                   "127.0.0.1:8080\n"),
            std::string::npos);
  EXPECT_NE(w.find("User=dropq"), std::string::npos);
}

}  // namespace
}  // namespace dropq::test
