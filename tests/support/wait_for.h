// WaitFor polls a condition until it holds or a deadline passes. Tests wait
// on conditions with a deadline, never on a bare sleep.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace dropq::test {

// Returns true as soon as `cond` returns true; false once `timeout` passed.
inline bool WaitFor(const std::function<bool()>& cond,
                    std::chrono::milliseconds timeout = std::chrono::seconds(20),
                    std::chrono::milliseconds step = std::chrono::milliseconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

}  // namespace dropq::test
