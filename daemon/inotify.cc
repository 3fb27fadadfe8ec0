#include "daemon/inotify.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "common/check.h"
#include "common/clock.h"
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

Result<int> Inotify::Watch(const std::string& path, uint32_t mask, const void* owner, Sink sink,
                           int* err) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  // IN_MASK_ADD: another owner's events stay in the mask.
  const int wd = inotify_add_watch(fd_.get(), path.c_str(), mask | IN_ONLYDIR | IN_MASK_ADD);
  if (wd < 0) {
    if (err != nullptr) *err = errno;
    return IoError("inotify_add_watch " + path, errno);
  }
  std::vector<Sub>& subs = watches_[wd];
  for (Sub& s : subs) {
    if (s.owner == owner) {
      s.sink = std::move(sink);  // watched again (the same directory found twice)
      return wd;
    }
  }
  subs.push_back(Sub{owner, std::move(sink)});
  return wd;
}

void Inotify::Unwatch(int wd, const void* owner) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  auto it = watches_.find(wd);
  if (it == watches_.end()) return;
  std::erase_if(it->second, [owner](const Sub& s) { return s.owner == owner; });
  if (it->second.empty()) {
    if (fd_.valid()) inotify_rm_watch(fd_.get(), wd);
    watches_.erase(it);
  }
}

void Inotify::UnwatchAll(const void* owner) {
  std::vector<int> wds;
  for (const auto& [wd, subs] : watches_) {
    for (const Sub& s : subs) {
      if (s.owner == owner) wds.push_back(wd);
    }
  }
  for (int wd : wds) Unwatch(wd, owner);
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

void Inotify::CatchUp() {
  if (fd_.valid() && !paused_ && (!gate_ || gate_())) Drain();
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
      if (errno == EAGAIN) {
        drained_ms_ = MonoMs();
      } else {
        LogError("inotify.read", {{"err", std::strerror(errno)}});
      }
      return;
    }
    // A read that left room for more events took all there were.
    const bool emptied =
        static_cast<size_t>(n) + sizeof(struct inotify_event) + NAME_MAX + 1 <= sizeof buf;
    if (emptied) drained_ms_ = MonoMs();
    for (char* p = buf; p < buf + n;) {
      const auto* ev = reinterpret_cast<const struct inotify_event*>(p);
      p += sizeof(struct inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        ++overflows_;
        LogWarn("inotify.overflow", {{"count", overflows_}});
        if (on_overflow_) on_overflow_();
        continue;
      }
      // dropqd's own opens of directories (a scan's, a resolution beneath
      // the tree) and every open of a directory: dropped before any lookup.
      // Only IN_OPEN of a file matters (a hard link is created without one).
      if ((ev->mask & IN_OPEN) && ((ev->mask & IN_ISDIR) || ev->len == 0)) continue;
      auto it = watches_.find(ev->wd);
      if (it == watches_.end()) continue;  // unwatched since: a stale event
      const std::string_view name = ev->len > 0 ? std::string_view(ev->name) : std::string_view();
      if (ev->mask & IN_IGNORED) {
        std::vector<Sub> lost = std::move(it->second);
        watches_.erase(it);
        for (Sub& s : lost) {
          s.sink(ev->wd, IN_IGNORED, std::string_view());  // the directory is gone
          if (!fd_.valid()) return;
        }
        continue;
      }
      // A sink may call Unwatch() or Stop() (shutdown): copy the sinks first.
      if (it->second.size() == 1) {
        Sink sink = it->second.front().sink;
        sink(ev->wd, ev->mask, name);
      } else {
        std::vector<Sub> subs = it->second;
        for (Sub& s : subs) {
          if (!fd_.valid()) return;
          s.sink(ev->wd, ev->mask, name);
        }
      }
      if (!fd_.valid()) return;
    }
  }
}

}  // namespace dropq
