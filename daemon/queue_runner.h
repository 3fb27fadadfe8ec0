// QueueRunner is one queue's side of dropqd between Redis and the workers:
//
//   Enqueue()  -> ENQUEUE batches   (new files become jobs; claimed at once while there is room)
//   claim      -> CLAIM batches     (only as many as the Executor has room for)
//   claimed    -> Executor          (workers/executor.h: runs them, reports in batches)
//   outcome    -> ACK               (keep: one call)
//              -> RECORD -> move/delete on the threadpool -> ACK
//   shutdown   -> RELEASE           (jobs not started, and interrupted ones)
//
// State changes are collected during a loop turn and sent as one script call
// per kind per turn (Flush()), so a burst costs a few calls per batch rather
// than a round trip per file. Every job this instance holds — queued,
// running, or with an outcome not yet acknowledged — is in its JobTable,
// whose one Move() checks every change of state; so after a reconnect it can
// resend what was lost and requeue what it no longer holds. The moves of
// files are the Disposer's, the clean-ups after a scan the AreaSweeper's.
//
// Lifetime: every reply, post and threadpool completion the runner waits
// for is guarded (a shared flag, or the Disposer's and AreaSweeper's shared
// states, cleared on destruction), and BeginDrain()'s `drained` runs only
// once none of them is counted as outstanding: the owner may then destroy it.
//
// Thread: loop (the Executor reports on it).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/job.h"
#include "config/config.h"
#include "daemon/area_sweeper.h"
#include "daemon/disposer.h"
#include "daemon/job_table.h"
#include "daemon/loop.h"
#include "daemon/queue_counters.h"
#include "daemon/redis_conn.h"
#include "daemon/script_batches.h"
#include "daemon/uv_handle.h"
#include "store/keys.h"
#include "store/protocol.h"
#include "workers/executor.h"
#include "workers/handler.h"
#include "workers/queue_setup.h"
#include "workers/retry_policy.h"
#include "workers/spare_dirs.h"
#include "workers/thread_executor.h"

namespace dropq {

class QueueRunner {
 public:
  using Counters = QueueCounters;

  // `cfg`, `q`, `loop` and `redis` must outlive the runner; `setup` is
  // queue `q`'s (workers/queue_setup.h), made off the loop. Does no blocking work.
  static std::unique_ptr<QueueRunner> Create(const Config& cfg, const QueueConfig& q, Loop* loop,
                                             RedisConn* redis, QueueSetup setup);
  ~QueueRunner();

  // Starts the worker threads. Claiming starts with OnRedisUp().
  void Start();

  // A complete file: becomes a job unless one is live for its name or it was
  // handled with this identity. Batched; sent at the next Flush().
  void Enqueue(const std::string& name, const FileIdentity& ident);
  // A file left the watched directory: drop its "handled" marker.
  void Forget(const std::string& name);
  // True (once) if the file `name` with identity `ident` that just arrived
  // in the watched directory is a kept file this runner put back from the
  // processing area: no job to make, its own job ends with it. ENQUEUE
  // would have found the name taken by that job anyway; this spares the
  // call and a job id.
  bool TakeOwnReturn(const std::string& name, const FileIdentity& ident);
  // Drops the "handled" markers of kept files that are no longer in the
  // directory (they left while dropqd was not watching). Walks :files with
  // HSCAN, checking names on the threadpool; called after a full scan.
  void SweepMarkers();
  // Puts back into the watched directory any file left in the processing
  // area by a job that will not run again (its record is gone, or it ended
  // without its file moving: Redis lost the acknowledgement's effects), so
  // the scan takes it as new. Called after a full scan.
  void SweepProcessing();
  // Redis is behind with this queue's enqueues: four ENQUEUE batches (the
  // one being collected included) await their reply. The producers, the
  // scanner and the inotify reader, pause while it holds.
  bool enqueue_behind() const {
    constexpr int kMaxEnqueueBacklog = 4;
    return enqueue_inflight_ + (enqueue_batch_.empty() ? 0 : 1) >= kMaxEnqueueBacklog;
  }
  // Set when an ENQUEUE could not be sent: the files are on disk, and the
  // owner rescans once Redis is back. Reading clears it.
  bool TakeRescanNeeded() { return std::exchange(rescan_needed_, false); }

  // Sends every batch collected during this turn. Called once per loop turn.
  void Flush();

  // Redis is (again) reachable: resend unacknowledged outcomes, requeue own
  // active jobs not held here, then claim. `done` runs after the requeue.
  void OnRedisUp(std::function<void()> done);

