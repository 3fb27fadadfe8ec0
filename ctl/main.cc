// dropqctl: inspect and steer dropq's queues. See ctl/commands.h.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "config/config.h"
#include "ctl/commands.h"
#include "store/redis_sync.h"

int main(int argc, char** argv) {
  using namespace dropq;
  CLI::App app{"dropqctl: inspect and steer dropq queues"};
  app.require_subcommand(1);
  std::string config_path = "/etc/dropq/dropq.yaml";
  bool json = false;
  app.add_option("-c,--config", config_path, "dropq config file")->capture_default_str();
  app.add_flag("--json", json, "print JSON");
  app.set_version_flag("-V,--version", std::string("dropqctl ") + DROPQ_VERSION);

  auto* status = app.add_subcommand("status", "per queue: pending, active, done, failed");
  status->add_flag("--json", json, "print JSON");

  std::string job_id;
  auto* show = app.add_subcommand("show", "print one job record");
  show->add_option("JOB_ID", job_id, "job id")->required();
  show->add_flag("--json", json, "print JSON");

  std::string retry_queue;
  bool all_failed = false;
  auto* retry = app.add_subcommand("retry", "requeue failed jobs (same id, file put back)");
  retry->add_option("JOB_ID", job_id, "job id");
  retry->add_flag("--all-failed", all_failed, "every failed job of --queue");
  retry->add_option("--queue", retry_queue, "queue name (with --all-failed)");
  retry->add_flag("--json", json, "print JSON");

  try {
    app.parse(argc, argv);
    if (retry->parsed()) {
      if (all_failed && (!job_id.empty() || retry_queue.empty())) {
        throw CLI::ValidationError("retry", "--all-failed needs --queue NAME and no JOB_ID");
      }
      if (!all_failed && job_id.empty()) {
        throw CLI::ValidationError("retry", "give JOB_ID or --all-failed --queue NAME");
      }
    }
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return ctl::kUsage;
  }

  auto cfg = LoadConfig(config_path);
  if (!cfg.ok()) {
    std::fprintf(stderr, "dropqctl: %s\n", cfg.error().what.c_str());
    return ctl::kConfigError;
  }
  auto redis = RedisSync::Connect(cfg->redis, std::chrono::seconds(3));
  if (!redis.ok()) {
    std::fprintf(stderr, "dropqctl: %s\n", redis.error().what.c_str());
    return ctl::kUnavailable;
  }
  const ctl::Env env{&*cfg, redis->get(), json};
  try {
    if (status->parsed()) return ctl::Status(env);
    if (show->parsed()) return ctl::Show(env, job_id);
    if (retry->parsed()) {
      return all_failed ? ctl::RetryAllFailed(env, retry_queue) : ctl::Retry(env, job_id);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dropqctl: %s\n", e.what());
    return ctl::kFailed;
  }
  return ctl::kUsage;
}
