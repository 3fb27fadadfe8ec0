#include "tests/support/run_check.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "tests/support/e2e_helpers.h"

namespace dropq::test {

namespace {

// What the handler log says about the runs of each file.
struct Runs {
  std::map<std::string, int> starts, ends;
  int overlaps = 0;
  int unfinished = 0;
};

Runs ReadRuns(const std::string& log) {
  Runs r;
  std::map<std::string, std::set<std::string>> open;  // name -> pids of runs not yet ended
  for (const std::string& line : ReadLines(log)) {
    std::istringstream in(line);
    std::string name, pid, what;
    if (!(in >> name >> pid >> what)) {
      ADD_FAILURE() << "bad handler log line: " << line;
      continue;
    }
    if (what == "start") {
      ++r.starts[name];
      if (!open[name].empty()) ++r.overlaps;
      open[name].insert(pid);
    } else if (what == "end") {
      ++r.ends[name];
      open[name].erase(pid);
    }
  }
  for (const auto& [name, pids] : open) r.unfinished += static_cast<int>(pids.size());
  return r;
}

}  // namespace

std::string RunLogHandler(const std::string& script, const std::string& log,
                          const std::string& sleep) {
  WriteScript(script,
              "echo \"$2 $$ start\" >> \"$1\"\n"
              "sleep " +
                  sleep +
                  "\n"
                  "echo \"$2 $$ end\" >> \"$1\"\n");
  return "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\"]";
}

std::string RunCheck::Summary() const {
  std::ostringstream s;
  s << "files=" << files << " unprocessed=" << unprocessed << " lost=" << lost
    << " duplicates=" << duplicates << " unexplained_duplicates=" << unexplained
    << " overlaps=" << overlaps << " unfinished_runs=" << unfinished << " not_done=" << not_done;
  return s.str();
}

RunCheck CheckRuns(const DropqEnv& env, const RedisServer& redis, const std::string& log,
                   const std::vector<std::string>& names) {
  RunCheck c;
  c.files = static_cast<int>(names.size());
  const Runs runs = ReadRuns(log);
  c.overlaps = runs.overlaps;
  c.unfinished = runs.unfinished;
  const auto by_name = JobIdsByName(redis, "q");
  const std::set<std::string> in_done = [&] {
    const std::vector<std::string> v = ListDir(env.done);
    return std::set<std::string>(v.begin(), v.end());
  }();
  std::multiset<std::string> under_inbox;  // names of the files left on the inbox side
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(env.inbox, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) under_inbox.insert(it->path().filename().string());
  }
  const auto detail = [&](const std::string& line) {
    if (c.details.size() < 10) c.details.push_back(line);
  };
  for (const std::string& n : names) {
    const int starts = runs.starts.count(n) ? runs.starts.at(n) : 0;
    const int ends = runs.ends.count(n) ? runs.ends.at(n) : 0;
    if (ends < 1 || in_done.count(n) == 0) {
      ++c.unprocessed;
      const size_t in_inbox = under_inbox.count(n);
      if (in_done.count(n) == 0 && in_inbox == 0) ++c.lost;
      detail(n + ": runs finished " + std::to_string(ends) + ", in done/ " +
             std::to_string(in_done.count(n)) + ", under the inbox " + std::to_string(in_inbox));
    }
    if (by_name.count(n) == 0 || by_name.at(n).size() != 1) {
      ++c.not_done;
      detail(n + ": " + std::to_string(by_name.count(n) ? by_name.at(n).size() : 0) + " jobs");
      continue;
    }
    const std::string& id = by_name.at(n)[0];
    auto rec = JobRecord(redis, "q", id);
    if (rec["state"] != "done") {
      ++c.not_done;
      detail(n + ": job " + id + " state=" + rec["state"] + " phase=" + rec["phase"] +
             " result=" + rec["result"]);
    }
    if (starts > 1) {
      c.duplicates += starts - 1;
      const int interrupted = std::atoi(rec["interrupted"].c_str());
      if (starts - 1 > interrupted) {
        c.unexplained += starts - 1 - interrupted;
        detail(n + " ran " + std::to_string(starts) + " times, its job " + id +
               " counts interrupted=" + std::to_string(interrupted));
      }
    }
  }
  return c;
}

}  // namespace dropq::test
