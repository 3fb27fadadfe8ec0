#include "daemon/serve_executor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "common/check.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/placeholders.h"
#include "common/tail_buffer.h"
#include "common/unique_fd.h"
#include "daemon/pool_work.h"
#include "daemon/uv_handle.h"
#include "workers/exec_handler.h"
#include "workers/serve_protocol.h"
#include "workers/spawn.h"

namespace dropq {
namespace {

// After EOF on fd 3 (a stop, a recycle), how long a process has to exit.
constexpr int64_t kExitGraceMs = 5000;
// A process that exits or crashes on its own is started again after this,
// doubling to kMaxBackoffMs while it keeps failing before it is ready.
constexpr int64_t kMinBackoffMs = 100;
constexpr int64_t kMaxBackoffMs = 5000;
// Without a pidfd, how often a process is looked at with waitpid(WNOHANG).
constexpr uint64_t kReapStepMs = 100;
// Lines of stdout and of stderr logged per job (and between jobs); the rest
// is counted, and one line says how much was left out.
constexpr size_t kMaxLoggedLines = 100;
// A logged line is cut here; a longer one is logged in pieces.
constexpr size_t kMaxLogLine = 2048;
constexpr size_t kReadChunk = 64 * 1024;
// Reads of one pipe per wake-up: a flooding process cannot hold the loop.
constexpr int kMaxReadsPerWake = 16;
// A process that closed fd 4 while it owes an answer: this long to exit
// (its exit status then says what happened) before it is a protocol error.
constexpr uint64_t kClosedAnswersGraceMs = 1000;
// What of an answer that is not protocol goes into the error.
constexpr size_t kPreviewBytes = 120;
// The longest `error` of an answer kept.
constexpr size_t kMaxErrorBytes = 4096;

std::string Preview(std::string_view line) {
  std::string out(line.substr(0, kPreviewBytes));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  if (line.size() > kPreviewBytes) out += "...";
  return out;
}

// RSS of `pid` in bytes (0 if it cannot be read): /proc is memory, not disk.
int64_t RssOf(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return 0;
  char buf[128];
  const ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  long long size = 0, resident = 0;
  if (std::sscanf(buf, "%lld %lld", &size, &resident) != 2) return 0;
  return resident * ::sysconf(_SC_PAGESIZE);
}

}  // namespace

struct ServeExecutor::SpawnResult {
  Result<ServeChild> child = Error{Errc::kHandler, "not spawned"};
};

// One long-lived process and the job it runs. Thread: loop.
struct ServeExecutor::Proc {
  enum class State {
    kDown,      // not running; a spawn may be scheduled (timer)
    kSpawning,  // posix_spawn on the threadpool
    kLoading,   // running, not ready yet (start_timeout)
    kIdle,      // ready, no job
    kBusy,      // its job's line is written, the answer awaited (timeout)
    kEnding,    // told to exit (EOF) or killed: waiting for it to be gone
  };
  ServeExecutor* exec = nullptr;
  int index = 0;
  State state = State::kDown;
  pid_t pid = -1;      // while it runs (not yet reaped)
  pid_t log_pid = -1;  // the last one's, for log lines
  UniqueFd jobs;       // fd 3's write end; closed: EOF, the sentinel
  UniqueFd fds[3];     // fd 4's, stdout's and stderr's read ends
  UniqueFd pidfd;
  UvHandle<uv_poll_t> polls[3];     // on fds
  UvHandle<uv_poll_t> exit_poll;    // on pidfd
  UvHandle<uv_timer_t> timer;       // start_timeout, the job's timeout, the exit grace, a backoff
  UvHandle<uv_timer_t> reap_timer;  // without a pidfd: waitpid every kReapStepMs
  std::string line;                 // answer bytes not yet ended by '\n'
  std::string partial[2];           // stdout's and stderr's bytes not yet ended by '\n'
  size_t logged[2] = {0, 0};
  uint64_t dropped[2] = {0, 0};
  TailBuffer err_tail{kStderrTailBytes};
  // Its job, while kBusy (and until its end is reported).
  bool has_job = false;
  Job job;
  std::string path;
  struct stat st {};
  int64_t started_ms = 0;
  int64_t t0_ms = 0;
  // How the job ends if the process dies now (a timeout, a protocol error,
  // an interrupt decided it); unset: by its exit status.
  std::optional<Outcome> end;
  // Why the process is being replaced, counted once it is gone; null: it
  // ended on its own.
  const char* reason = nullptr;
  int64_t jobs_done = 0;
  int64_t backoff_ms = kMinBackoffMs;
  int64_t spawned_ms = 0;  // MonoMs() of the spawn
};

ServeExecutor::ServeExecutor(Loop* loop, Sink sink, const QueueConfig& q, AreaLayout layout,
                             std::string area, size_t capacity, std::string instance,
                             std::shared_ptr<SpareDirs> spares)
    : loop_(loop),
      reports_(loop, std::move(sink), [this] { return stopped(); }),
      q_(q),
      layout_(layout),
      area_(std::move(area)),
      workers_(q.runs_handlers() ? q.workers : 0),
      waiting_(capacity),
      instance_(std::move(instance)),
      spares_(std::move(spares)) {
  DROPQ_CHECK(q.handler.kind == HandlerConfig::Kind::kServe);
  PlaceholderValues v{};
  v.dir = q_.watch;
  v.queue = q_.name;
  for (const std::string& a : q_.handler.argv) argv_.push_back(ExpandPlaceholders(a, v));
  for (int i = 0; i < workers_; ++i) {
    auto p = std::make_unique<Proc>();
    p->exec = this;
    p->index = i;
    p->timer = MakeTimer(loop_->get(), p.get());
    procs_.push_back(std::move(p));
  }
}

ServeExecutor::~ServeExecutor() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  *alive_ = false;
  for (auto& p : procs_) {
    if (p->pid <= 0) continue;
    ::kill(-p->pid, SIGKILL);
    for (auto& poll : p->polls) poll.Reset();
    p->exit_poll.Reset();
    int status;
    while (::waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

void ServeExecutor::Start() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  for (auto& p : procs_) Spawn(p.get(), 0);
}

void ServeExecutor::Accept(std::vector<Job> jobs) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  DROPQ_CHECK(!stopping_);
  waiting_.Add(std::move(jobs));  // at most room(): the runner claims no more
  Pump();
}

std::vector<Job> ServeExecutor::TakeBack() {
  std::vector<Job> out = waiting_.TakeAll();
  if (stopped()) reports_.Schedule();
  return out;
}

void ServeExecutor::Stop() {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (stopping_) return;
  stopping_ = true;
  Pump();  // jobs still waiting run first: the runner takes back what it will not wait for
  for (auto& p : procs_) {
    if (p->state == Proc::State::kDown) uv_timer_stop(p->timer.get());  // no restart
  }
  // Idle ones get EOF once no job is left for them; busy ones after their job.
  AbandonReadyIfStuck();
  CloseIdleIfStopping();
  if (stopped()) reports_.Schedule();
}

bool ServeExecutor::stopped() const {
  if (!stopping_ || !waiting_.empty() || !ready_.empty() || entering_ > 0) return false;
  for (const auto& p : procs_) {
    if (p->state != Proc::State::kDown) return false;
  }
  return true;
}

void ServeExecutor::Interrupt(bool also_later) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  if (also_later) interrupt_all_ = true;
  // Jobs made ready and not sent do not start now; those still entering
  // find the interrupt when they come back.
  ++interrupts_;
  while (!ready_.empty()) {
    NotRun(std::move(ready_.front()), /*interrupted=*/true);
    ready_.pop_front();
  }
  for (auto& p : procs_) {
    if (p->state != Proc::State::kBusy) continue;
    Outcome o;
    o.result = RunResult::kInterrupted;
    o.signal = SIGKILL;
    o.error = "interrupted while the serve process ran it";
    p->end = std::move(o);
    Kill(p.get(), "interrupted");
  }
}

