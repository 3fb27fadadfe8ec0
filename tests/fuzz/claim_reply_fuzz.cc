// libFuzzer target: any bytes as a RESP reply, parsed by hiredis' own reader
// as dropqd's connection parses it, then decoded as CLAIM's answer.
// DecodeClaim() must return an error or jobs that keep its promises (a job
// to run has a valid name and a usable id), and never crash.
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "store/job_record.h"
#include "store/protocol.h"
#include "store/reply.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  redisReader* reader = redisReaderCreate();
  if (reader == nullptr) return 0;
  if (redisReaderFeed(reader, reinterpret_cast<const char*>(data), size) == REDIS_OK) {
    void* raw = nullptr;
    while (redisReaderGetReply(reader, &raw) == REDIS_OK && raw != nullptr) {
      const dropq::Reply reply = dropq::Reply::CopyOf(*static_cast<redisReply*>(raw));
      freeReplyObject(raw);
      raw = nullptr;
      auto jobs = dropq::DecodeClaim(reply);
      if (!jobs.ok()) continue;
      for (const dropq::ClaimedJob& c : *jobs) {
        if (c.kind == dropq::ClaimedJob::Kind::kRun ||
            c.kind == dropq::ClaimedJob::Kind::kRedispose) {
          if (!dropq::ValidJobName(c.job.name) || c.job.id.empty() || c.job.id[0] == '.' ||
              c.job.id.find('/') != std::string::npos) {
            std::abort();
          }
        }
        if (c.kind == dropq::ClaimedJob::Kind::kInvalid && c.problem.empty()) std::abort();
      }
    }
  }
  redisReaderFree(reader);
  return 0;
}
