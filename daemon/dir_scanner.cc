#include "daemon/dir_scanner.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>

#include "common/check.h"
#include "common/log.h"

namespace dropq {
namespace {
constexpr size_t kChunk = 512;
}

struct DirScanner::State {
  DIR* dir = nullptr;  // touched by one threadpool job at a time
  std::vector<ScanEntry> chunk;
  bool eof = false;
  int err = 0;
  bool in_flight = false;
  bool cancelled = false;
  DirScanner* owner = nullptr;  // null once the scanner is gone or cancelled
  std::shared_ptr<State> self;  // keeps the State alive while a request runs
  uv_work_t req{};

  ~State() {
    if (dir != nullptr) closedir(dir);
  }
};

DirScanner::DirScanner(Loop* loop, std::string dir, Sink sink)
    : loop_(loop), dir_(std::move(dir)), sink_(std::move(sink)) {}

DirScanner::DirScanner(Loop* loop, UniqueFd dir_fd, std::string shown, Sink sink)
    : loop_(loop), dir_(std::move(shown)), dir_fd_(std::move(dir_fd)), sink_(std::move(sink)) {}

DirScanner::~DirScanner() { Cancel(); }

void DirScanner::Start() {
  Cancel();
  state_ = std::make_shared<State>();
  state_->owner = this;
  if (dir_fd_.valid()) {
    state_->dir = fdopendir(dir_fd_.get());
    if (state_->dir != nullptr) dir_fd_.Release();  // the DIR owns it now
  } else {
    state_->dir = opendir(dir_.c_str());
  }
  if (state_->dir == nullptr) {
    const Error e = IoError("opendir " + dir_, errno);
    state_.reset();
    sink_({}, true, &e);
    return;
  }
  Continue();
}

void DirScanner::Continue() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (state_ == nullptr || state_->in_flight || state_->cancelled) return;
  State* s = state_.get();
  s->in_flight = true;
  s->self = state_;
  s->req.data = s;
  const int rc = uv_queue_work(
      loop_->get(), &s->req,
      [](uv_work_t* req) {
        auto* st = static_cast<State*>(req->data);
        st->chunk.clear();
        const int dfd = dirfd(st->dir);
        while (st->chunk.size() < kChunk) {
          errno = 0;
          struct dirent* de = readdir(st->dir);
          if (de == nullptr) {
            st->err = errno;
            st->eof = true;
            break;
          }
          if (de->d_name[0] == '.' &&
              (de->d_name[1] == 0 || (de->d_name[1] == '.' && de->d_name[2] == 0))) {
            continue;
          }
          ScanEntry e;
          e.name = de->d_name;
          if (fstatat(dfd, de->d_name, &e.st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone since
          st->chunk.push_back(std::move(e));
        }
      },
      [](uv_work_t* req, int /*status*/) {
        auto* st = static_cast<State*>(req->data);
        std::shared_ptr<State> keep = std::move(st->self);
        st->in_flight = false;
        if (st->cancelled || st->owner == nullptr) return;  // `keep` frees it
        DirScanner* owner = st->owner;
        const bool last = st->eof;
        std::vector<ScanEntry> chunk = std::move(st->chunk);
        st->chunk = {};
        if (last) {
          const Error e = IoError("readdir " + owner->dir_, st->err);
          owner->state_.reset();
          owner->sink_(std::move(chunk), true, st->err != 0 ? &e : nullptr);
        } else {
          owner->sink_(std::move(chunk), false, nullptr);
        }
      });
  if (rc < 0) {
    s->in_flight = false;
    s->self.reset();
    const Error e{Errc::kIo, std::string("uv_queue_work: ") + uv_strerror(rc)};
    state_.reset();
    sink_({}, true, &e);
  }
}

void DirScanner::Cancel() {
  if (state_ == nullptr) return;
  state_->cancelled = true;
  state_->owner = nullptr;
  state_.reset();  // a running request keeps its State alive until it completes
}

}  // namespace dropq