Executor::ProcessStats ServeExecutor::processes() const {
  ProcessStats s;
  for (const auto& p : procs_) {
    if (p->pid > 0) ++s.alive;
  }
  s.replaced = replaced_;
  return s;
}

// ---------------------------------------------------------------- processes

void ServeExecutor::Spawn(Proc* p, int64_t delay_ms) {
  p->state = Proc::State::kDown;
  if (delay_ms > 0) {
    uv_timer_start(
        p->timer.get(),
        [](uv_timer_t* t) {
          auto* proc = static_cast<Proc*>(t->data);
          proc->exec->Spawn(proc, 0);
        },
        static_cast<uint64_t>(delay_ms), 0);
    return;
  }
  if (stopping_) {
    AbandonReadyIfStuck();
    reports_.Schedule();
    return;
  }
  p->state = Proc::State::kSpawning;
  auto result = std::make_shared<SpawnResult>();
  // Built here: the loop is where dropqd's environment changes (a reload).
  const int rc = QueueWork(
      loop_->get(),
      [result, argv = argv_, env = ServeEnvironment(q_.name, instance_)] {
        result->child = SpawnServe(argv, env);
      },
      [this, alive = alive_, p, result] {
        if (*alive) {
          OnSpawned(p, std::move(*result));
        } else if (result->child.ok()) {
          // The executor is gone: so is the process it would have run.
          ::kill(-result->child->pid, SIGKILL);
          int status;
          while (::waitpid(result->child->pid, &status, 0) < 0 && errno == EINTR) {
          }
        }
      });
  if (rc < 0) {
    SpawnResult r;
    r.child = Error{Errc::kHandler, std::string("threadpool: ") + uv_strerror(rc)};
    OnSpawned(p, std::move(r));
  }
}

