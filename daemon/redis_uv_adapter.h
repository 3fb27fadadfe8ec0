// Plugs a hiredis async context into the libuv loop: hiredis' five event
// hooks (add/del read, add/del write, cleanup) over one uv_poll_t.
//
// Used instead of hiredis 0.14.1's own adapters/libuv.h, which returns from
// its poll callback when libuv reports an error on the socket (a reset
// connection, a refused connect): hiredis then never reads the socket, never
// learns that the connection is gone and never calls its disconnect or
// connect callback, and dropqd would wait on a dead connection forever. Here
// an error is handed to hiredis as readiness, so its own read or write fails
// and it tears the connection down through the usual callbacks.
//
// Ownership: the hooks' state belongs to the context; hiredis calls cleanup
// when it frees the context, which closes the poll handle and frees the state
// in the close callback. Thread: loop.
#pragma once

#include <uv.h>

#include <cstdint>

struct redisAsyncContext;

namespace dropq {

// Attaches `ac` to `loop`. Returns 0, or a negative value if `ac` already has
// an event library attached or the poll handle could not be made. Each time
// hiredis writes its output buffer to the socket (one pipeline flush: every
// command queued since the last one goes out together) `*flushes` grows by
// one; it must outlive `ac` (may be null).
int AttachRedisToLoop(redisAsyncContext* ac, uv_loop_t* loop, uint64_t* flushes);

}  // namespace dropq
