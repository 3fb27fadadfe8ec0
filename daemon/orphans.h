// Finds and kills the handlers that a killed predecessor of this instance
// left running. Each exec handler leads its own process group and carries
// DROPQ_INSTANCE in its environment, so a scan of /proc/*/environ finds them
// without relying on anything the dead dropqd wrote (a kill -9 can interrupt
// any write). Their jobs are then requeued; killing them first means two runs
// of one job never overlap. For this instance's own orphans call it only
// while holding the InstanceLock: no other live dropqd of this instance
// exists then, so every match is an orphan. For another instance's, only
// once its heartbeat expired (the reaper).
// Blocking (reads /proc): at start-up before the loop runs, or on the
// threadpool (the reaper looks for the orphans of an expired instance).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace dropq {

struct Orphan {
  pid_t pid;
  std::string job_id;  // DROPQ_JOB_ID of the handler
};

// The DROPQ_NAMESPACE value handlers of this Redis namespace carry (Redis
// address and database, and prefix): one host may run dropqds of the same
// instance name for different Redis servers, and they must not kill each
// other's handlers.
std::string NamespaceOf(const std::string& redis_display, const std::string& prefix);

// Processes other than this one whose environment holds both
// DROPQ_INSTANCE=`instance` and DROPQ_NAMESPACE=`ns`.
std::vector<Orphan> FindOrphans(const std::string& instance, const std::string& ns);

// SIGKILLs each orphan's process group (its own pid: a handler leads its
// group) and waits up to `wait_ms` for the processes to be gone. Returns how
// many were killed.
size_t KillOrphans(const std::vector<Orphan>& orphans, int wait_ms = 2000);

}  // namespace dropq
