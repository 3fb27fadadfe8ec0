// libFuzzer target: any bytes as a RESP reply, parsed by hiredis' own reader
// as dropqd's connection parses it, then decoded as CLAIM's answer and as
// ENQUEUE's. DecodeClaim() and DecodeEnqueue() must return an error or jobs
// that keep their promises (a job to run has a valid name and a usable id),
// and never crash.
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "store/job_record.h"
#include "store/protocol.h"
#include "store/reply.h"

namespace {

// hiredis 0.14.1's reader allocates an array header's element count up
// front (later versions cap it with maxelements): "*899999999\r\n" asks
// for gigabytes before a byte of it arrives. An array longer than the whole
// input cannot be a reply that was sent, so such inputs are passed by: they
// test hiredis' allocator, not the decoder.
bool DeclaresImpossibleArray(const uint8_t* data, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    // Anywhere, not only after a line end: hiredis 0.14 skips the two bytes
    // after a bulk string's payload without checking them, so a reply may
    // start right after any byte.
    if (data[i] != '*') continue;
    uint64_t n = 0;
    for (size_t k = i + 1; k < size && data[k] >= '0' && data[k] <= '9' && n <= size; ++k) {
      n = n * 10 + (data[k] - '0');
    }
    if (n > size) return true;
  }
  return false;
}

void Check(const std::vector<dropq::ClaimedJob>& jobs) {
  for (const dropq::ClaimedJob& c : jobs) {
    if (c.kind == dropq::ClaimedJob::Kind::kRun || c.kind == dropq::ClaimedJob::Kind::kRedispose) {
      if (!dropq::ValidJobName(c.job.name) || c.job.id.empty() || c.job.id[0] == '.' ||
          c.job.id.find('/') != std::string::npos) {
        std::abort();
      }
    }
    if (c.kind == dropq::ClaimedJob::Kind::kInvalid && c.problem.empty()) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (DeclaresImpossibleArray(data, size)) return 0;
  redisReader* reader = redisReaderCreate();
  if (reader == nullptr) return 0;
  if (redisReaderFeed(reader, reinterpret_cast<const char*>(data), size) == REDIS_OK) {
    void* raw = nullptr;
    while (redisReaderGetReply(reader, &raw) == REDIS_OK && raw != nullptr) {
      const dropq::Reply reply = dropq::Reply::CopyOf(*static_cast<redisReply*>(raw));
      freeReplyObject(raw);
      raw = nullptr;
      auto claimed = dropq::DecodeClaim(reply);
      if (claimed.ok()) Check(*claimed);
      // As many flags as the reply carries: the rest of it is what is tested.
      const size_t n = reply.elements.empty() ? 0 : reply.elements[0].str.size();
      auto enqueued = dropq::DecodeEnqueue(reply, n);
      if (enqueued.ok()) Check(enqueued->claimed);
    }
  }
  redisReaderFree(reader);
  return 0;
}
