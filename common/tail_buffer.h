// TailBuffer keeps the last `cap` bytes appended to it: a handler's stderr
// tail. The buffer grows to twice the cap before its front is dropped, so a
// long stream costs O(1) per byte. Thread: owner.
#pragma once

#include <cstddef>
#include <string>
#include <utility>

namespace dropq {

class TailBuffer {
 public:
  explicit TailBuffer(std::size_t cap) : cap_(cap) {}

  void Append(const char* p, std::size_t n) {
    if (n >= cap_) {
      buf_.assign(p + (n - cap_), cap_);
      return;
    }
    buf_.append(p, n);
    if (buf_.size() > 2 * cap_) buf_.erase(0, buf_.size() - cap_);
  }

  // The last `cap` bytes; leaves the buffer empty.
  std::string Take() {
    if (buf_.size() > cap_) buf_.erase(0, buf_.size() - cap_);
    return std::exchange(buf_, std::string());
  }

  void Clear() { buf_.clear(); }

 private:
  const std::size_t cap_;
  std::string buf_;
};

}  // namespace dropq
