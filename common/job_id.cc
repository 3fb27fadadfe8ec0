#include "common/job_id.h"

#include <sys/random.h>

#include <cerrno>

#include "common/check.h"
#include "common/clock.h"

namespace dropq {
namespace {
constexpr char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
}

std::string EncodeJobId(uint64_t unix_ms, const uint8_t random[10]) {
  // 128 bits: 48 of time then 80 random, big-endian, as 26 base32 digits
  // (the first digit carries only 3 bits).
  uint8_t bytes[16];
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<uint8_t>(unix_ms >> (8 * (5 - i)));
  for (int i = 0; i < 10; ++i) bytes[6 + i] = random[i];
  std::string out(26, '0');
  // Walk the 130-bit string (two leading zero bits) 5 bits at a time.
  for (int d = 0; d < 26; ++d) {
    int value = 0;
    for (int b = 0; b < 5; ++b) {
      const int bit = d * 5 + b - 2;  // index into the 128 bits
      int v = 0;
      if (bit >= 0) v = (bytes[bit / 8] >> (7 - bit % 8)) & 1;
      value = (value << 1) | v;
    }
    out[d] = kCrockford[value];
  }
  return out;
}

std::string NewJobId() {
  uint8_t random[10];
  size_t got = 0;
  while (got < sizeof random) {
    const ssize_t n = getrandom(random + got, sizeof random - got, 0);
    if (n < 0 && errno == EINTR) continue;
    DROPQ_CHECK(n > 0);  // getrandom cannot fail once the pool is initialised
    got += static_cast<size_t>(n);
  }
  return EncodeJobId(static_cast<uint64_t>(NowUnixMs()), random);
}

bool IsJobId(std::string_view s) {
  if (s.size() != 26) return false;
  for (char c : s) {
    bool found = false;
    for (const char* p = kCrockford; *p; ++p) found |= (*p == c);
    if (!found) return false;
  }
  return s[0] <= '7';
}

std::optional<int64_t> JobIdTimeMs(std::string_view id) {
  if (!IsJobId(id)) return std::nullopt;
  int64_t ms = 0;  // 10 digits: 50 bits, the top two zero (IsJobId: s[0] <= '7')
  for (int d = 0; d < 10; ++d) {
    int v = 0;
    while (kCrockford[v] != id[d]) ++v;
    ms = (ms << 5) | v;
  }
  return ms;
}

}  // namespace dropq
