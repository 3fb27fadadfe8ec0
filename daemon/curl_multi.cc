#include "daemon/curl_multi.h"

#include <mutex>
#include <utility>
#include <vector>

#include "common/check.h"
#include "common/log.h"

namespace dropq {
namespace {

std::once_flag curl_init_once;

}  // namespace

CurlMulti::CurlMulti(uv_loop_t* loop) : loop_(loop), timer_(MakeTimer(loop, this)) {
  // Thread-safe from libcurl 7.84 on; dropqd calls it before its threads anyway.
  std::call_once(curl_init_once, [] { DROPQ_CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == 0); });
  multi_ = curl_multi_init();
  DROPQ_CHECK(multi_ != nullptr);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlMulti::OnSocket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlMulti::OnTimer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
}

CurlMulti::~CurlMulti() {
  for (auto& [easy, done] : done_) curl_multi_remove_handle(multi_, easy);
  done_.clear();
  curl_multi_cleanup(multi_);   // closes cached connections: their sockets are removed here
  for (Socket* s : sockets_) {  // any libcurl did not hand back
    uv_poll_stop(s->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(s->poll),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    delete s;
  }
  sockets_.clear();
  uv_timer_stop(timer_.get());
}

Status CurlMulti::Add(CURL* easy, Done done) {
  const CURLMcode rc = curl_multi_add_handle(multi_, easy);
  if (rc != CURLM_OK) return Error{Errc::kIo, std::string("curl: ") + curl_multi_strerror(rc)};
  done_[easy] = std::move(done);
  return OkStatus();
}

void CurlMulti::Remove(CURL* easy) {
  if (done_.erase(easy) == 0) return;
  curl_multi_remove_handle(multi_, easy);
}

int CurlMulti::OnSocket(CURL* /*easy*/, curl_socket_t fd, int what, void* userp,
                        void* socketp) noexcept {
  auto* self = static_cast<CurlMulti*>(userp);
  auto* s = static_cast<Socket*>(socketp);
  if (what == CURL_POLL_REMOVE) {
    if (s != nullptr) {
      // libcurl may close the socket after this returns: stop watching it
      // now (uv_close stops the poll; a uv_poll_stop first would cost one
      // more epoll_ctl).
      curl_multi_assign(self->multi_, fd, nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(s->poll),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      self->sockets_.erase(s);
      delete s;
    }
    return 0;
  }
  if (s == nullptr) {
    auto* poll = new uv_poll_t{};
    if (const int rc = uv_poll_init_socket(self->loop_, poll, fd); rc < 0) {
      delete poll;  // never seen by libuv
      LogError("http.poll", {{"err", uv_strerror(rc)}});
      return -1;  // libcurl fails the transfer
    }
    s = new Socket{self, fd, poll};
    poll->data = s;
    self->sockets_.insert(s);
    curl_multi_assign(self->multi_, fd, s);
  }
  int events = 0;
  if ((what & CURL_POLL_IN) != 0) events |= UV_READABLE;
  if ((what & CURL_POLL_OUT) != 0) events |= UV_WRITABLE;
  // Every uv_poll_start() is an epoll_ctl DEL and ADD: only for a change.
  if (events == s->events) return 0;
  s->events = events;
  uv_poll_start(s->poll, events, &CurlMulti::OnPoll);
  return 0;
}

int CurlMulti::OnTimer(CURLM* /*multi*/, long timeout_ms, void* userp) noexcept {
  auto* self = static_cast<CurlMulti*>(userp);
  if (timeout_ms < 0) {
    uv_timer_stop(self->timer_.get());
  } else {
    // 0: "now", but never from inside this callback: on the next turn.
    uv_timer_start(self->timer_.get(), &CurlMulti::OnTimeout, static_cast<uint64_t>(timeout_ms), 0);
  }
  return 0;
}

void CurlMulti::OnPoll(uv_poll_t* h, int status, int events) noexcept {
  auto* s = static_cast<Socket*>(h->data);
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if ((events & UV_READABLE) != 0) flags |= CURL_CSELECT_IN;
    if ((events & UV_WRITABLE) != 0) flags |= CURL_CSELECT_OUT;
  }
  s->owner->Act(s->fd, flags);
}

void CurlMulti::OnTimeout(uv_timer_t* t) noexcept {
  static_cast<CurlMulti*>(t->data)->Act(CURL_SOCKET_TIMEOUT, 0);
}

void CurlMulti::Act(curl_socket_t fd, int ev_bitmask) {
  int running = 0;
  curl_multi_socket_action(multi_, fd, ev_bitmask, &running);
  ReapDone();
}

void CurlMulti::ReapDone() {
  if (reaping_) return;  // a Done that ended another transfer: this loop takes it
  reaping_ = true;
  std::vector<std::pair<CURL*, CURLcode>> ended;
  for (;;) {
    ended.clear();
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
      if (m->msg == CURLMSG_DONE) ended.emplace_back(m->easy_handle, m->data.result);
    }
    if (ended.empty()) break;
    for (const auto& [easy, result] : ended) {
      auto it = done_.find(easy);
      if (it == done_.end()) continue;  // removed by an earlier Done of this batch
      Done done = std::move(it->second);
      done_.erase(it);
      curl_multi_remove_handle(multi_, easy);
      try {
        done(easy, result);
      } catch (const std::exception& e) {
        LogError("http.callback", {{"err", e.what()}});
      }
    }
  }
  reaping_ = false;
}

}  // namespace dropq
