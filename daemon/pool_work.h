// QueueWork runs blocking work (readdir, rename, lstat...) on libuv's
// threadpool and its continuation back on the loop thread, without a
// hand-made uv_work_t struct per use.
#pragma once

#include <uv.h>

#include <functional>

namespace dropq {

// Runs `work` on a threadpool thread, then `done` on the loop thread (also
// when the loop is closing: libuv still calls it). Both are owned until then.
// Returns 0, or a negative uv error if the work could not be queued; then
// neither function runs. Thread: loop.
int QueueWork(uv_loop_t* loop, std::function<void()> work, std::function<void()> done);

}  // namespace dropq
