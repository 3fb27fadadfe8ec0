// Process runs a real child program for a test (posix_spawn, its own
// process group), captures its stdout and stderr into files, and can signal
// it, wait for it with a deadline, and kill it when destroyed.
// RunCommand() runs one program to completion and returns its status and output.
// Thread: owner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace dropq::test {

class Process {
 public:
  // Starts argv[0] (searched in PATH if it has no '/'), output to `log_path`
  // (stdout and stderr together).
  Process(std::vector<std::string> argv, std::string log_path);
  ~Process();  // SIGKILLs the process group if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int sig);
  // Waits for the exit; returns the exit status (128+signal if killed), or
  // nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // The output so far.
  std::string Log() const;

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct CommandResult {
  int status = -1;  // exit status, 128+signal if killed
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `argv` to completion (at most `timeout`), capturing stdout and stderr.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace dropq::test