void ServeExecutor::OnSpawned(Proc* p, SpawnResult&& r) {
  if (!r.child.ok()) {
    LogError("serve.spawn_failed",
             {{"queue", q_.name}, {"err", r.child.error().what}, {"retry_ms", p->backoff_ms}});
    ++replaced_["spawn_failed"];
    const int64_t delay = p->backoff_ms;
    p->backoff_ms = std::min(p->backoff_ms * 2, kMaxBackoffMs);
    Spawn(p, stopping_ ? 0 : delay);
    return;
  }
  ServeChild& c = *r.child;
  p->pid = c.pid;
  p->log_pid = c.pid;
  p->jobs = std::move(c.jobs);
  p->fds[0] = std::move(c.answers);
  p->fds[1] = std::move(c.out);
  p->fds[2] = std::move(c.err);
  p->pidfd = std::move(c.pidfd);
  p->line.clear();
  p->partial[0].clear();
  p->partial[1].clear();
  p->logged[0] = p->logged[1] = 0;
  p->dropped[0] = p->dropped[1] = 0;
  p->jobs_done = 0;
  p->reason = nullptr;
  p->end.reset();
  p->spawned_ms = MonoMs();
  for (int k = 0; k < 3; ++k) {
    auto poll = UvHandle<uv_poll_t>::Make(
        [&](uv_poll_t* h) { return uv_poll_init(loop_->get(), h, p->fds[k].get()); });
    DROPQ_CHECK(poll.ok());  // a pipe of our own: epoll takes it
    p->polls[k] = std::move(*poll);
    p->polls[k].get()->data = p;
    uv_poll_start(p->polls[k].get(), UV_READABLE, [](uv_poll_t* h, int, int) {
      auto* proc = static_cast<Proc*>(h->data);
      for (int which = 0; which < 3; ++which) {
        if (proc->polls[which].get() == h) proc->exec->OnReadable(proc, which);
      }
    });
  }
  // Its exit: a pidfd turns readable; without one, a look every kReapStepMs.
  if (p->pidfd.valid()) {
    auto poll = UvHandle<uv_poll_t>::Make(
        [&](uv_poll_t* h) { return uv_poll_init(loop_->get(), h, p->pidfd.get()); });
    DROPQ_CHECK(poll.ok());
    p->exit_poll = std::move(*poll);
    p->exit_poll.get()->data = p;
    uv_poll_start(p->exit_poll.get(), UV_READABLE, [](uv_poll_t* h, int, int) {
      auto* proc = static_cast<Proc*>(h->data);
      proc->exec->Reap(proc);
    });
  } else {
    p->reap_timer = MakeTimer(loop_->get(), p);
    uv_timer_start(
        p->reap_timer.get(),
        [](uv_timer_t* t) {
          auto* proc = static_cast<Proc*>(t->data);
          proc->exec->Reap(proc);
        },
        kReapStepMs, kReapStepMs);
  }
  p->state = Proc::State::kLoading;
  LogInfo("serve.started",
          {{"queue", q_.name}, {"pid", p->log_pid}, {"worker", p->index}, {"program", argv_[0]}});
  if (stopping_ && waiting_.empty() && ready_.empty() && entering_ == 0) {
    Close(p, "stop");
    return;
  }
  uv_timer_start(
      p->timer.get(),
      [](uv_timer_t* t) {
        auto* proc = static_cast<Proc*>(t->data);
        if (proc->state != Proc::State::kLoading) return;
        LogWarn("serve.start_timeout", {{"queue", proc->exec->q_.name},
                                        {"pid", proc->log_pid},
                                        {"ms", proc->exec->q_.handler.start_timeout.count()}});
        proc->exec->Kill(proc, "start_timeout");
      },
      static_cast<uint64_t>(q_.handler.start_timeout.count()), 0);
}

