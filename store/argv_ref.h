// ArgvRef views a command as the parallel pointer and length arrays that
// hiredis' redis*CommandArgv() functions take (lengths, because values may
// hold NUL bytes). `argv` must outlive the ArgvRef. Thread: owner.
#pragma once

#include <string>
#include <vector>

namespace dropq {

class ArgvRef {
 public:
  explicit ArgvRef(const std::vector<std::string>& argv) {
    ptrs_.reserve(argv.size());
    lens_.reserve(argv.size());
    for (const auto& a : argv) {
      ptrs_.push_back(a.data());
      lens_.push_back(a.size());
    }
  }
  int argc() const { return static_cast<int>(ptrs_.size()); }
  const char** argv() { return ptrs_.data(); }
  const size_t* lens() const { return lens_.data(); }

 private:
  std::vector<const char*> ptrs_;
  std::vector<size_t> lens_;
};

}  // namespace dropq
