#include "daemon/disposer.h"

#include <uv.h>

#include <algorithm>

#include "common/check.h"
#include "daemon/pool_work.h"
#include "workers/processing.h"

namespace dropq {
namespace {

// Few enough per item that a slow move (a copy to another filesystem) holds
// back only a handful of acknowledgements.
constexpr size_t kPerItem = 8;

struct Item {
  Disposer::Move move;
  Result<std::string> where{std::string()};
};

}  // namespace

Disposer::Disposer(Loop* loop, std::string watch, AreaLayout layout, std::string area,
                   std::shared_ptr<SpareDirs> spares, Done done)
    : loop_(loop),
      watch_(std::move(watch)),
      layout_(layout),
      area_(std::move(area)),
      spares_(std::move(spares)),
      done_(std::move(done)),
      shared_(std::make_shared<Shared>(Shared{this})) {}

Disposer::~Disposer() { shared_->owner = nullptr; }

void Disposer::Report(const std::string& id, Result<std::string> where) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  --in_flight_;
  done_(id, std::move(where));
}

void Disposer::Start(std::vector<Move> moves) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  for (size_t first = 0; first < moves.size(); first += kPerItem) {
    auto items = std::make_shared<std::vector<Item>>();
    for (size_t i = first; i < std::min(moves.size(), first + kPerItem); ++i) {
      items->push_back(Item{std::move(moves[i])});
    }
    in_flight_ += static_cast<int>(items->size());
    const int rc = QueueWork(
        loop_->get(),
        [items, watch = watch_, layout = layout_, area = area_, spares = spares_] {  // threadpool
          for (Item& it : *items) {
            Move& m = it.move;
            if (m.src.empty()) m.src = LocateWork(layout, watch, area, m.id, m.name);
            if (m.src != watch + "/" + m.name) m.opt.keep_dir = watch;  // home for kKeep
            m.opt.mode_root = watch;  // modes of the directories a move makes
            it.where = Dispose(m.d, m.src, m.name, m.id, m.opt);
            if (InJobDir(area, m.id, m.src) &&
                (it.where.ok() || it.where.error().code == Errc::kVanished)) {
              RemoveJobDir(area, m.id, spares.get());
            }
          }
        },
        [items, shared = shared_] {  // loop
          if (shared->owner == nullptr) return;
          for (Item& it : *items) shared->owner->Report(it.move.id, std::move(it.where));
        });
    if (rc < 0) {
      for (Item& it : *items) {
        Report(it.move.id, Error{Errc::kIo, std::string("uv_queue_work: ") + uv_strerror(rc)});
      }
    }
  }
}

}  // namespace dropq