void ServeExecutor::OnReadable(Proc* p, int which) {
  if (!read_buf_) read_buf_ = std::make_unique_for_overwrite<char[]>(kReadChunk);
  char* buf = read_buf_.get();
  for (int i = 0; i < kMaxReadsPerWake && p->fds[which].valid(); ++i) {
    const ssize_t n = ::read(p->fds[which].get(), buf, kReadChunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      // End of file (or an error): the process closed it, or is gone.
      p->polls[which].Reset();
      p->fds[which].Reset();
      if (which != 0) {
        OnOutput(p, which, {}, /*flush=*/true);
      } else if (p->state == Proc::State::kBusy || p->state == Proc::State::kLoading ||
                 p->state == Proc::State::kIdle) {
        // Most often it is exiting, and its exit status tells more: a
        // process that lives on without fd 4 can never answer.
        uv_timer_start(
            p->timer.get(),
            [](uv_timer_t* t) {
              auto* proc = static_cast<Proc*>(t->data);
              proc->exec->ProtocolError(proc, "it closed fd 4 and did not exit");
            },
            kClosedAnswersGraceMs, 0);
      }
      return;
    }
    const std::string_view chunk(buf, static_cast<size_t>(n));
    if (which != 0) {
      OnOutput(p, which, chunk, /*flush=*/false);
      continue;
    }
    // Answers: each complete line in turn; a line may end the process
    // (a protocol error), after which nothing more of it counts.
    size_t at = 0;
    while (at < chunk.size() && p->fds[0].valid()) {
      const size_t nl = chunk.find('\n', at);
      if (nl == std::string_view::npos) {
        p->line.append(chunk.substr(at));
        if (p->line.size() > kServeMaxLine) {
          ProtocolError(
              p, "an answer line longer than " + std::to_string(kServeMaxLine >> 10) + " KiB");
        }
        break;
      }
      p->line.append(chunk.substr(at, nl - at));
      std::string line = std::exchange(p->line, std::string());
      at = nl + 1;
      if (line.size() > kServeMaxLine) {
        ProtocolError(p,
                      "an answer line longer than " + std::to_string(kServeMaxLine >> 10) + " KiB");
        break;
      }
      OnLine(p, line);
    }
  }
}

