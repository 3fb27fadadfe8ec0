#include "daemon/inotify.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/check.h"
#include "common/log.h"

namespace dropq {

Result<std::unique_ptr<Inotify>> Inotify::Create(Loop* loop, std::function<void()> on_overflow) {
  UniqueFd fd(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd.valid()) return IoError("inotify_init1", errno);
  std::unique_ptr<Inotify> in(new Inotify(loop, std::move(fd), std::move(on_overflow)));
  auto p = UvHandle<uv_poll_t>::Make(
      [&](uv_poll_t* h) { return uv_poll_init(loop->get(), h, in->fd_.get()); });
  if (!p.ok()) return p.error();
  in->poll_ = std::move(*p);
  in->poll_.get()->data = in.get();
  if (int rc = uv_poll_start(in->poll_.get(), UV_READABLE, &Inotify::OnReadable); rc < 0) {
    return Error{Errc::kIo, std::string("uv_poll_start: ") + uv_strerror(rc)};
  }
  return in;
}

Inotify::Inotify(Loop* loop, UniqueFd fd, std::function<void()> on_overflow)
    : loop_(loop), fd_(std::move(fd)), on_overflow_(std::move(on_overflow)) {}

Inotify::~Inotify() { Stop(); }

Status Inotify::Watch(const std::string& dir, uint32_t mask, Sink sink) {
  const int wd = inotify_add_watch(fd_.get(), dir.c_str(), mask | IN_ONLYDIR | IN_MOVE_SELF);
  if (wd < 0) return IoError("inotify_add_watch " + dir, errno);
  watches_[wd] = {dir, std::move(sink)};
  return OkStatus();
}

void Inotify::Unwatch(const std::string& dir) {
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (it->second.first == dir) {
      if (fd_.get() >= 0) inotify_rm_watch(fd_.get(), it->first);
      it = watches_.erase(it);
    } else {
      ++it;
    }
  }
}

void Inotify::Stop() {
  poll_.Reset();  // closing the poll handle before the fd it watches
  fd_.Reset();
  watches_.clear();
}

void Inotify::MaybeResume() {
  if (!paused_ || !fd_.valid() || (gate_ && !gate_())) return;
  paused_ = false;
  if (int rc = uv_poll_start(poll_.get(), UV_READABLE, &Inotify::OnReadable); rc < 0) {
    LogError("inotify.poll", {{"err", uv_strerror(rc)}});
  }
}

void Inotify::OnReadable(uv_poll_t* p, int status, int /*events*/) noexcept {
  auto* self = static_cast<Inotify*>(p->data);
  if (status < 0) {
    LogError("inotify.poll", {{"err", uv_strerror(status)}});
    return;
  }
  self->Drain();
}

void Inotify::Drain() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  alignas(struct inotify_event) char buf[64 * 1024];
  // Bounded, so that one busy directory cannot starve the rest of the loop;
  // the poll handle is level-triggered and comes back for the rest.
  for (int round = 0; round < 8 && fd_.valid(); ++round) {
    if (gate_ && !gate_()) {
      paused_ = true;
      uv_poll_stop(poll_.get());
      return;
    }
    const ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) LogError("inotify.read", {{"err", std::strerror(errno)}});
      return;
    }
    for (char* p = buf; p < buf + n;) {
      const auto* ev = reinterpret_cast<const struct inotify_event*>(p);
      p += sizeof(struct inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        ++overflows_;
        LogWarn("inotify.overflow", {{"count", overflows_}});
        if (on_overflow_) on_overflow_();
        continue;
      }
      auto it = watches_.find(ev->wd);
      if (it == watches_.end()) continue;
      if (ev->mask & IN_MOVE_SELF) {
        // Renamed away: its events would now come from the wrong path. Drop
        // the watch; IN_IGNORED follows and tells the sink.
        inotify_rm_watch(fd_.get(), ev->wd);
        continue;
      }
      if (ev->mask & IN_IGNORED) {
        Sink lost = std::move(it->second.second);
        watches_.erase(it);
        lost(IN_IGNORED, std::string_view());  // the directory is gone (or moved away)
        if (!fd_.valid()) return;
        continue;
      }
      const std::string_view name = ev->len > 0 ? std::string_view(ev->name) : std::string_view();
      // The sink may call Stop() (shutdown): copy it out of the map first.
      Sink sink = it->second.second;
      sink(ev->mask, name);
      if (!fd_.valid()) return;
    }
  }
}

}  // namespace dropq