  // Shutdown: stop claiming, return queued jobs to pending, send one stop
  // sentinel per worker. `drained` runs once every worker exited, every held
  // job was acknowledged or released, and nothing the runner started (a
  // move, a sweep, a CLAIM) is outstanding. While Redis is down the held
  // jobs cannot be released, so `drained` waits: the owner's drain timeout
  // decides (they stay active under this instance and are requeued at its
  // next start).
  void BeginDrain(std::function<void()> drained);
  // Past the drain timeout: kill running handlers (their jobs go back to pending).
  void KillRunning();
  // This instance may have lost its jobs to another one: kill the running
  // handlers and give back the queued jobs (sent once Redis is back, where
  // ownership decides). Later runs are not affected.
  void Fence();

  // The owner changed the limit fields (rate_max, rate_per, max_active) of
  // the QueueConfig this runner was created with, in place (a reload): the
  // next claim counts with them. `old_*`: the values before. When a limit
  // is added or removed, the jobs claimed and not started (and those a
  // claim in flight brings) go back, as they were not counted under the
  // limits now in force; a hold for a limit ends, a server's throttle stays.
  void LimitsChanged(int old_rate_max, int old_max_active);
  // An instance freed max_active slots of this queue (its `freed` notice):
  // a queue held back by max_active claims again at once. A notice that
  // comes while a CLAIM is in flight makes a refusal of that CLAIM claim
  // again too (the slot may have been freed after it ran).
  void SlotsFreed();

  const QueueConfig& config() const { return q_; }
  // True while a server's Retry-After holds this queue's claims back.
  bool throttled() const { return held_ == Held::kThrottled; }
  const Counters& counters() const { return counters_; }
  size_t held() const { return jobs_.size(); }
  size_t queued() const { return executor_->waiting(); }
  // A serve handler's processes (workers/executor.h).
  Executor::ProcessStats processes() const { return executor_->processes(); }
  // Called with the run time of every handler run that ended (not skips,
  // not interrupted runs): the metrics' histogram.
  void set_on_run(std::function<void(double seconds)> f) { on_run_ = std::move(f); }
  size_t running() const { return jobs_.count(JobState::kRunning); }
  const QueueKeys& keys() const { return keys_; }
  // Redis is reachable and this queue's leftovers are reconciled on the
  // connection in use. Claims, enqueues and sweeps wait for it: a claim sent
  // on a new connection before its reconcile would have its jobs given back
  // by that reconcile while they run here.
  bool ready() const { return redis_->up() && reconciled_conn_ == redis_->connection(); }
  // `dropqctl pause` is in force, as far as the last look at Redis tells.
  bool paused() const { return paused_; }

 private:
  QueueRunner(const Config& cfg, const QueueConfig& q, Loop* loop, RedisConn* redis,
              QueueSetup setup);

  // Claims as many pending jobs as there is room for, unless a claiming call
  // (CLAIM, or an ENQUEUE that claims) is in flight or nothing is known to be
  // pending.
  void MaybeClaim();
  // Slots a claim may ask for now (ENQUEUE's or CLAIM's), those asked for by
  // calls in flight deducted; <= 0 when none, or when this instance does not
  // claim (role produce, draining, Redis away).
  int ClaimRoom() const;
  // Why no claim is sent now: CLAIM said so (or a server's Retry-After came
  // in), and hold_timer_ ends it.
  enum class Held { kNo, kThrottled, kRate, kActive };
  // Sends no claim for `ms` (at most kMaxHoldMs: then CLAIM is asked again).
  void Hold(Held why, int64_t ms);
  void EndHold();
  // A server asked to wait (outcome `o`, Retry-After): THROTTLE the queue on
  // every instance.
  void Throttle(const Outcome& o);
  // Holds jobs a claim handed over: those to run go to the executor. `own`:
  // the ids of the files the claiming ENQUEUE made jobs of (they waited for
  // one reply since their event; every other job for two), or null for CLAIM.
  void HoldClaimed(std::vector<ClaimedJob> claimed, const std::unordered_set<std::string>* own);
  // `dropqctl pause` seen (or lifted): queued jobs go back to pending.
  void SetPaused(bool paused);
  // Gives every job waiting in the in-memory queue back to the front of
  // pending (not started, not marked interrupted): drain, fence, pause.
  // Returns how many.
  size_t ReleaseQueued();
  // While jobs wait in memory (no claim goes out), asks Redis whether the
  // queue was paused.
  void CheckPaused();
  // `gen`: limits_gen_ when the CLAIM was sent.
  // `confirmed`: false when no replica had the claim while the connection
  // was suspect (RedisConn::suspect()): what it took is given back.
  void OnClaimed(Result<Reply> r, int asked, uint64_t gen, bool confirmed);
  // Gives back what a claim took without a replica's acknowledgement while
  // a failover may be under way: nothing of it starts (the reconcile returns
  // it to pending), logged and counted.
  void GiveBackUnconfirmed(size_t claimed);
  // A batch of the executor's reports, in order.
  void OnReports(std::vector<RunReport>&& reports);
  void OnStarted(const std::string& id, uint32_t attempt);
  void OnFinished(Outcome&& o);
  // `h` (kAcking) ends with the ACK of the next flush: its :files entry
  // becomes `files_value`, `fields` go into its record.
  void SetAck(HeldJob& h, const std::string& files_value, Fields fields);
  // Moves the files of recorded jobs (kDisposing) to where their outcome
  // sends them, on the threadpool; OnDisposed() follows for each.
  void StartDisposals(const std::vector<HeldJob*>& jobs);
  void OnDisposed(const std::string& id, Result<std::string> where);
  // `h` goes back to pending with the next flush's RELEASE.
  void QueueRelease(HeldJob& h, bool interrupted);
  // Drops the returns whose event has not come for a long while.
  void ForgetOldReturns();
  // Starts the dispositions whose retry is due (called by the idle poll).
  void RetryDisposals();
  void SendEnqueue();
  // Resend() while Redis is up, with backoff: for calls it refused.
  void ResendRefused();
  // OnRedisUp() again once its reconcile was refused by Redis (e.g. LOADING)
  // or a reply could not be read, the retry is due and no claiming call is
  // in flight.
  void RetryReconcile();
  // A claiming call's reply could not be read: whatever it took is active
  // under this instance and held by none. Stops claiming, and reconciles
  // (RetryReconcile()) once the other claiming calls are answered.
  void ReconcileAfterBadReply();
  void CheckDrained();
  // Moves due retries to pending, then arms the timer for the next one.
  void Promote();
  // Makes the promote timer fire within `delay_ms` (a retry was just scheduled).
  void ArmPromote(int64_t delay_ms);