void ServeExecutor::OnOutput(Proc* p, int which, std::string_view bytes, bool flush) {
  const int k = which - 1;  // 0 stdout, 1 stderr
  if (k == 1 && p->has_job) p->err_tail.Append(bytes.data(), bytes.size());
  const auto emit = [&](std::string_view line) {
    if (p->logged[k] >= kMaxLoggedLines) {
      p->dropped[k] += line.size() + 1;
      return;
    }
    ++p->logged[k];
    LogInfo(k == 0 ? "serve.stdout" : "serve.stderr", {{"queue", q_.name},
                                                       {"pid", p->log_pid},
                                                       {"job", p->has_job ? p->job.id : "-"},
                                                       {"line", line}});
  };
  std::string& part = p->partial[k];
  size_t at = 0;
  while (at < bytes.size()) {
    const size_t nl = bytes.find('\n', at);
    const size_t end = nl == std::string_view::npos ? bytes.size() : nl;
    const size_t room = kMaxLogLine - part.size();
    if (end - at >= room) {  // a long line is logged in pieces
      part.append(bytes.substr(at, room));
      emit(part);
      part.clear();
      at += room;
      continue;
    }
    part.append(bytes.substr(at, end - at));
    if (nl == std::string_view::npos) break;
    emit(part);
    part.clear();
    at = nl + 1;
  }
  if (flush && !part.empty()) {
    emit(part);
    part.clear();
  }
}

void ServeExecutor::OnLine(Proc* p, std::string_view line) {
  auto a = DecodeServeAnswer(line);
  if (!a.ok()) {
    ProtocolError(p, a.error().what + ": \"" + Preview(line) + "\"");
    return;
  }
  // A process being ended (told to exit, killed, or gone and its pipes
  // drained): its ready line means nothing now, and only an answer to the
  // job it had still counts.
  const bool ending = p->state == Proc::State::kEnding;
  if (a->kind == ServeAnswer::Kind::kReady) {
    if (ending) return;
    if (p->state != Proc::State::kLoading) {
      ProtocolError(p, "a second {\"ready\": true}");
      return;
    }
    uv_timer_stop(p->timer.get());
    p->state = Proc::State::kIdle;
    p->backoff_ms = kMinBackoffMs;
    LogInfo("serve.ready",
            {{"queue", q_.name}, {"pid", p->log_pid}, {"ms", MonoMs() - p->spawned_ms}});
    Pump();
    CloseIdleIfStopping();
    return;
  }
  if (!p->has_job || a->id != p->job.id) {
    if (!ending) {
      ProtocolError(p, "an answer for job \"" + Preview(a->id) + "\", which it was not given");
    }
    return;
  }
  // Its job's answer, even if it came after a timeout or an interrupt
  // decided otherwise: the work was done.
  p->end.reset();
  if (!ending) uv_timer_stop(p->timer.get());
  Outcome o;
  if (a->ok) {
    if (a->result.size() > kServeMaxResult) {
      o.result = RunResult::kHandlerError;
      o.fail_class = FailClass::kPermanent;  // the same file gives the same result
      o.error = "its result is " + std::to_string(a->result.size()) + " bytes of JSON, more than " +
                std::to_string(kServeMaxResult >> 10) + " KiB";
    } else {
      o.result = RunResult::kOk;
      o.response = std::move(a->result);
    }
  } else {
    o.result = RunResult::kHandlerError;
    o.error = a->error.empty() ? "failed (the answer gave no error)" : std::move(a->error);
    if (o.error.size() > kMaxErrorBytes) o.error.resize(kMaxErrorBytes);
    if (a->permanent) {
      o.fail_class = FailClass::kPermanent;
    } else if (a->retry_after_ms >= 0) {
      o.fail_class = FailClass::kTempfail;
      o.retry_after_ms = a->retry_after_ms;
    }
  }
  FinishJob(p, std::move(o));
  ++p->jobs_done;
  if (ending) return;
  p->state = Proc::State::kIdle;
  MaybeRecycle(p);
  if (p->state != Proc::State::kIdle) return;
  Pump();
  CloseIdleIfStopping();
}

void ServeExecutor::MaybeRecycle(Proc* p) {
  const HandlerConfig& h = q_.handler;
  if (h.max_jobs > 0 && p->jobs_done >= h.max_jobs) {
    Close(p, "max_jobs");
    return;
  }
  if (h.max_rss > 0) {
    const int64_t rss = RssOf(p->pid);
    if (rss > h.max_rss) {
      LogInfo("serve.recycle", {{"queue", q_.name},
                                {"pid", p->log_pid},
                                {"rss", rss},
                                {"max_rss", h.max_rss},
                                {"jobs", p->jobs_done}});
      Close(p, "max_rss");
    }
  }
}

