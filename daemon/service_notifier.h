// ServiceNotifier tells the service manager how dropqd is doing, through
// libsystemd's sd_notify(3): READY=1 once every watch is in place, STATUS=
// one-line summaries, RELOADING=1 around a reload, STOPPING=1 when draining,
// and WATCHDOG=1 from the event loop itself at half of WatchdogSec=, so that
// a loop that stops turning stops the pings and systemd restarts the
// service. Without NOTIFY_SOCKET in the environment (not under systemd, or
// Type=simple) every call does nothing.
//
// Thread: loop (the watchdog timer runs on it; that is the point).
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

#include "daemon/uv_handle.h"

namespace dropq {

class ServiceNotifier {
 public:
  // `loop` must outlive the notifier.
  explicit ServiceNotifier(uv_loop_t* loop);
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // Starts the watchdog pings if systemd asked for them (WATCHDOG_USEC for
  // this pid); logs the interval. Call once, from the loop thread.
  void StartWatchdog();
  // Stops the pings (the loop is about to end).
  void StopWatchdog();

  // READY=1 with a STATUS= line (also after a reload: ends RELOADING=1).
  void Ready(const std::string& status);
  // STATUS=<status>, only sent when it changed or `force`.
  void Status(const std::string& status, bool force = false);
  // RELOADING=1 plus MONOTONIC_USEC=, as systemd 253+ wants for Type=notify-reload.
  void Reloading(const std::string& status);
  // STOPPING=1 with a STATUS= line.
  void Stopping(const std::string& status);

  bool under_systemd() const { return enabled_; }
  // The ping period in ms (0: no watchdog).
  uint64_t watchdog_period_ms() const { return period_ms_; }

 private:
  void Send(const std::string& message);

  uv_loop_t* const loop_;
  const bool enabled_;
  uint64_t period_ms_ = 0;
  std::string last_status_;
  UvHandle<uv_timer_t> watchdog_;
};

}  // namespace dropq
