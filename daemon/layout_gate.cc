#include "daemon/layout_gate.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "common/check.h"
#include "common/escape.h"
#include "common/log.h"
#include "daemon/loop.h"
#include "daemon/redis_conn.h"
#include "store/keys.h"
#include "store/protocol.h"
#include "store/scripts.h"

namespace dropq {

// One Check(): what is still awaited and what was found so far.
struct LayoutGate::Run {
  std::vector<std::string> bases;
  Done done;
  int awaiting = 0;
  bool lost = false;  // a reply did not come: the reconnect checks again
  Verdict verdict = Verdict::kOpen;
  std::string why;

  // Records a failed check; a refusal is final, and outranks a retry.
  void Set(Verdict v, std::string w) {
    if (verdict == Verdict::kRefused) return;
    verdict = v;
    why = std::move(w);
  }
};

LayoutGate::LayoutGate(Loop* loop, RedisConn* redis, std::string prefix, std::string instance)
    : loop_(loop), redis_(redis), prefix_(std::move(prefix)), instance_(std::move(instance)) {}

LayoutGate::~LayoutGate() { *alive_ = false; }

int HeartbeatLayout(const std::string& heartbeat) {
  const nlohmann::json j = nlohmann::json::parse(heartbeat, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return -1;
  const auto it = j.find("layout");
  if (it == j.end()) return 1;
  if (!it->is_number_integer()) return -1;
  return it->get<int>();
}

void LayoutGate::Check(std::vector<std::string> queue_bases, Done done) {
  DROPQ_DCHECK(loop_->OnLoopThread());
  auto run = std::make_shared<Run>();
  run->bases = std::move(queue_bases);
  run->done = std::move(done);
  CheckInstances(run);
}

void LayoutGate::CheckInstances(const std::shared_ptr<Run>& run) {
  redis_->Command(
      {"SMEMBERS", InstancesKey(prefix_)}, [this, alive = alive_, run](Result<Reply> r) {
        if (!*alive) return;
        if (!r.ok()) return;  // the connection dropped: the reconnect checks again
        if (r->is_error() || r->type != Reply::Type::kArray) {
          run->Set(Verdict::kRetry, "SMEMBERS " + InstancesKey(prefix_) + ": " + r->str);
          Finish(run);
          return;
        }
        run->awaiting = 1;  // released below, once every GET is sent
        for (const Reply& e : r->elements) {
          if (e.type != Reply::Type::kString || e.str == instance_) continue;
          ++run->awaiting;
          const std::string name = e.str;
          redis_->Command({"GET", InstanceKey(prefix_, name)}, [this, alive, run,
                                                                name](Result<Reply> g) {
            if (!*alive) return;
            if (!g.ok()) {
              run->lost = true;
            } else if (g->type == Reply::Type::kString) {
              // A live heartbeat (an expired one is gone): its layout must be ours.
              const int layout = HeartbeatLayout(g->str);
              if (layout != kLayout && layout != -1) {
                run->Set(
                    Verdict::kRefused,
                    "instance " + EscapeName(name) + " is running and reads Redis layout " +
                        std::to_string(layout) + ", this dropqd layout " + std::to_string(kLayout) +
                        ": stop every instance of the other version " + "before starting this one");
              }
            }
            if (--run->awaiting == 0) Upgrade(run);
          });
        }
        if (--run->awaiting == 0) Upgrade(run);
      });
}

void LayoutGate::Upgrade(const std::shared_ptr<Run>& run) {
  if (run->lost) return;
  if (run->verdict == Verdict::kRefused || run->bases.empty()) {
    Finish(run);
    return;
  }
  run->awaiting = static_cast<int>(run->bases.size());
  for (const std::string& base : run->bases) {
    redis_->Eval(UpgradeScript(), base, {}, [this, alive = alive_, run, base](Result<Reply> r) {
      if (!*alive) return;
      if (!r.ok()) {
        run->lost = true;
      } else if (Status s = DecodeUpgrade(*r); !s.ok()) {
        run->Set(IsLayoutReply(*r) ? Verdict::kRefused : Verdict::kRetry, s.error().what);
      }
      if (--run->awaiting == 0 && !run->lost) Finish(run);
    });
  }
}

void LayoutGate::Finish(const std::shared_ptr<Run>& run) {
  Done done = std::move(run->done);
  done(run->verdict, run->why);
}

}  // namespace dropq