void ServeExecutor::ProtocolError(Proc* p, const std::string& what) {
  LogError("serve.protocol_error", {{"queue", q_.name},
                                    {"pid", p->log_pid},
                                    {"job", p->has_job ? p->job.id : "-"},
                                    {"err", what}});
  if (p->has_job && !p->end) {
    Outcome o;
    o.result = RunResult::kError;
    o.error = "serve process protocol error: " + what;
    p->end = std::move(o);
  }
  // Nothing more it writes counts.
  p->polls[0].Reset();
  p->fds[0].Reset();
  Kill(p, "protocol");
}

void ServeExecutor::Kill(Proc* p, const char* why) {
  if (p->pid <= 0) return;
  if (p->reason == nullptr) p->reason = why;
  uv_timer_stop(p->timer.get());
  // The leader is not reaped yet, so its group id cannot have been reused.
  ::kill(-p->pid, SIGKILL);
  p->jobs.Reset();
  p->state = Proc::State::kEnding;
}

void ServeExecutor::Close(Proc* p, const char* why) {
  if (p->pid <= 0 || p->state == Proc::State::kEnding) return;
  if (p->reason == nullptr) p->reason = why;
  p->jobs.Reset();  // EOF on its fd 3
  p->state = Proc::State::kEnding;
  uv_timer_start(
      p->timer.get(),
      [](uv_timer_t* t) {
        auto* proc = static_cast<Proc*>(t->data);
        if (proc->pid <= 0) return;
        LogWarn("serve.kill", {{"queue", proc->exec->q_.name},
                               {"pid", proc->log_pid},
                               {"reason", "did not exit after EOF on fd 3"},
                               {"ms", kExitGraceMs}});
        ::kill(-proc->pid, SIGKILL);
      },
      kExitGraceMs, 0);
}

void ServeExecutor::Reap(Proc* p) {
  int status = 0;
  const pid_t got = ::waitpid(p->pid, &status, WNOHANG);
  if (got == p->pid) {
    OnExit(p, status);
  } else if (got < 0 && errno != EINTR) {
    // Reaped by someone else (SIGCHLD ignored): gone, its status unknown.
    LogWarn("serve.waitpid",
            {{"queue", q_.name}, {"pid", p->log_pid}, {"err", std::strerror(errno)}});
    OnExit(p, 255 << 8);
  }
}

void ServeExecutor::AbandonReadyIfStuck() {
  if (!stopping_) return;
  for (const auto& p : procs_) {
    switch (p->state) {
      case Proc::State::kSpawning:
      case Proc::State::kLoading:
      case Proc::State::kIdle:
      case Proc::State::kBusy:
        return;  // a process that can still take them
      default:
        break;
    }
  }
  // Stopping, and no process left to run them: not started, they go back.
  while (!ready_.empty()) {
    NotRun(std::move(ready_.front()), /*interrupted=*/true);
    ready_.pop_front();
  }
}

