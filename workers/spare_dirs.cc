#include "workers/spare_dirs.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "workers/disposition.h"

namespace dropq {
namespace {

// True if `dir` is a directory with nothing but "." and "..": a handler may
// have left files of its own next to the job's file.
bool IsEmptyDir(const std::string& dir) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return false;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") return false;
  }
  return true;
}

}  // namespace

SpareDirs::SpareDirs(std::string area, std::string instance, size_t capacity)
    : area_(std::move(area)), prefix_(".spare-" + instance + "-"), capacity_(capacity) {}

void SpareDirs::Reset() {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(area_.c_str()), ::closedir);
  if (!d) return;
  std::vector<std::string> old;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view n = e->d_name;
    if (n.substr(0, prefix_.size()) == prefix_) old.emplace_back(n);
  }
  d.reset();
  for (const std::string& n : old) ::rmdir((area_ + "/" + n).c_str());
  std::lock_guard<std::mutex> lock(mu_);
  stock_.clear();
}

bool SpareDirs::Take(const std::string& dir) {
  std::string spare;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stock_.empty()) return false;
    spare = std::move(stock_.back());
    stock_.pop_back();
  }
  const int err = RenameNoReplace(spare, dir);
  if (err == 0) return true;
  if (err == EEXIST) {  // `dir` is there already: the spare stays a spare
    std::lock_guard<std::mutex> lock(mu_);
    stock_.push_back(std::move(spare));
  } else {
    ::rmdir(spare.c_str());  // gone or unusable: forget it
  }
  return false;
}

void SpareDirs::Give(const std::string& dir) {
  std::string spare;
  if (IsEmptyDir(dir)) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stock_.size() < capacity_) spare = area_ + "/" + prefix_ + std::to_string(next_++);
  }
  if (spare.empty() || RenameNoReplace(dir, spare) != 0) {
    ::rmdir(dir.c_str());
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  stock_.push_back(std::move(spare));
}

size_t SpareDirs::stocked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stock_.size();
}

}  // namespace dropq
