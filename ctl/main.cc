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
  app.footer(
      "Exit status: 0 ok, 1 not found or failed, 64 usage, 69 Redis unreachable, 78 bad "
      "config.\nRun `dropqctl COMMAND --help` for a command's options.");
  std::string config_path = "/etc/dropq/dropq.yaml";
  bool json = false;
  app.add_option("-c,--config", config_path, "dropq config file")->capture_default_str();
  app.add_flag("--json", json, "print JSON");
  app.set_version_flag("-V,--version", std::string("dropqctl ") + DROPQ_VERSION);
  const auto json_flag = [&](CLI::App* sub) { sub->add_flag("--json", json, "print JSON"); };

  auto* status = app.add_subcommand("status", "per queue: pending, active, done, failed, paused");
  json_flag(status);

  std::string queue, state;
  int64_t limit = 50;
  auto* list = app.add_subcommand("list", "list a queue's jobs in one state");
  list->add_option("QUEUE", queue, "queue name")->required();
  list->add_option("--state", state, "pending|active|scheduled|failed|done")
      ->required()
      ->check(CLI::IsMember({"pending", "active", "scheduled", "failed", "done"}));
  list->add_option("--limit", limit, "at most this many")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  json_flag(list);

  std::string job_id;
  auto* show = app.add_subcommand("show", "print one job record");
  show->add_option("JOB_ID", job_id, "job id")->required();
  json_flag(show);

  bool all_failed = false;
  auto* retry = app.add_subcommand("retry", "requeue failed jobs (same id, file put back)");
  retry->add_option("JOB_ID", job_id, "job id");
  retry->add_flag("--all-failed", all_failed, "every failed job of --queue");
  retry->add_option("--queue", queue, "queue name (with --all-failed)");
  json_flag(retry);

  std::string older_than = "0s";
  auto* purge = app.add_subcommand("purge", "delete records of done or failed jobs");
  purge->add_option("--state", state, "done|failed")
      ->required()
      ->check(CLI::IsMember({"done", "failed"}));
  purge->add_option("--queue", queue, "queue name")->required();
  purge->add_option("--older-than", older_than, "only jobs finished longer ago (e.g. 7d, 12h)");
  json_flag(purge);

  auto* pause = app.add_subcommand("pause", "start no new jobs of QUEUE, on every instance");
  pause->add_option("QUEUE", queue, "queue name")->required();
  json_flag(pause);
  auto* resume = app.add_subcommand("resume", "start jobs of QUEUE again");
  resume->add_option("QUEUE", queue, "queue name")->required();
  json_flag(resume);

  int64_t older_than_ms = 0;
  try {
    app.parse(argc, argv);
    if (retry->parsed()) {
      if (all_failed && (!job_id.empty() || queue.empty())) {
        throw CLI::ValidationError("retry", "--all-failed needs --queue NAME and no JOB_ID");
      }
      if (!all_failed && job_id.empty()) {
        throw CLI::ValidationError("retry", "give JOB_ID or --all-failed --queue NAME");
      }
    }
    if (purge->parsed()) {
      auto d = ParseDuration(older_than);
      if (!d.ok()) throw CLI::ValidationError("--older-than", d.error().what);
      older_than_ms = d->count();
    }
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return ctl::kUsage;
  }

  // Redis' secrets only: an operator's shell needs no handler's token.
  auto cfg = LoadConfig(config_path, LoadOptions{.handler_secrets = false});
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
    if (list->parsed()) return ctl::List(env, queue, state, limit);
    if (show->parsed()) return ctl::Show(env, job_id);
    if (retry->parsed()) {
      return all_failed ? ctl::RetryAllFailed(env, queue) : ctl::Retry(env, job_id);
    }
    if (purge->parsed()) return ctl::Purge(env, queue, state, older_than_ms);
    if (pause->parsed()) return ctl::SetPaused(env, queue, true);
    if (resume->parsed()) return ctl::SetPaused(env, queue, false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dropqctl: %s\n", e.what());
    return ctl::kFailed;
  }
  return ctl::kUsage;
}
