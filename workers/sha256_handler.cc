#include "workers/sha256_handler.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <exception>
#include <memory>
#include <utility>

#include "common/clock.h"
#include "common/escape.h"

namespace dropq {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string LowerHex(const unsigned char* p, unsigned n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(std::size_t{2} * n);
  for (unsigned i = 0; i < n; ++i) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 0x0f]);
  }
  return s;
}

// Opens `path` for HashFile() when the worker did not: refuses a symlink
// and anything but a regular file. Returns the descriptor, or -1 with `o`
// filled.
UniqueFd OpenRegular(const std::string& path, Outcome* o) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  // O_NOFOLLOW: a symlink could point anywhere, /dev/zero included.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) {
      o->result = RunResult::kVanished;
      o->error = IoError("open " + path, err).what;
    } else if (err == ELOOP) {
      o->result = RunResult::kError;
      o->error = "not a regular file (a symbolic link): " + path;
    } else {
      o->result = RunResult::kError;
      o->error = IoError("open " + path, err).what;
    }
    return fd;
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    o->result = RunResult::kError;
    o->error = IoError("fstat " + path, errno).what;
    fd.Reset();
  } else if (!S_ISREG(st.st_mode)) {
    o->result = RunResult::kError;
    o->error = "not a regular file: " + path;
    fd.Reset();
  }
  return fd;
}

// Hashes the regular file open as `fd` (named `path` in messages) into `o`
// (sha256, or result and error). Returns true if the digest was computed.
bool HashFile(int fd, const std::string& path, const CancelToken& cancel, Outcome* o) {
  // OpenSSL 3 looks the algorithm up in its provider table on every init
  // given EVP_sha256(); fetched once, the lookup is done for good (the
  // method is kept for the life of the process).
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx ||
      EVP_DigestInit_ex(ctx.get(), kSha256 != nullptr ? kSha256 : EVP_sha256(), nullptr) != 1) {
    o->result = RunResult::kError;
    o->error = "sha256: EVP_DigestInit_ex failed";
    return false;
  }
  // One buffer per worker thread, never zero-filled: a fresh zeroed 64 KiB
  // per file costs more than hashing a small file.
  thread_local const std::unique_ptr<unsigned char[]> buf(
      new unsigned char[Sha256Handler::kChunkBytes]);
  while (true) {
    if (cancel.cancelled()) {
      o->result = RunResult::kInterrupted;
      o->error = "cancelled";
      return false;
    }
    const ssize_t n = ::read(fd, buf.get(), Sha256Handler::kChunkBytes);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      o->result = RunResult::kError;
      o->error = IoError("read " + path, errno).what;
      return false;
    }
    if (EVP_DigestUpdate(ctx.get(), buf.get(), static_cast<std::size_t>(n)) != 1) {
      o->result = RunResult::kError;
      o->error = "sha256: EVP_DigestUpdate failed";
      return false;
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned md_len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &md_len) != 1) {
    o->result = RunResult::kError;
    o->error = "sha256: EVP_DigestFinal_ex failed";
    return false;
  }
  o->sha256 = LowerHex(md, md_len);
  return true;
}

}  // namespace

Result<std::unique_ptr<Sha256Handler>> Sha256Handler::Make(const std::string& manifest) {
  UniqueFd fd;
  if (!manifest.empty()) {
    fd.Reset(::open(manifest.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    if (!fd.valid()) return IoError("open manifest " + manifest, errno);
  }
  return std::unique_ptr<Sha256Handler>(new Sha256Handler(manifest, std::move(fd)));
}

Sha256Handler::Sha256Handler(std::string manifest_path, UniqueFd manifest)
    : manifest_path_(std::move(manifest_path)), manifest_(std::move(manifest)) {}

Outcome Sha256Handler::Run(const Job& job, const std::string& path, int fd,
                           const CancelToken& cancel) noexcept {
  Outcome o;
  o.started_ms = NowUnixMs();
  const int64_t t0 = MonoMs();
  try {
    UniqueFd own;  // when the worker gave no descriptor
    if (fd < 0) {
      own = OpenRegular(path, &o);
      fd = own.get();
    }
    if (fd >= 0 && HashFile(fd, path, cancel, &o)) {
      o.result = RunResult::kOk;
      if (manifest_.valid()) {
        std::string line = EscapeName(job.name);
        line += ' ';
        line += o.sha256;
        line += ' ';
        line += std::to_string(NowUnixNs());
        line += '\n';
        // One write(2) per line: with O_APPEND the kernel places each whole
        // line at the end, whichever worker writes it. No retry after a short
        // write, which would put the rest of the line after another worker's.
        ssize_t n;
        do {
          n = ::write(manifest_.get(), line.data(), line.size());
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
          o.result = RunResult::kError;
          o.error = IoError("write manifest " + manifest_path_, errno).what;
        } else if (static_cast<std::size_t>(n) != line.size()) {
          o.result = RunResult::kError;
          o.error = "write manifest " + manifest_path_ + ": short write (" + std::to_string(n) +
                    " of " + std::to_string(line.size()) + " bytes)";
        }
      }
    }
  } catch (const std::exception& e) {  // std::bad_alloc, in practice
    o.result = RunResult::kError;
    o.error = std::string("sha256 handler: ") + e.what();
  }
  o.duration_ms = MonoMs() - t0;
  return o;
}

}  // namespace dropq
