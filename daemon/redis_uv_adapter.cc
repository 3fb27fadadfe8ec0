#include "daemon/redis_uv_adapter.h"

#include <hiredis/async.h>

namespace dropq {
namespace {

struct PollEvents {
  redisAsyncContext* context;  // null once hiredis cleaned up
  uv_poll_t handle;
  int events = 0;               // UV_READABLE | UV_WRITABLE wanted by hiredis
  int active = 0;               // what the poll handle watches now
  uint64_t* flushes = nullptr;  // counts writes of the output buffer; may be null
};

void Update(PollEvents* p);

void OnPoll(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<PollEvents*>(handle->data);
  if (status < 0) {
    // The socket failed (ECONNRESET, a refused connect...). libuv stopped
    // the handle; let hiredis find out by doing what it waits for.
    p->active = 0;
    events = p->events;
  }
  if (p->context != nullptr && (events & UV_READABLE)) redisAsyncHandleRead(p->context);
  if (p->context != nullptr && (events & UV_WRITABLE)) {
    if (p->flushes != nullptr) ++*p->flushes;
    redisAsyncHandleWrite(p->context);
  }
  // hiredis saw no error after all (the connection lives): watch it again,
  // since libuv stopped the handle when it reported the error.
  if (status < 0 && p->context != nullptr) Update(p);
}

// hiredis asks for writability on every command it queues; restarting the
// poll handle each time would cost an epoll_ctl per command. Only a change
// reaches libuv.
void Update(PollEvents* p) {
  if (p->events == p->active) return;
  p->active = p->events;
  if (p->events != 0) {
    uv_poll_start(&p->handle, p->events, OnPoll);
  } else {
    uv_poll_stop(&p->handle);
  }
}

void AddRead(void* d) {
  auto* p = static_cast<PollEvents*>(d);
  p->events |= UV_READABLE;
  Update(p);
}
void DelRead(void* d) {
  auto* p = static_cast<PollEvents*>(d);
  p->events &= ~UV_READABLE;
  Update(p);
}
void AddWrite(void* d) {
  auto* p = static_cast<PollEvents*>(d);
  p->events |= UV_WRITABLE;
  Update(p);
}
void DelWrite(void* d) {
  auto* p = static_cast<PollEvents*>(d);
  p->events &= ~UV_WRITABLE;
  Update(p);
}
void Cleanup(void* d) {
  auto* p = static_cast<PollEvents*>(d);
  p->context = nullptr;  // the context is being freed
  uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
           [](uv_handle_t* h) { delete static_cast<PollEvents*>(h->data); });
}

}  // namespace

int AttachRedisToLoop(redisAsyncContext* ac, uv_loop_t* loop, uint64_t* flushes) {
  if (ac->ev.data != nullptr) return -1;
  auto* p = new PollEvents{};
  if (int rc = uv_poll_init(loop, &p->handle, ac->c.fd); rc < 0) {
    delete p;  // never seen by libuv: nothing to close
    return rc;
  }
  p->context = ac;
  p->flushes = flushes;
  p->handle.data = p;
  ac->ev.addRead = AddRead;
  ac->ev.delRead = DelRead;
  ac->ev.addWrite = AddWrite;
  ac->ev.delWrite = DelWrite;
  ac->ev.cleanup = Cleanup;
  ac->ev.data = p;
  return 0;
}

}  // namespace dropq
