// The Debian package: `cpack -G DEB` on this build makes dropq_<v>_<arch>.deb,
// and dpkg-deb shows what apt-get would install: the binaries in /usr/bin,
// the config as a conffile, the units, sysusers and tmpfiles entries, the
// maintainer scripts, the manual pages, and Depends: naming the Debian libraries it links.
// (Installing it into a debootstrap tree and booting it is scripts/test
// --long's job: tests/long/deb_boot.sh.)
#include <gtest/gtest.h>

#include <string>

#include "tests/support/e2e_helpers.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace dropq::test {
namespace {

TEST(PackageTest, CpackBuildsADebThatDeclaresItsDependencies) {
  TempDir tmp;
  CommandResult pack =
      RunCommand({"cpack", "-G", "DEB", "--config",
                  std::string(DROPQ_BINARY_DIR) + "/CPackConfig.cmake", "-B", tmp.path()},
                 std::chrono::minutes(5));
  ASSERT_EQ(pack.status, 0) << pack.out << pack.err;
  std::string deb;
  for (const std::string& n : ListDir(tmp.path())) {
    if (n.size() > 4 && n.substr(n.size() - 4) == ".deb") deb = tmp.Sub(n);
  }
  ASSERT_FALSE(deb.empty()) << pack.out;
  EXPECT_NE(deb.find("/dropq_"), std::string::npos) << deb;

  CommandResult depends = RunCommand({"dpkg-deb", "-f", deb, "Package", "Depends", "Recommends"});
  ASSERT_EQ(depends.status, 0) << depends.err;
  std::printf("[ measure ] %s", depends.out.c_str());
  for (const char* d :
       {"Package: dropq", "libuv1", "libhiredis0.14", "libyaml-cpp0.7", "libsystemd0", "libssl3",
        "systemd", "procps", "Recommends: redis-server"}) {
    EXPECT_NE(depends.out.find(d), std::string::npos) << d << "\n" << depends.out;
  }

  CommandResult contents = RunCommand({"dpkg-deb", "-c", deb});
  ASSERT_EQ(contents.status, 0) << contents.err;
  for (const char* f :
       {"./usr/bin/dropqd", "./usr/bin/dropqctl", "./etc/dropq/dropq.yaml",
        "./usr/lib/systemd/system/dropq.service", "./usr/lib/systemd/system/dropq@.service",
        "./usr/lib/sysusers.d/dropq.conf", "./usr/lib/tmpfiles.d/dropq.conf",
        "./usr/share/doc/dropq/README.md", "./usr/share/doc/dropq/examples/dropq.example.yaml",
        "./usr/share/doc/dropq/serve-protocol.md", "./usr/share/doc/dropq/examples/serve_sha256.py",
        "./usr/share/doc/dropq/examples/serve_lines.sh", "./usr/share/man/man8/dropqd.8.gz",
        "./usr/share/man/man1/dropqctl.1.gz", "./usr/share/man/man5/dropq.yaml.5.gz"}) {
    EXPECT_NE(contents.out.find(std::string(f) + "\n"), std::string::npos) << f << "\n"
                                                                           << contents.out;
  }

  const std::string ctrl = tmp.Sub("control");
  ASSERT_EQ(RunCommand({"dpkg-deb", "-e", deb, ctrl}).status, 0);
  EXPECT_EQ(ReadFile(ctrl + "/conffiles"), "/etc/dropq/dropq.yaml\n");
  for (const char* script : {"postinst", "prerm", "postrm"}) {
    EXPECT_NE(ReadFile(ctrl + "/" + script).find("#!/bin/sh"), std::string::npos) << script;
  }
  EXPECT_NE(ReadFile(ctrl + "/postinst").find("systemd-sysusers"), std::string::npos);

  // The packaged config is one dropqd accepts, once the directories its
  // tmpfiles.d entry makes exist (here under a scratch /srv/dropq).
  const std::string root = tmp.Sub("root");
  ASSERT_EQ(RunCommand({"dpkg-deb", "-x", deb, root}).status, 0);
  std::string config = ReadFile(root + "/etc/dropq/dropq.yaml");
  const std::string srv = tmp.Sub("srv/dropq");
  for (size_t at = 0; (at = config.find("/srv/dropq", at)) != std::string::npos; at += srv.size()) {
    config.replace(at, 10, srv);
  }
  for (const std::string& line : ReadLines(root + "/usr/lib/tmpfiles.d/dropq.conf")) {
    if (line.rfind("d /srv/dropq", 0) == 0) {
      tmp.Mkdir("srv" + line.substr(6, line.find(' ', 2) - 6));
    }
  }
  const std::string copy = tmp.Sub("dropq.yaml");
  WriteFile(copy, config);
  CommandResult check = RunCommand({DROPQD_BIN, "--check-config", "--config", copy});
  EXPECT_EQ(check.status, 0) << check.out << check.err;
}

}  // namespace
}  // namespace dropq::test
