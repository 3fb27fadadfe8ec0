// The serve handler protocol: JSON lines between dropqd and a long-lived
// handler process (docs/serve-protocol.md is its user-facing description;
// this is its one definition in code).
//
//   fd 3, dropqd -> process: one job per line
//     {"id":…,"queue":…,"path":…,"name":…,"relpath":…,"attempt":…,"size":…}
//   fd 4, process -> dropqd: {"ready":true} once, then one answer per job
//     {"id":…,"ok":true,"result":{…}}
//     {"id":…,"ok":false,"error":"…","permanent":false,"retry_after":30}
//
// Strings are UTF-8. Bytes of a name that are not valid UTF-8 travel as lone
// surrogates \udc80..\udcff (Python's surrogateescape) both ways: dropqd
// writes them so (common/escape.h JsonQuote) and maps them back to bytes in
// answers, which a strict JSON parser alone would refuse. Keys an answer
// has beyond these are ignored.
//
// Pure functions; thread: any.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace dropq {

// An answer line longer than this is a protocol error (dropqd never holds more).
inline constexpr std::size_t kServeMaxLine = std::size_t{1} << 20;
// Arrays and objects nested deeper than this in an answer: a protocol error.
inline constexpr int kServeMaxDepth = 64;
// The largest `result` kept, as JSON text: a longer one fails its job.
inline constexpr std::size_t kServeMaxResult = std::size_t{64} << 10;

// What dropqd tells a process about one job.
struct ServeJob {
  std::string id, queue;
  std::string path;     // where the process finds the file (bytes)
  std::string name;     // its file name
  std::string relpath;  // its path relative to the watched directory
  uint32_t attempt = 0;
  uint64_t size = 0;
};

// The job's line, '\n' included.
std::string EncodeServeJob(const ServeJob& job);

// One line a process wrote on fd 4.
struct ServeAnswer {
  enum class Kind { kReady, kAnswer };
  Kind kind = Kind::kAnswer;
  std::string id;
  bool ok = false;
  std::string result;  // ok: `result` as JSON text (non-UTF-8 bytes as \udcXX); "" if absent
  std::string error;   // !ok: `error` as bytes ("" if absent)
  bool permanent = false;
  int64_t retry_after_ms = -1;  // !ok: `retry_after` in ms; -1 if absent
};

// Parses one line (without its '\n'). An Error (kInvalid) says what is not
// protocol: not JSON, not an object, a key of the wrong type, neither a
// ready line nor an answer, a `result` that is not an object.
Result<ServeAnswer> DecodeServeAnswer(std::string_view line);

}  // namespace dropq