void ServeExecutor::OnExit(Proc* p, int status) {
  // Reaped: its pid (and group id) may be reused from now on, never killed
  // again; what is left in its pipes is read as from a process being ended
  // (its answer counts, nothing is sent to it).
  p->pid = -1;
  p->state = Proc::State::kEnding;
  // What it wrote before it went is in the pipes: its last answer too.
  for (int which = 0; which < 3; ++which) {
    if (p->fds[which].valid()) OnReadable(p, which);
  }
  for (int which = 1; which < 3; ++which) OnOutput(p, which, {}, /*flush=*/true);
  for (auto& poll : p->polls) poll.Reset();
  for (auto& fd : p->fds) fd.Reset();
  p->exit_poll.Reset();
  p->reap_timer.Reset();
  p->pidfd.Reset();
  p->jobs.Reset();
  uv_timer_stop(p->timer.get());
  const pid_t pid = p->log_pid;
  const bool crashed = p->reason == nullptr;
  std::string how;
  if (WIFEXITED(status)) {
    how = "exit status " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    how = "signal " + std::to_string(WTERMSIG(status));
  }
  const char* reason = p->reason != nullptr ? p->reason : (WIFSIGNALED(status) ? "signal" : "exit");
  if (p->has_job) {
    Outcome o;
    if (p->end) {
      o = std::move(*p->end);
    } else if (WIFSIGNALED(status)) {
      o.result = RunResult::kSignal;
      o.signal = WTERMSIG(status);
      o.error = "the serve process died of signal " + std::to_string(o.signal) + " during the job";
    } else {
      o.result = RunResult::kExit;
      o.exit_code = WEXITSTATUS(status);
      if (o.exit_code == 0) o.exit_code = 1;  // it did not answer: not a success
      o.error = "the serve process exited (" + how + ") during the job";
    }
    FinishJob(p, std::move(o));
  }
  p->end.reset();
  const bool final_stop =
      stopping_ && (p->reason == nullptr || std::string_view(p->reason) == "stop");
  if (!final_stop) ++replaced_[reason];
  (crashed ? LogWarn : LogInfo)(
      "serve.exited",
      {{"queue", q_.name}, {"pid", pid}, {"how", how}, {"reason", reason}, {"jobs", p->jobs_done}});
  p->reason = nullptr;
  if (stopping_) {
    p->state = Proc::State::kDown;
    AbandonReadyIfStuck();
    reports_.Schedule();
    return;
  }
  // One it ended itself is started again at once; one that died on its own
  // after a backoff that grows while it keeps dying before it is ready.
  // Replaced for its age or size, or for a job's timeout or an interrupt:
  // at once. Anything else (a crash, garbage, no ready line) after a
  // backoff, which a ready line resets.
  const std::string_view r = reason;
  int64_t delay = 0;
  if (r != "max_jobs" && r != "max_rss" && r != "timeout" && r != "interrupted") {
    delay = p->backoff_ms;
    p->backoff_ms = std::min(p->backoff_ms * 2, kMaxBackoffMs);
  }
  Spawn(p, delay);
}

// ---------------------------------------------------------------- jobs

void ServeExecutor::Pump() {
  // Jobs made ready go to idle processes at once...
  for (auto& p : procs_) {
    if (ready_.empty()) break;
    if (p->state != Proc::State::kIdle) continue;
    Prepared next = std::move(ready_.front());
    ready_.pop_front();
    Send(p.get(), std::move(next));
  }
  // ...and the next ones are made ready meanwhile, one per process at
  // most, so that a process that answers gets its next job without waiting
  // for the threadpool. The jobs of one turn share a trip.
  std::vector<Job> batch;
  while (!waiting_.empty() && ready_.size() + entering_ + batch.size() < procs_.size()) {
    batch.push_back(waiting_.Pop());
  }
  if (batch.empty()) return;
  entering_ += batch.size();
  auto trip = std::make_shared<std::vector<Prepared>>();
  for (Job& j : batch) trip->push_back(Prepared{std::move(j), {}});
  const int rc = QueueWork(
      loop_->get(),
      [trip, layout = layout_, watch = q_.watch, area = area_, spares = spares_] {
        for (Prepared& e : *trip) {
          e.in = Enter(layout, watch, area, e.job, /*open=*/false, spares.get());
        }
      },
      [this, alive = alive_, trip, gen = interrupts_] {
        if (*alive) OnEntered(std::move(*trip), gen);
      });
  if (rc < 0) {
    for (Prepared& e : *trip) {
      e.in.result = RunResult::kError;
      e.in.error = std::string("threadpool: ") + uv_strerror(rc);
    }
    OnEntered(std::move(*trip), interrupts_);
  }
}

void ServeExecutor::OnEntered(std::vector<Prepared>&& trip, uint64_t gen) {
  entering_ -= trip.size();
  for (Prepared& e : trip) {
    // Not run: the file is not there, or an interrupt came meanwhile (a
    // fence: the job may be another instance's by now).
    const bool interrupted = gen != interrupts_ || interrupt_all_;
    if (e.in.result == RunResult::kOk && !interrupted) {
      ready_.push_back(std::move(e));
      continue;
    }
    NotRun(std::move(e), interrupted && e.in.result == RunResult::kOk);
  }
  Pump();
  AbandonReadyIfStuck();
  CloseIdleIfStopping();
}

