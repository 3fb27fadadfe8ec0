// Small helpers shared by the end-to-end tests (tests/e2e/): handler
// scripts, file ages, reading job records out of Redis, dropqctl's JSON, and
// checks on processes and logs. Everything here observes; nothing changes
// dropqd's behaviour. Thread: owner (the test).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"

namespace dropq::test {

// Writes `body` (a /bin/sh script, "#!/bin/sh\n" prepended) to `path`,
// mode 0755, and returns `path`.
std::string WriteScript(const std::string& path, const std::string& body);

// Sets the access and modification times of `path` to now minus `age`.
// Returns false (and adds a test failure) on error.
bool SetAge(const std::string& path, std::chrono::seconds age);

// How long ago `path` was last modified (its mtime); zero if it cannot be read.
std::chrono::milliseconds FileAge(const std::string& path);

// Writes `content` to `staging` (a scratch path outside the watched
// directory), then renames it to `dest`: how an atomic upload arrives.
void WriteAndRename(const std::string& staging, const std::string& dest,
                    const std::string& content);

// Lines of the file at `path` ('\n' separated; a last line without '\n'
// counts too). Empty if the file does not exist.
std::vector<std::string> ReadLines(const std::string& path);
// The same for text in memory.
std::vector<std::string> SplitLines(const std::string& text);
// Pieces of `s`, each ended by a NUL (a trailing piece without one is dropped).
std::vector<std::string> SplitNul(const std::string& s);
// Number of times `needle` occurs in `haystack`.
size_t Count(const std::string& haystack, const std::string& needle);
// How many times each line occurs.
std::map<std::string, int> Tally(const std::vector<std::string>& lines);

// Every job id of `queue`: those with a record (KEYS <prefix>:{queue}:job:*)
// and those never claimed (their "<id> <name>" entries in :pending).
std::vector<std::string> JobIds(const RedisServer& redis, const std::string& queue);
// One job record as field -> value; for a job never claimed, which has no
// record, {name, state: pending} from its :pending entry; empty if neither.
std::map<std::string, std::string> JobRecord(const RedisServer& redis, const std::string& queue,
                                             const std::string& id);
// File name -> ids of every job record with that name.
std::map<std::string, std::vector<std::string>> JobIdsByName(const RedisServer& redis,
                                                             const std::string& queue);
// The id of the only job of `queue` named `name`; "" if there is none (yet) or several.
std::string OnlyJobId(const RedisServer& redis, const std::string& queue, const std::string& name);

// The checks a test ends with after feeding dropqd something hostile: it
// still runs, `dropqctl status` answers 0, and its peak RSS (VmHWM, printed
// as a measure) stayed below `max_hwm_kib`.
void ExpectDaemonHealthy(DropqEnv& env, long max_hwm_kib);

// HGET <prefix>:{queue}:counts <counter>, 0 if absent.
long long StatCounter(const RedisServer& redis, const std::string& queue,
                      const std::string& counter);
// Waits (up to `timeout`) until queue q's stats count `done` done and
// `failed` failed jobs; false if they did not get there.
bool WaitForOutcomes(const RedisServer& redis, long long done, long long failed,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));
// The handler map entry of an exec handler that fails at once (exit 65: no
// retry) for file names starting with `prefix` and succeeds for the others.
std::string FailingForPrefixHandler(const std::string& prefix);

// Replaces the top-level `drain_timeout: 10s` that DropqEnv::WriteConfig()
// writes with `value` (WriteConfig() has no parameter for it, and a second
// key would be a duplicate). Call after WriteConfig().
void SetDrainTimeout(DropqEnv& env, const std::string& value);

// DROPQ_TEST_ASAN is 1 in an AddressSanitizer build, gcc's or clang's (gcc
// defines __SANITIZE_ADDRESS__, clang answers __has_feature), else 0.
#if defined(__SANITIZE_ADDRESS__)
#define DROPQ_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DROPQ_TEST_ASAN 1
#endif
#endif
#ifndef DROPQ_TEST_ASAN
#define DROPQ_TEST_ASAN 0
#endif

// Under AddressSanitizer, freed memory sits in a quarantine (256 MiB by
// default), so RSS grows with allocation churn whatever dropqd holds. Tests
// that measure dropqd's memory call this before starting it: every process
// started afterwards runs without the quarantine. No-op in other builds.
void DisableAsanQuarantine();

// Writes a config for a second instance on the same Redis and queue: env's
// config with `instance: test-1` replaced by `instance`, and, if `role` is
// not empty, the queue's role set to it. Returns the new file's path
// (<tmp>/<instance>.yaml). Call after WriteConfig().
std::string WriteInstanceConfig(DropqEnv& env, const std::string& instance,
                                const std::string& role = "");

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(const std::string& data);

// True once `pid` no longer runs: gone, or a zombie (a PID 1 that does not
// reap, as in some containers, leaves one behind).
bool ProcessGone(pid_t pid);

// The integer in the file at `path` ("1234\n"), or -1.
pid_t ReadPid(const std::string& path);

// Every path under `root` (recursively) whose last component is `name`, or
// "<job id>.<name>" (the file in a flat processing area).
std::vector<std::string> FindNamed(const std::string& root, const std::string& name);

// A loopback TCP port free a moment ago (for metrics.listen), or -1.
int FreePort();

// GET http://127.0.0.1:<port>/metrics: {status line, body}; status "" on failure.
std::pair<std::string, std::string> GetMetrics(int port);

}  // namespace dropq::test