  const Config& cfg_;
  const QueueConfig& q_;
  Loop* const loop_;
  RedisConn* const redis_;
  const QueueKeys keys_;
  const AreaLayout layout_;  // how the area is used
  const std::string area_;   // the queue's processing area; "" when off
  // Empty job directories for reuse (null when the area is off); shared with
  // the workers and with threadpool work that may outlive a callback.
  const std::shared_ptr<SpareDirs> spares_;
  std::unique_ptr<Handler> handler_;
  const int workers_;                   // handler threads: q.workers, or 0 with role produce
  std::unique_ptr<Executor> executor_;  // made in the constructor's body, destroyed first
  UvHandle<uv_timer_t> poll_timer_;     // looks for pending jobs when idle
  UvHandle<uv_timer_t> hold_timer_;     // ends a hold (see Held)
  UvHandle<uv_timer_t> promote_timer_;  // the next retry's due time
  RetryPolicy retry_;

  JobTable jobs_;  // every job this instance holds, by id
  // Kept files the Disposer is putting back into the watched directory, by
  // name. An entry leaves with its event (TakeOwnReturn()), or after 30 s
  // without one (ForgetOldReturns()); the event may come after the job's ACK.
  struct Returning {
    FileIdentity ident;  // the identity the file returns with
    int64_t since_ms;    // monotonic: when its move started
  };
  std::unordered_map<std::string, Returning> returning_;
  int claim_inflight_ = 0;  // slots asked for in CLAIM and ENQUEUE calls not yet answered
  Held held_ = Held::kNo;
  int64_t hold_until_ms_ = 0;          // MonoMs() at which the hold ends
  bool freed_while_claiming_ = false;  // SlotsFreed() since the CLAIM in flight was sent
  uint64_t limits_gen_ = 0;            // bumped when a reload adds or removes a limit
  bool pending_maybe_ = true;  // jobs may be pending: the last claim filled every slot it asked
                               // for, or files were left in :pending, or a retry came due
  bool paused_ = false;        // the last claim (or EXISTS) found <queue>:paused
  std::function<void(double seconds)> on_run_;  // may be empty
  // RedisConn::connection() on which this queue's own leftovers were last
  // requeued; 0 (no connection has that number): not reconciled, or a
  // reconcile to send again.
  uint64_t reconciled_conn_ = 0;
  bool draining_ = false;
  int64_t resend_due_ms_ = 0;  // monotonic: next ResendRefused() try
  int64_t resend_backoff_ms_ = 1000;
  int64_t reconcile_due_ms_ = 0;          // monotonic: retry a refused reconcile then; 0: none
  std::function<void()> reconcile_done_;  // OnRedisUp()'s `done`, kept for that retry
  std::function<void()> drained_;

  // ENQUEUE's batch of this loop turn (the other calls are batches_'s).
  std::vector<EnqueueItem> enqueue_batch_;
  std::unordered_set<std::string> enqueue_names_;
  int enqueue_inflight_ = 0;
  bool rescan_needed_ = false;
  Counters counters_;
  // False once the runner is destroyed: replies and posts still to come
  // (guarded by it) then do nothing. Shared with those callbacks.
  const std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  Disposer disposer_;  // after alive_, keys_, area_ and spares_, which it uses
  AreaSweeper sweeper_;
  ScriptBatches batches_;  // after jobs_ and counters_, which it works on
};

}  // namespace dropq
