// dropqd: watches directories, queues every complete file in Redis and runs
// the configured handler on it with a pool of workers.
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "config/config.h"
#include "config/secrets.h"
#include "daemon/daemon.h"

int main(int argc, char** argv) {
  CLI::App app{"dropqd: watch directories, queue each complete file in Redis, run its handler."};
  std::string config_path = "/etc/dropq/dropq.yaml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "config file")->capture_default_str();
  app.add_flag("--check-config", check_only, "validate the config (no Redis) and exit");
  app.set_version_flag("-V,--version", std::string("dropqd ") + DROPQ_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 64;  // EX_USAGE
  }

  auto cfg = dropq::LoadConfig(config_path);
  if (!cfg.ok()) {
    std::fprintf(stderr, "dropqd: %s\n", cfg.error().what.c_str());
    return 78;  // EX_CONFIG
  }
  if (check_only) {
    std::printf("%s: ok (%zu queue%s)\n", config_path.c_str(), cfg->queues.size(),
                cfg->queues.size() == 1 ? "" : "s");
    return 0;
  }
  dropq::HideEnvFromHandlers(cfg->secret_env);
  if (cfg->has_secrets && !dropq::ProtectSecretsInMemory()) {
    std::fprintf(stderr, "dropqd: prctl(PR_SET_DUMPABLE): %s\n", std::strerror(errno));
    return 71;  // EX_OSERR: secrets would be readable by every process of dropq's user
  }
  dropq::SetLogLevel(cfg->log_level);
  dropq::Daemon daemon(std::move(*cfg));
  return daemon.Run();
}
