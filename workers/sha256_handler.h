// Sha256Handler is the builtin `sha256` handler: it hashes the file and puts
// the lower-case hex digest in Outcome.sha256. With a manifest it also appends
// one line per file to it:
//
//   <escaped name> <sha256 hex> <unix time ns when hashing ended>\n
//
// the name escaped as common/escape.h says, so a line is always three tokens.
// Each line is one write(2) to an O_APPEND descriptor, so the lines of
// concurrent workers never interleave.
// Thread: any. Immutable after construction; Run() is called by several
// workers at once, all sharing the manifest descriptor.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "common/job.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "workers/cancel_token.h"
#include "workers/handler.h"

namespace dropq {

class Sha256Handler final : public Handler {
 public:
  // Bytes read per read(2); cancel is checked before each.
  static constexpr std::size_t kChunkBytes = std::size_t{64} * 1024;

  // Opens `manifest` (absolute; "" for none) with
  // O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, mode 0644. Errc::kIo if it cannot.
  static Result<std::unique_ptr<Sha256Handler>> Make(const std::string& manifest);

  Sha256Handler(const Sha256Handler&) = delete;
  Sha256Handler& operator=(const Sha256Handler&) = delete;

  // See Handler::Run(). Opens `path` with O_NOFOLLOW|O_NONBLOCK, so a symlink
  // is refused and a FIFO never blocks; anything but a regular file is
  // kError "not a regular file". A missing file is kVanished. A fired
  // `cancel` is kInterrupted (checked between chunks) and writes no manifest
  // line. A failed manifest write is kError: the digest is still filled in.
  Outcome Run(const Job& job, const std::string& path, int fd,
              const CancelToken& cancel) noexcept override;
  bool ReadsDescriptor() const override { return true; }

 private:
  Sha256Handler(std::string manifest_path, UniqueFd manifest);

  const std::string manifest_path_;  // for messages; "" without a manifest
  const UniqueFd manifest_;          // invalid without a manifest; shared by every worker
};

}  // namespace dropq
