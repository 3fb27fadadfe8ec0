// dropqctl: inspect and steer dropq's queues. See ctl/commands.h.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <tuple>

#include "common/clock.h"
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
  // The filters of list, retry and purge (ctl/job_query.h), as the console has them.
  JobFilter filter;
  std::string since, until;
  const auto filter_options = [&](CLI::App* sub) {
    sub->add_option("--match", filter.match,
                    "name (relative path): a substring, or a glob if it holds * ? [");
    sub->add_option("--id", filter.id_prefix, "job id starts with this");
    sub->add_option("--error", filter.error, "error text holds this (any case)");
    sub->add_option("--since", since, "at most this long ago (e.g. 1h, 30m, 7d)");
    sub->add_option("--until", until, "at least this long ago");
  };

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
  filter_options(list);
  json_flag(list);

  std::string job_id;
  auto* show = app.add_subcommand("show", "print one job record");
  show->add_option("JOB_ID", job_id, "job id")->required();
  json_flag(show);

  bool all_failed = false;
  auto* retry = app.add_subcommand("retry", "requeue failed jobs (same id, file put back)");
  retry->add_option("JOB_ID", job_id, "job id");
  retry->add_flag("--all-failed", all_failed, "every failed job of --queue");
  retry->add_option("--queue", queue, "queue name (with --all-failed or a filter)");
  filter_options(retry);
  json_flag(retry);

  std::string older_than = "0s";
  auto* purge = app.add_subcommand("purge", "delete records of done or failed jobs");
  purge->add_option("--state", state, "done|failed")
      ->required()
      ->check(CLI::IsMember({"done", "failed"}));
  purge->add_option("--queue", queue, "queue name")->required();
  purge->add_option("--older-than", older_than, "only jobs finished longer ago (e.g. 7d, 12h)");
  filter_options(purge);
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
    const bool filtered = !filter.match.empty() || !filter.id_prefix.empty() ||
                          !filter.error.empty() || !since.empty() || !until.empty();
    if (retry->parsed()) {
      if ((all_failed || filtered) && (!job_id.empty() || queue.empty())) {
        throw CLI::ValidationError("retry",
                                   "--all-failed and filters need --queue NAME and no JOB_ID");
      }
      if (!all_failed && !filtered && job_id.empty()) {
        throw CLI::ValidationError("retry",
                                   "give JOB_ID, or --queue NAME with --all-failed or a filter");
      }
    }
    const int64_t now = NowUnixMs();
    for (auto [text, bound, name] : {std::tuple{&since, &filter.since_ms, "--since"},
                                     std::tuple{&until, &filter.until_ms, "--until"}}) {
      if (text->empty()) continue;
      auto d = ParseDuration(*text);
      if (!d.ok()) throw CLI::ValidationError(name, d.error().what);
      *bound = now - d->count();
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
    if (list->parsed()) return ctl::List(env, queue, state, limit, filter);
    if (show->parsed()) return ctl::Show(env, job_id);
    if (retry->parsed()) {
      return job_id.empty() ? ctl::RetryMatching(env, queue, filter) : ctl::Retry(env, job_id);
    }
    if (purge->parsed()) return ctl::Purge(env, queue, state, older_than_ms, filter);
    if (pause->parsed()) return ctl::SetPaused(env, queue, true);
    if (resume->parsed()) return ctl::SetPaused(env, queue, false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dropqctl: %s\n", e.what());
    return ctl::kFailed;
  }
  return ctl::kUsage;
}
