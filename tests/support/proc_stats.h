// What /proc says about a running process, for the tests that feed dropqd
// hostile input: its peak memory (VmHWM), its CPU time, and whether it spins.
// Everything here only reads /proc. Thread: any.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace dropq::test {

// The value in KiB of a "<field>:  <n> kB" line of /proc/<pid>/status
// (e.g. "VmHWM", "VmRSS"), or -1 if the process or the field is missing.
long ProcStatusKiB(pid_t pid, const std::string& field);

// User plus system CPU time that `pid` has used so far, in milliseconds
// (fields 14 and 15 of /proc/<pid>/stat), or -1.
long long CpuTimeMs(pid_t pid);

// The CPU time `pid` uses while the test sleeps for `window`: a daemon that
// waits for events uses next to nothing, one that busy-loops about `window`.
// -1 if the process is gone.
long long CpuMsOver(pid_t pid, std::chrono::milliseconds window);

}  // namespace dropq::test
