#include "daemon/pool_work.h"

#include <memory>

namespace dropq {
namespace {

struct Work {
  uv_work_t req;
  std::function<void()> work;
  std::function<void()> done;
};

}  // namespace

int QueueWork(uv_loop_t* loop, std::function<void()> work, std::function<void()> done) {
  auto w = std::make_unique<Work>();
  w->req.data = w.get();
  w->work = std::move(work);
  w->done = std::move(done);
  const int rc = uv_queue_work(
      loop, &w->req, [](uv_work_t* req) { static_cast<Work*>(req->data)->work(); },
      [](uv_work_t* req, int) {
        std::unique_ptr<Work> w(static_cast<Work*>(req->data));
        w->done();
      });
  if (rc == 0) w.release();  // owned by the request until its completion callback
  return rc;
}

}  // namespace dropq