void ServeExecutor::NotRun(Prepared&& e, bool interrupted) {
  Outcome o;
  o.result = interrupted ? RunResult::kInterrupted : e.in.result;
  o.error =
      interrupted ? std::string("interrupted before the job was sent") : std::move(e.in.error);
  if (e.in.result == RunResult::kError && S_ISREG(e.in.st.st_mode)) {
    o.ident = FileIdentity::FromStat(e.in.st);
  }
  o.job = std::move(e.job);
  o.started_ms = NowUnixMs();
  reports_.Add(RunReport{RunReport::Kind::kFinished, std::move(o)});
}

void ServeExecutor::CloseIdleIfStopping() {
  if (!stopping_ || !waiting_.empty() || !ready_.empty() || entering_ > 0) return;
  for (auto& p : procs_) {
    if (p->state == Proc::State::kIdle || p->state == Proc::State::kLoading) Close(p.get(), "stop");
  }
  if (stopped()) reports_.Schedule();
}

void ServeExecutor::Send(Proc* p, Prepared&& e) {
  // Count the attempt before the job is sent: `attempt` is the number of
  // runs started, and a run that dropqd loses mid-way still counts.
  p->has_job = true;
  p->job = std::move(e.job);
  p->job.attempt += 1;
  p->started_ms = NowUnixMs();
  p->t0_ms = MonoMs();
  p->path = std::move(e.in.path);
  p->st = e.in.st;
  p->err_tail.Clear();
  p->logged[0] = p->logged[1] = 0;
  p->dropped[0] = p->dropped[1] = 0;
  RunReport started{RunReport::Kind::kStarted, {}};
  started.outcome.job = p->job;
  reports_.Add(std::move(started));
  std::string_view reldir, name;
  SplitRelPath(p->job.name, &reldir, &name);
  const std::string line =
      EncodeServeJob(ServeJob{p->job.id, q_.name, p->path, std::string(name), p->job.name,
                              p->job.attempt, static_cast<uint64_t>(p->st.st_size)});
  p->state = Proc::State::kBusy;
  // One job at a time: the pipe holds every line before it (a process
  // answers a job only once it read it), so one write takes the whole line.
  const ssize_t n = ::write(p->jobs.get(), line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    const int err = errno;
    ProtocolError(p, n < 0 ? "cannot write its job on fd 3: " + std::string(std::strerror(err))
                           : std::string("it does not read fd 3 (the pipe is full)"));
    return;
  }
  uv_timer_start(
      p->timer.get(),
      [](uv_timer_t* t) {
        auto* proc = static_cast<Proc*>(t->data);
        if (proc->state != Proc::State::kBusy) return;
        Outcome o;
        o.result = RunResult::kTimeout;
        o.signal = SIGKILL;
        o.error = "timeout after " + std::to_string(proc->exec->q_.handler.timeout.count()) + "ms";
        proc->end = std::move(o);
        proc->exec->Kill(proc, "timeout");
      },
      static_cast<uint64_t>(q_.handler.timeout.count()), 0);
}

void ServeExecutor::FinishJob(Proc* p, Outcome o) {
  o.started_ms = p->started_ms;
  o.duration_ms = MonoMs() - p->t0_ms;
  o.ident = FileIdentity::FromStat(p->st);
  o.work_path = p->path;
  o.stderr_tail = p->err_tail.Take();
  for (int k = 0; k < 2; ++k) {
    if (p->dropped[k] == 0) continue;
    LogInfo("serve.output_dropped", {{"queue", q_.name},
                                     {"pid", p->log_pid},
                                     {"job", p->job.id},
                                     {"stream", k == 0 ? "stdout" : "stderr"},
                                     {"bytes", p->dropped[k]}});
    p->dropped[k] = 0;
  }
  p->logged[0] = p->logged[1] = 0;
  o.job = std::move(p->job);
  p->has_job = false;
  reports_.Add(RunReport{RunReport::Kind::kFinished, std::move(o)});
}

}  // namespace dropq
