#include "daemon/service_notifier.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/log.h"

namespace dropq {

ServiceNotifier::ServiceNotifier(uv_loop_t* loop)
    : loop_(loop), enabled_(std::getenv("NOTIFY_SOCKET") != nullptr) {}

void ServiceNotifier::StartWatchdog() {
  uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is ours.
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  // Half the interval, as sd_watchdog_enabled(3) advises: one late turn of
  // the loop does not cost a restart, a stuck loop does.
  period_ms_ = std::max<uint64_t>(1, usec / 2000);
  watchdog_ = MakeTimer(loop_, this);
  uv_timer_start(
      watchdog_.get(),
      [](uv_timer_t* t) { static_cast<ServiceNotifier*>(t->data)->Send("WATCHDOG=1"); }, 0,
      period_ms_);
  LogInfo("systemd.watchdog", {{"interval_ms", usec / 1000}, {"ping_ms", period_ms_}});
}

void ServiceNotifier::StopWatchdog() { watchdog_.Reset(); }

void ServiceNotifier::Ready(const std::string& status) {
  last_status_ = status;
  Send("READY=1\nSTATUS=" + status);
}

void ServiceNotifier::Status(const std::string& status, bool force) {
  if (!force && status == last_status_) return;
  last_status_ = status;
  Send("STATUS=" + status);
}

void ServiceNotifier::Reloading(const std::string& status) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const uint64_t usec =
      static_cast<uint64_t>(ts.tv_sec) * 1000000U + static_cast<uint64_t>(ts.tv_nsec) / 1000U;
  last_status_ = status;
  Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=" + status);
}

void ServiceNotifier::Stopping(const std::string& status) {
  last_status_ = status;
  Send("STOPPING=1\nSTATUS=" + status);
}

void ServiceNotifier::Send(const std::string& message) {
  if (!enabled_) return;
  // sd_notify reads NOTIFY_SOCKET each time and never blocks for long (a
  // datagram to a local socket); a failure is worth one line, not a retry.
  const int rc = sd_notify(0, message.c_str());
  if (rc < 0) {
    static bool logged = false;
    if (!logged) {
      logged = true;
      LogWarn("systemd.notify_failed", {{"err", std::string(std::strerror(-rc))}});
    }
  }
}

}  // namespace dropq
